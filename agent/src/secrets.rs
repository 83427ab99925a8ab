//! Encrypted credential store for refresh tokens (XChaCha20-Poly1305, atomic writes).
//!
//! One file per connection: `<state_dir>/secrets/<connection>.token`, mode 0600, in a 0700
//! directory. File layout: the magic `ARBOTOK`, a format version byte, a random 24-byte nonce, then
//! the ciphertext with its Poly1305 tag. The header and the connection name are authenticated as
//! associated data, so a file copied to another connection's name does not decrypt.
//!
//! The 32-byte key comes from the systemd credential `$CREDENTIALS_DIRECTORY/arbosync.key` when
//! that exists, else from `<state_dir>/arbosync.key`, which is created on first use with mode 0600.
//! Both accept 32 raw bytes or 64 hex characters. An existing key file that group or others can
//! access is refused.
//!
//! Writes are atomic: a 0600 temporary file in the same directory, fsync, rename, fsync of the
//! directory. Secrets are held in [`SecretString`], whose `Debug` never shows the value; no error
//! message ever contains a token or the key.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::config::is_valid_connection_name;

/// Name of the key file, both as systemd credential and in the state directory.
pub const KEY_FILE_NAME: &str = "arbosync.key";
/// Environment variable systemd sets to the directory holding the service's credentials.
pub const CREDENTIALS_DIRECTORY_ENV: &str = "CREDENTIALS_DIRECTORY";
/// Subdirectory of the state directory that holds the token files.
pub const SECRETS_DIR_NAME: &str = "secrets";

const MAGIC: &[u8; 7] = b"ARBOTOK";
const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Bytes kept aside for the next token write on a full disk (see [`SecretStore::reserve`]).
pub const RESERVE_LEN: usize = 64 * 1024;
const HEADER_LEN: usize = MAGIC.len() + 1 + NONCE_LEN;
const KEY_LEN: usize = 32;

/// A secret string (refresh token, client secret). `Debug` redacts it, there is no `Display`,
/// and the buffer is overwritten on drop (best effort). Read it with [`SecretString::expose_secret`].
#[derive(Clone, Default)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret value. Never log or format it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// Where the encryption key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A systemd credential (`$CREDENTIALS_DIRECTORY/arbosync.key`).
    Credential(PathBuf),
    /// A key file in the state directory (created on first use).
    File(PathBuf),
}

/// Errors of the credential store. None of them contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("invalid connection name `{0}` (1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.')")]
    InvalidConnectionName(String),
    #[error("encryption key {}: {source}", path.display())]
    KeyIo { path: PathBuf, source: io::Error },
    #[error(
        "encryption key file {} can be accessed by group or others (mode {mode:04o}); \
         refusing to use it: restrict it with `chmod 600 {}` (and check it was not copied)",
        path.display(),
        path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("encryption key {} must contain exactly 32 raw bytes or 64 hexadecimal characters", path.display())]
    KeyFormat { path: PathBuf },
    #[error("stored refresh token of connection `{connection}` ({}): {source}", path.display())]
    Io {
        connection: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "cannot decrypt the stored refresh token of connection `{connection}` ({}): the key is \
         wrong or the file is damaged or was tampered with; a new consent may be needed \
         (`arbosync-agent connect {connection}`)",
        path.display()
    )]
    Decrypt { connection: String, path: PathBuf },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("encryption of the refresh token of connection `{connection}` failed")]
    Encrypt { connection: String },
}

/// The encrypted refresh-token store of one state directory.
pub struct SecretStore {
    dir: PathBuf,
    cipher: XChaCha20Poly1305,
    key_source: KeySource,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("dir", &self.dir)
            .field("key_source", &self.key_source)
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// Opens the store under `state_dir`, taking the key from `$CREDENTIALS_DIRECTORY` when set.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<SecretStore, SecretError> {
        let creds = std::env::var_os(CREDENTIALS_DIRECTORY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        SecretStore::open_with_credentials_dir(state_dir, creds.as_deref())
    }

