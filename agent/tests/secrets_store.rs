//! Encrypted refresh-token store: round trip, tamper detection, wrong key, file modes, key from
//! a systemd credential, and that the token never shows in Debug output or error messages.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use arbosync_agent::secrets::{KeySource, SecretError, SecretStore, SecretString};

const TOKEN: &str = "rt-CANARY-7f3a9b2c-refresh-token-value";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn store(state_dir: &Path) -> SecretStore {
    SecretStore::open_with_credentials_dir(state_dir, None).unwrap()
}

#[test]
fn round_trip_with_a_created_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let key_path = dir.path().join("arbosync.key");
    assert_eq!(s.key_source(), &KeySource::File(key_path.clone()));
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap().trim().len(), 64);

    assert!(s.load("acme").unwrap().is_none());
    s.save("acme", TOKEN).unwrap();
    assert_eq!(s.load("acme").unwrap().unwrap().expose_secret(), TOKEN);

    // Rotation replaces it; a new handle (same key file) reads it.
    s.save("acme", "rotated-token").unwrap();
    let again = store(dir.path());
    assert_eq!(
        again.load("acme").unwrap().unwrap().expose_secret(),
        "rotated-token"
    );

    assert!(again.delete("acme").unwrap());
    assert!(!again.delete("acme").unwrap());
    assert!(again.load("acme").unwrap().is_none());
}

#[test]
fn token_file_is_encrypted_0600_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.save("acme", TOKEN).unwrap();
    s.save("acme", TOKEN).unwrap();
    let path = s.token_path("acme").unwrap();
    assert_eq!(path, dir.path().join("secrets/acme.token"));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("secrets")), 0o700);
    let raw = std::fs::read(&path).unwrap();
    assert!(raw.starts_with(b"ARBOTOK\x01"));
    assert!(
        !raw.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "token stored in clear"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path().join("secrets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["acme.token".to_string()]);
}

#[test]
fn each_write_uses_a_fresh_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.save("acme", TOKEN).unwrap();
    let first = std::fs::read(s.token_path("acme").unwrap()).unwrap();
    s.save("acme", TOKEN).unwrap();
    let second = std::fs::read(s.token_path("acme").unwrap()).unwrap();
    assert_ne!(first[8..32], second[8..32]);
    assert_ne!(first, second);
}

fn assert_decrypt_error(err: SecretError, connection: &str) {
    let shown = err.to_string();
    assert!(matches!(err, SecretError::Decrypt { .. }), "{err:?}");
    assert!(shown.contains(connection), "{shown}");
    assert!(shown.contains("consent"), "{shown}");
    assert!(!shown.contains(TOKEN) && !format!("{err:?}").contains(TOKEN));
}

#[test]
fn tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.save("acme", TOKEN).unwrap();
    let path = s.token_path("acme").unwrap();
    let good = std::fs::read(&path).unwrap();

    for i in [0usize, 7, 8, 20, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        assert_decrypt_error(s.load("acme").unwrap_err(), "acme");
    }
    // Truncated and empty files.
    std::fs::write(&path, &good[..good.len() - 3]).unwrap();
    assert_decrypt_error(s.load("acme").unwrap_err(), "acme");
    std::fs::write(&path, b"").unwrap();
    assert_decrypt_error(s.load("acme").unwrap_err(), "acme");
}

#[test]
fn a_token_copied_to_another_connection_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.save("acme", TOKEN).unwrap();
    std::fs::copy(
        s.token_path("acme").unwrap(),
        s.token_path("other").unwrap(),
    )
    .unwrap();
    assert_decrypt_error(s.load("other").unwrap_err(), "other");
}

