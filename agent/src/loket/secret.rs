//! Secret newtypes for OAuth material: [`AccessToken`], [`RefreshToken`] and [`ClientSecret`].
//!
//! Their `Debug` and `Display` print a fixed placeholder, so a secret cannot reach a log line or
//! an error message by accident. The value is only reachable through `expose_secret()`, which makes
//! every use visible in review.

use std::fmt;

macro_rules! secret_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            /// The secret itself. Use it only to put it on the wire or into the encrypted store.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
    };
}

secret_newtype!(
    /// A short-lived OAuth access token (a bearer token for the API).
    AccessToken
);
secret_newtype!(
    /// A long-lived OAuth refresh token. Loket rotates it: every refresh returns a new one and the
    /// old one stops working.
    RefreshToken
);
secret_newtype!(
    /// The OAuth client secret of the integration.
    ClientSecret
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let a = AccessToken::new("acc-SECRET-1");
        let r = RefreshToken::new("ref-SECRET-2");
        let c = ClientSecret::new("cli-SECRET-3");
        let all = format!("{a:?} {a} {r:?} {r} {c:?} {c} {:?}", Some(&r));
        assert!(!all.contains("SECRET"), "{all}");
        assert!(all.contains("AccessToken(<redacted>)"));
        assert_eq!(r.expose_secret(), "ref-SECRET-2");
    }
}
