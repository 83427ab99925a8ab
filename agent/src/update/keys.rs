//! The release-signing keys the updater trusts.
//!
//! [`RELEASE_KEYS`] is compiled into the binary: a release is installed only when its archive
//! carries a zipsign (ed25519ph) signature that one of these keys verifies. An empty list is a
//! **build error** (the `const` assertion below), never "skip verification": self_update's own
//! `verify_signature` silently accepts anything when it is given no keys, so the updater only
//! ever passes it a [`TrustedKeys`], which cannot be empty.
//!
//! Key rotation (see `packaging/KEYS.md`): add the new public key here, ship that release signed
//! with the old key *and* the new one (dual signing), and drop the old key from the list one
//! release later.

use std::fmt;

use super::UpdateError;

/// An ed25519 public key, raw 32 bytes (the `zipsign gen-key` public-key file format).
pub type VerifyingKeyBytes = [u8; 32];

/// The production release keys (raw public-key files next to this module).
pub const RELEASE_KEYS: &[VerifyingKeyBytes] = &[*include_bytes!("keys/arbosync-release-1.pub")];

// An empty key list must fail the build, not turn verification off.
const _: () = assert!(
    !RELEASE_KEYS.is_empty(),
    "RELEASE_KEYS is empty: the updater refuses to be built without a release-signing key"
);

/// A non-empty list of valid ed25519 verifying keys.
///
/// The only ways to get one are [`TrustedKeys::release`] (the compiled-in production keys) and
/// [`TrustedKeys::new`], which refuses an empty list and keys that are not ed25519 points. Tests
/// use `new` to inject a key they generated; nothing reads keys from the configuration file, so a
/// production build cannot be talked out of verifying.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: Vec<VerifyingKeyBytes>,
}

impl TrustedKeys {
    /// The compiled-in production keys ([`RELEASE_KEYS`]).
    pub fn release() -> TrustedKeys {
        // Non-empty by the const assertion above; the unit test `release_keys_are_valid` checks
        // that every entry is an ed25519 point.
        TrustedKeys {
            keys: RELEASE_KEYS.to_vec(),
        }
    }

    /// Other keys (tests, a private release channel). Refuses an empty list and invalid keys.
    pub fn new(keys: Vec<VerifyingKeyBytes>) -> Result<TrustedKeys, UpdateError> {
        if keys.is_empty() {
            return Err(UpdateError::NoTrustedKeys);
        }
        for (index, key) in keys.iter().enumerate() {
            if self_update::zipsign_api::VerifyingKey::from_bytes(key).is_err() {
                return Err(UpdateError::InvalidKey { index });
            }
        }
        Ok(TrustedKeys { keys })
    }

    /// The keys, never empty.
    pub fn as_slice(&self) -> &[VerifyingKeyBytes] {
        &self.keys
    }

    /// Short fingerprints (first 8 bytes, hex) for messages and the status view.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex::encode(&k[..8])).collect()
    }
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.fingerprints()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_keys_are_valid() {
        let keys = TrustedKeys::release();
        assert!(!keys.as_slice().is_empty());
        assert!(TrustedKeys::new(keys.as_slice().to_vec()).is_ok());
    }

    #[test]
    fn an_empty_key_list_is_refused() {
        assert!(matches!(
            TrustedKeys::new(Vec::new()),
            Err(UpdateError::NoTrustedKeys)
        ));
    }

    #[test]
    fn an_invalid_key_is_refused() {
        // Not a point on the curve (y = 2 has no valid x).
        let mut bad = [0u8; 32];
        bad[0] = 2;
        let good = RELEASE_KEYS[0];
        match TrustedKeys::new(vec![good, bad]) {
            Err(UpdateError::InvalidKey { index }) => assert_eq!(index, 1),
            other => panic!("expected InvalidKey, got {other:?}"),
        }
    }
}
