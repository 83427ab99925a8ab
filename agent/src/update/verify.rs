//! Downloading a release archive and proving it is genuine before anything is extracted from it.
//!
//! Order: download (size-capped) into the state directory under the asset's final name → the
//! manifest's digest (self_update's `Checksum`) → the zipsign signature (self_update's
//! `verify_signature`, whose context is the file name on disk, i.e. the expected asset name with
//! the version and target in it) → extract the binaries from `arbosync-<v>-<target>/bin/` →
//! run `<new binary> --version` as a smoke test. Any failure is a [`Refusal`] and leaves the
//! installed binaries untouched.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;

use super::keys::TrustedKeys;
use super::manifest::{Candidate, archive_root, describe_reqwest};
use super::{BINARIES, Refusal, UpdateError, fsync_dir, io_err};

/// Largest release archive accepted.
pub const MAX_ARCHIVE_BYTES: u64 = 512 * 1024 * 1024;
/// Largest single binary extracted from an archive.
pub const MAX_BINARY_BYTES: u64 = 512 * 1024 * 1024;
/// Timeout of the whole archive download.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Timeout of the `--version` smoke test.
pub const SMOKE_TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Downloads the candidate's archive to `dir/<asset name>` (via a `.part` file) and returns the
/// path. The file keeps the asset's exact name: it is the signature's context.
pub async fn download(
    client: &reqwest::Client,
    candidate: &Candidate,
    dir: &Path,
) -> Result<PathBuf, UpdateError> {
    fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let dest = dir.join(&candidate.asset_name);
    let part = dir.join(format!("{}.part", candidate.asset_name));
    let err = |message: String| UpdateError::Download {
        asset: candidate.asset_name.clone(),
        message,
    };
    let mut response = client
        .get(&candidate.url)
        .timeout(DOWNLOAD_TIMEOUT)
        .send()
        .await
        .map_err(|e| err(describe_reqwest(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(err(format!("the server answered HTTP {}", status.as_u16())));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ARCHIVE_BYTES)
    {
        return Err(refused(candidate, Refusal::TooLarge));
    }
    let mut file = File::create(&part).map_err(|e| io_err("create", &part, e))?;
    let mut written: u64 = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| err(describe_reqwest(&e)))?
    {
        written += chunk.len() as u64;
        if written > MAX_ARCHIVE_BYTES {
            drop(file);
            let _ = fs::remove_file(&part);
            return Err(refused(candidate, Refusal::TooLarge));
        }
        file.write_all(&chunk)
            .map_err(|e| io_err("write", &part, e))?;
    }
    file.sync_all().map_err(|e| io_err("sync", &part, e))?;
    drop(file);
    fs::rename(&part, &dest).map_err(|e| io_err("rename", &part, e))?;
    fsync_dir(dir)?;
    Ok(dest)
}

fn refused(candidate: &Candidate, reason: Refusal) -> UpdateError {
    UpdateError::Refused {
        version: candidate.version.to_string(),
        reason,
    }
}

/// Checks the archive against the manifest's digest (`sha256:<hex>` or `sha512:<hex>`; the
/// format is parsed by self_update's `Checksum::parse_digest`).
pub fn verify_digest(archive: &Path, digest: &str) -> Result<(), Refusal> {
    use sha2::Digest;
    let checksum = self_update::Checksum::parse_digest(digest).map_err(|_| Refusal::BadDigest)?;
    let unreadable = |e: io::Error| Refusal::Unreadable {
        detail: e.to_string(),
    };
    let mut file = io::BufReader::new(File::open(archive).map_err(unreadable)?);
    let (expected, computed) = match checksum {
        self_update::Checksum::Sha256(hex) => {
            let mut h = sha2::Sha256::new();
            io::copy(&mut file, &mut h).map_err(unreadable)?;
            (hex, hex::encode(h.finalize()))
        }
        self_update::Checksum::Sha512(hex) => {
            let mut h = sha2::Sha512::new();
            io::copy(&mut file, &mut h).map_err(unreadable)?;
            (hex, hex::encode(h.finalize()))
        }
        _ => return Err(Refusal::BadDigest),
    };
    if expected.trim().eq_ignore_ascii_case(&computed) {
        Ok(())
    } else {
        Err(Refusal::ChecksumMismatch)
    }
}

/// Checks the archive's zipsign signature with `keys`. The context is the file name of
/// `archive`, which the caller has made the exact expected asset name.
pub fn verify_signature(archive: &Path, keys: &TrustedKeys) -> Result<(), Refusal> {
    let keys = keys.as_slice();
    // `TrustedKeys` is never empty; self_update would treat an empty list as "accept anything",
    // so check it again right here rather than rely on that invariant alone.
    if keys.is_empty() {
        return Err(Refusal::SignatureMismatch);
    }
    match self_update::verify_signature(archive, keys) {
        Ok(()) => Ok(()),
        Err(self_update::errors::Error::Signature(inner)) => Err(classify_signature_error(&*inner)),
        Err(self_update::errors::Error::NoSignatures(_)) => Err(Refusal::Unsigned),
        Err(e) => Err(Refusal::Unreadable {
            detail: e.to_string(),
        }),
    }
}

/// zipsign reports "no matching key/signature pair" (wrong key, tampered data, other context)
/// without an underlying cause, and "could not find/read signatures" (an unsigned archive) with
/// one.
fn classify_signature_error(e: &(dyn std::error::Error + 'static)) -> Refusal {
    use self_update::zipsign_api::ZipsignError;
    if let Some(ZipsignError::VerifyTar(inner)) = e.downcast_ref::<ZipsignError>() {
        return if std::error::Error::source(inner).is_none() {
            Refusal::SignatureMismatch
        } else {
            Refusal::Unsigned
        };
    }
    if let Some(ZipsignError::NoMatch(_)) = e.downcast_ref::<ZipsignError>() {
        return Refusal::SignatureMismatch;
    }
    Refusal::Unsigned
}

/// Extracts `arbosync-<v>-<target>/bin/<name>` for each of [`BINARIES`] into `into` (mode 0755).
/// The agent binary is required; the dashboard is optional. Nothing else is written: entries are
/// matched by exact path, only regular files, each size-capped.
pub fn extract_binaries(
    archive: &Path,
    version: &Version,
    target: &str,
    into: &Path,
) -> Result<Vec<String>, Refusal> {
    let root = archive_root(version, target);
    let file = File::open(archive).map_err(|e| Refusal::Unreadable {
        detail: e.to_string(),
    })?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let bad = |e: io::Error| Refusal::BadArchive {
        detail: e.to_string(),
    };
    let mut found = Vec::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let Some(name) = BINARIES
            .iter()
            .find(|b| path == Path::new(&root).join("bin").join(b))
        else {
            continue;
        };
        if !entry.header().entry_type().is_file() || found.contains(&name.to_string()) {
            return Err(Refusal::BadArchive {
                detail: format!("{} is not a single regular file", path.display()),
            });
        }
        if entry.header().size().map_err(bad)? > MAX_BINARY_BYTES {
            return Err(Refusal::TooLarge);
        }
        let dest = into.join(name);
        let mut out = File::create(&dest).map_err(|e| Refusal::Unreadable {
            detail: e.to_string(),
        })?;
        io::copy(&mut (&mut entry).take(MAX_BINARY_BYTES), &mut out).map_err(bad)?;
        out.set_permissions(fs::Permissions::from_mode(0o755))
            .and_then(|()| out.sync_all())
            .map_err(|e| Refusal::Unreadable {
                detail: e.to_string(),
            })?;
        found.push(name.to_string());
    }
    if !found.iter().any(|n| n == BINARIES[0]) {
        return Err(Refusal::MissingBinary {
            path: format!("{root}/bin/{}", BINARIES[0]),
        });
    }
    Ok(found)
}

/// Runs `<binary> --version` and requires exit 0 and output starting with `arbosync-agent `.
pub async fn smoke_test(binary: &Path) -> Result<(), Refusal> {
    let run = tokio::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(SMOKE_TEST_TIMEOUT, run).await {
        Err(_) => {
            return Err(Refusal::BinaryDoesNotRun {
                detail: format!(
                    "`--version` did not finish within {}s",
                    SMOKE_TEST_TIMEOUT.as_secs()
                ),
            });
        }
        Ok(Err(e)) => {
            return Err(Refusal::BinaryDoesNotRun {
                detail: e.to_string(),
            });
        }
        Ok(Ok(o)) => o,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.starts_with("arbosync-agent ") {
        return Err(Refusal::BinaryDoesNotRun {
            detail: format!("`--version` exited with {}", output.status),
        });
    }
    Ok(())
}