#[test]
fn wrong_key_gives_a_clear_error_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path()).save("acme", TOKEN).unwrap();
    std::fs::write(
        dir.path().join("arbosync.key"),
        format!("{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let s = store(dir.path());
    assert_decrypt_error(s.load("acme").unwrap_err(), "acme");
}

#[test]
fn group_or_world_readable_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let key = dir.path().join("arbosync.key");
    for bad in [0o640, 0o604, 0o660] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = SecretStore::open_with_credentials_dir(dir.path(), None).unwrap_err();
        assert!(matches!(err, SecretError::KeyPermissions { .. }), "{err:?}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    SecretStore::open_with_credentials_dir(dir.path(), None).unwrap();
}

#[test]
fn malformed_key_file_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("arbosync.key");
    std::fs::write(&key, "not-a-key-SECRETISH").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = SecretStore::open_with_credentials_dir(dir.path(), None).unwrap_err();
    assert!(matches!(err, SecretError::KeyFormat { .. }), "{err:?}");
    assert!(!err.to_string().contains("SECRETISH"));
}

#[test]
fn key_from_credentials_directory_raw_or_hex() {
    let state = tempfile::tempdir().unwrap();
    let creds = tempfile::tempdir().unwrap();
    let cred = creds.path().join("arbosync.key");
    std::fs::write(&cred, [42u8; 32]).unwrap();
    // systemd makes credentials 0400; the mode check applies only to the state-dir key file.
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o444)).unwrap();

    let s = SecretStore::open_with_credentials_dir(state.path(), Some(creds.path())).unwrap();
    assert_eq!(s.key_source(), &KeySource::Credential(cred.clone()));
    assert!(
        !state.path().join("arbosync.key").exists(),
        "no key file is created"
    );
    s.save("acme", TOKEN).unwrap();

    // The same key written as hex decrypts it.
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&cred, format!("{}\n", hex::encode([42u8; 32]))).unwrap();
    let hex_store =
        SecretStore::open_with_credentials_dir(state.path(), Some(creds.path())).unwrap();
    assert_eq!(
        hex_store.load("acme").unwrap().unwrap().expose_secret(),
        TOKEN
    );

    // A credentials directory without the key falls back to the state-dir key file.
    let empty = tempfile::tempdir().unwrap();
    let fallback =
        SecretStore::open_with_credentials_dir(state.path(), Some(empty.path())).unwrap();
    assert_eq!(
        fallback.key_source(),
        &KeySource::File(state.path().join("arbosync.key"))
    );
}

#[test]
fn open_reads_credentials_directory_from_the_environment() {
    // Run in a child process so that setting the variable cannot race other tests.
    if std::env::var_os("ARBOSYNC_SECRETS_CHILD").is_some() {
        let state = std::env::var_os("ARBOSYNC_SECRETS_STATE").unwrap();
        let s = SecretStore::open(&state).unwrap();
        assert!(matches!(s.key_source(), KeySource::Credential(_)));
        s.save("acme", TOKEN).unwrap();
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("arbosync.key"), [9u8; 32]).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "open_reads_credentials_directory_from_the_environment",
            "--nocapture",
        ])
        .env("ARBOSYNC_SECRETS_CHILD", "1")
        .env("ARBOSYNC_SECRETS_STATE", state.path())
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .status()
        .unwrap();
    assert!(status.success());
    let s = SecretStore::open_with_credentials_dir(state.path(), Some(creds.path())).unwrap();
    assert_eq!(s.load("acme").unwrap().unwrap().expose_secret(), TOKEN);
}

#[test]
fn invalid_connection_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    for bad in ["", "../x", ".hidden", "a/b", "a b"] {
        assert!(
            matches!(
                s.save(bad, TOKEN),
                Err(SecretError::InvalidConnectionName(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(s.load(bad), Err(SecretError::InvalidConnectionName(_))),
            "{bad}"
        );
    }
}

#[test]
fn secrets_never_show_in_debug() {
    let secret = SecretString::new(TOKEN);
    assert!(!format!("{secret:?}").contains(TOKEN));
    assert!(!format!("{:?}", Some(secret.clone())).contains(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.save("acme", TOKEN).unwrap();
    let loaded = s.load("acme").unwrap();
    assert!(!format!("{loaded:?}").contains(TOKEN));
    let key = std::fs::read_to_string(dir.path().join("arbosync.key")).unwrap();
    assert!(!format!("{s:?}").contains(key.trim()));
}

#[test]
fn unreadable_state_directory_gives_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SecretStore::open_with_credentials_dir(&file, None).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}