    /// Like [`SecretStore::open`] with an explicit credentials directory (instead of the
    /// environment variable).
    pub fn open_with_credentials_dir(
        state_dir: impl AsRef<Path>,
        credentials_dir: Option<&Path>,
    ) -> Result<SecretStore, SecretError> {
        let state_dir = state_dir.as_ref();
        let credential = credentials_dir
            .map(|d| d.join(KEY_FILE_NAME))
            .filter(|p| p.exists());
        let (key, key_source) = match credential {
            Some(path) => (read_key(&path, false)?, KeySource::Credential(path)),
            None => {
                let path = state_dir.join(KEY_FILE_NAME);
                (load_or_create_key_file(&path)?, KeySource::File(path))
            }
        };
        let cipher = XChaCha20Poly1305::new(&key.into());
        Ok(SecretStore {
            dir: state_dir.join(SECRETS_DIR_NAME),
            cipher,
            key_source,
        })
    }

    /// Where the key came from.
    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// The token file of `connection` (whether or not it exists).
    pub fn token_path(&self, connection: &str) -> Result<PathBuf, SecretError> {
        if !is_valid_connection_name(connection) {
            return Err(SecretError::InvalidConnectionName(connection.to_string()));
        }
        Ok(self.dir.join(format!("{connection}.token")))
    }

    /// The stored refresh token of `connection`, `None` if none was stored.
    pub fn load(&self, connection: &str) -> Result<Option<SecretString>, SecretError> {
        let path = self.token_path(connection)?;
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SecretError::Io {
                    connection: connection.to_string(),
                    path,
                    source,
                });
            }
        };
        let decrypt_error = || SecretError::Decrypt {
            connection: connection.to_string(),
            path: path.clone(),
        };
        if data.len() < HEADER_LEN
            || &data[..MAGIC.len()] != MAGIC
            || data[MAGIC.len()] != FORMAT_VERSION
        {
            return Err(decrypt_error());
        }
        let nonce = XNonce::from_slice(&data[MAGIC.len() + 1..HEADER_LEN]);
        let aad = associated_data(connection);
        let plain = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &data[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| decrypt_error())?;
        let text = String::from_utf8(plain).map_err(|e| {
            // Overwrite the bytes before they are dropped.
            let mut bytes = e.into_bytes();
            bytes.fill(0);
            std::hint::black_box(&bytes);
            decrypt_error()
        })?;
        Ok(Some(SecretString(text)))
    }

    /// Encrypts and stores `token` for `connection`, replacing any previous one atomically.
    pub fn save(&self, connection: &str, token: &str) -> Result<(), SecretError> {
        let path = self.token_path(connection)?;
        let io_error = |source: io::Error| SecretError::Io {
            connection: connection.to_string(),
            path: path.clone(),
            source,
        };
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| SecretError::Random(e.to_string()))?;
        let aad = associated_data(connection);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: token.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Encrypt {
                connection: connection.to_string(),
            })?;
        let mut data = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        data.extend_from_slice(MAGIC);
        data.push(FORMAT_VERSION);
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ciphertext);

        create_private_dir(&self.dir).map_err(io_error)?;
        match write_atomically(&path, &data) {
            // The reserve is kept for this moment: Loket has already rotated the token, so give
            // the reserve up and write again rather than lose the only valid token.
            Err(e) if e.kind() == io::ErrorKind::StorageFull => {
                let reserve = self.reserve_path(connection)?;
                if fs::remove_file(&reserve).is_ok() {
                    write_atomically(&path, &data).map_err(io_error)
                } else {
                    Err(io_error(e))
                }
            }
            r => r.map_err(io_error),
        }
    }

    /// A hidden file beside the token that is never read (see [`SecretStore::reserve`]).
    fn reserve_path(&self, connection: &str) -> Result<PathBuf, SecretError> {
        self.token_path(connection)?; // validates the name
        Ok(self.dir.join(format!(".{connection}.token.reserve")))
    }

    /// Keeps room on disk for the next [`save`](Self::save) of `connection`: a file of
    /// [`RESERVE_LEN`] bytes beside the token, which `save` gives up when the disk is full. It is
    /// made before Loket is asked for a new token (which rotates the old one), so a full disk
    /// fails that request instead of losing the rotated token after it.
    pub fn reserve(&self, connection: &str) -> Result<(), SecretError> {
        let path = self.reserve_path(connection)?;
        if fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_LEN as u64) {
            return Ok(());
        }
        let io_error = |source: io::Error| SecretError::Io {
            connection: connection.to_string(),
            path: path.clone(),
            source,
        };
        create_private_dir(&self.dir).map_err(io_error)?;
        write_atomically(&path, &[0u8; RESERVE_LEN]).map_err(io_error)
    }

    /// Removes the stored token of `connection` (and its reserve). Returns whether there was
    /// a token.
    pub fn delete(&self, connection: &str) -> Result<bool, SecretError> {
        let path = self.token_path(connection)?;
        // Best effort: the reserve holds zeros only.
        let _ = fs::remove_file(self.reserve_path(connection)?);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir).map_err(|source| SecretError::Io {
                    connection: connection.to_string(),
                    path,
                    source,
                })?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(SecretError::Io {
                connection: connection.to_string(),
                path,
                source,
            }),
        }
    }
}

fn associated_data(connection: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + 1 + connection.len());
    aad.extend_from_slice(MAGIC);
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(connection.as_bytes());
    aad
}

/// Reads a key: 32 raw bytes or 64 hex characters (surrounding whitespace allowed).
/// `check_mode` refuses files that group or others can access.
fn read_key(path: &Path, check_mode: bool) -> Result<[u8; KEY_LEN], SecretError> {
    let key_io = |source| SecretError::KeyIo {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(key_io)?;
    if !meta.is_file() {
        return Err(key_io(io::Error::other("not a regular file")));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if check_mode && mode & 0o077 != 0 {
        return Err(SecretError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut data = fs::read(path).map_err(key_io)?;
    let key = parse_key(&data);
    data.fill(0);
    std::hint::black_box(&data);
    key.ok_or_else(|| SecretError::KeyFormat {
        path: path.to_path_buf(),
    })
}

fn parse_key(data: &[u8]) -> Option<[u8; KEY_LEN]> {
    if data.len() == KEY_LEN {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(data);
        return Some(key);
    }
    let text = data.trim_ascii();
    if text.len() != 2 * KEY_LEN {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    hex::decode_to_slice(text, &mut key).ok()?;
    Some(key)
}

/// Reads `<state_dir>/arbosync.key`, creating it (0600, 64 hex characters) if it does not exist.
fn load_or_create_key_file(path: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    match read_key(path, true) {
        Err(SecretError::KeyIo { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let key_io = |source| SecretError::KeyIo {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| key_io(io::Error::other("the key file has no parent directory")))?;
    create_private_dir(dir).map_err(key_io)?;
    let mut key = [0u8; KEY_LEN];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| SecretError::Random(e.to_string()))?;
    let mut text = hex::encode(key).into_bytes();
    text.push(b'\n');
    // Write a complete temporary file, then link it into place: `hard_link` fails if another
    // process created the key meanwhile, and a crash never leaves a half-written key.
    let tmp = temp_path(path).map_err(|e| SecretError::Random(e.to_string()))?;
    let result = write_synced(&tmp, &text).and_then(|()| fs::hard_link(&tmp, path));
    text.fill(0);
    let _ = fs::remove_file(&tmp); // best effort: only a leftover temp file on failure
    match result {
        Ok(()) => {
            sync_dir(dir).map_err(key_io)?;
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(path, true),
        Err(e) => Err(key_io(e)),
    }
}

/// `<dir>/.<name>.tmp-<random>` next to `path`.
fn temp_path(path: &Path) -> Result<PathBuf, chacha20poly1305::aead::rand_core::Error> {
    let mut suffix = [0u8; 8];
    OsRng.try_fill_bytes(&mut suffix)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.tmp-{}", hex::encode(suffix))))
}

/// Creates a new file with mode 0600, writes `data` and fsyncs it.
fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Temp file (0600) in the same directory, fsync, rename over `path`, fsync the directory.
fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent directory"))?;
    let tmp = temp_path(path).map_err(|e| io::Error::other(e.to_string()))?;
    if let Err(e) = write_synced(&tmp, data).and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp); // best effort cleanup; the original error matters
        return Err(e);
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and parents) with mode 0700 for the directories it creates.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_raw_and_hex_keys() {
        let raw = [7u8; 32];
        assert_eq!(parse_key(&raw), Some(raw));
        let hex = format!("{}\n", hex::encode(raw));
        assert_eq!(parse_key(hex.as_bytes()), Some(raw));
        assert_eq!(parse_key(b"too short"), None);
        assert_eq!(parse_key(&[b'z'; 64]), None);
    }
}
