//! The release channel's manifest: fetching it and deciding which entry, if any, may be installed.
//!
//! The format is self_update's manifest backend (schema 1), parsed with
//! `self_update::backends::manifest::parse_manifest` (relative asset URLs resolve against the
//! manifest's directory):
//!
//! ```json
//! {"schema": 1, "releases": [{"version": "1.4.2", "assets": [
//!   {"name": "arbosync-1.4.2-x86_64-unknown-linux-gnu.tar.gz",
//!    "url": "arbosync-1.4.2-x86_64-unknown-linux-gnu.tar.gz", "digest": "sha256:…"}]}]}
//! ```
//!
//! The decision is a pure function ([`assess_release`], [`select`]) so that every refusal rule
//! is unit-tested without a network. The manifest itself is not trusted: what makes an entry
//! installable is the archive's signature, whose zipsign context is the asset's file name, and
//! the asset's file name must be exactly `arbosync-<version>-<target>.tar.gz`
//! ([`asset_name`]). So an old, validly signed archive cannot be re-published under a newer
//! version number: renaming it breaks the signature, and keeping its name breaks the name rule.

use std::time::Duration;

use semver::Version;
use serde::Serialize;
use url::Url;

use super::{Refusal, UpdateError, redact_url};
use crate::config::UpdateChannel;

/// Largest manifest accepted (a manifest is a few KiB).
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// Timeout of the manifest request.
pub const MANIFEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The file name a release archive must have for `version` on `target`.
pub fn asset_name(version: &Version, target: &str) -> String {
    format!("arbosync-{version}-{target}.tar.gz")
}

/// The top directory inside the archive (`arbosync-<version>-<target>/`).
pub fn archive_root(version: &Version, target: &str) -> String {
    format!("arbosync-{version}-{target}")
}

/// Parses a file name of the [`asset_name`] form back into its version, for `target`.
pub fn version_from_asset_name(name: &str, target: &str) -> Option<Version> {
    let rest = name.strip_prefix("arbosync-")?;
    let rest = rest.strip_suffix(".tar.gz")?;
    let version = rest.strip_suffix(target)?.strip_suffix('-')?;
    let version = Version::parse(version).ok()?;
    (asset_name(&version, target) == name).then_some(version)
}

/// One release as listed in the manifest (not yet trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseEntry {
    pub version: String,
    pub assets: Vec<AssetEntry>,
}

/// One downloadable file of a release (not yet trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetEntry {
    pub name: String,
    /// Absolute URL (relative URLs were resolved against the manifest's location).
    pub url: String,
    /// `sha256:<hex>` (or `sha512:<hex>`).
    pub digest: Option<String>,
}

/// A release that passed [`assess_release`]: it may be downloaded and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    #[serde(serialize_with = "ser_version")]
    pub version: Version,
    pub asset_name: String,
    pub url: String,
    pub digest: String,
}

fn ser_version<S: serde::Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// What the updater knows when it judges a manifest entry.
#[derive(Debug, Clone)]
pub struct AssessContext<'a> {
    /// The running (installed) version.
    pub current: &'a Version,
    /// The highest version ever installed and confirmed healthy (anti-rollback floor).
    pub floor: Option<&'a Version>,
    pub channel: &'a UpdateChannel,
    /// The target triple of this build, part of the asset name.
    pub target: &'a str,
    /// Versions that were rolled back after a failed health check (never re-installed).
    pub rejected: &'a [Version],
}

/// Is this manifest entry acceptable? `Ok` means "download it and verify it"; the signature
/// check comes later. Rules, in order: a valid semver version; no pre-release on the stable
/// channel; newer than the running version; not lower than the floor; not previously rolled back;
/// exactly one asset named [`asset_name`] for this target; an http(s) URL (plain http only to a
/// loopback host); a digest present.
pub fn assess_release(entry: &ReleaseEntry, ctx: &AssessContext<'_>) -> Result<Candidate, Refusal> {
    let version = Version::parse(entry.version.trim()).map_err(|_| Refusal::InvalidVersion)?;
    if !version.pre.is_empty() && *ctx.channel != UpdateChannel::Beta {
        return Err(Refusal::PrereleaseOnStable);
    }
    if version <= *ctx.current {
        return Err(Refusal::NotNewer {
            current: ctx.current.to_string(),
        });
    }
    if let Some(floor) = ctx.floor
        && version < *floor
    {
        return Err(Refusal::BelowFloor {
            floor: floor.to_string(),
        });
    }
    if ctx.rejected.contains(&version) {
        return Err(Refusal::RolledBackBefore);
    }
    let expected = asset_name(&version, ctx.target);
    let mut matching = entry.assets.iter().filter(|a| a.name == expected);
    let asset = match (matching.next(), matching.next()) {
        (Some(a), None) => a,
        (Some(_), Some(_)) => return Err(Refusal::DuplicateAsset { expected }),
        (None, _) => return Err(Refusal::NoAssetForTarget { expected }),
    };
    check_asset_url(&asset.url)?;
    let digest = match &asset.digest {
        Some(d) if !d.trim().is_empty() => d.trim().to_string(),
        _ => return Err(Refusal::NoDigest),
    };
    Ok(Candidate {
        version,
        asset_name: expected,
        url: asset.url.clone(),
        digest,
    })
}

/// HTTPS, or plain HTTP to a loopback host (the config applies the same rule to `manifest_url`).
fn check_asset_url(raw: &str) -> Result<(), Refusal> {
    let url = Url::parse(raw).map_err(|_| Refusal::InsecureUrl)?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(Refusal::InsecureUrl),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// What [`select`] found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Nothing newer than the running version.
    UpToDate,
    /// The newest acceptable release.
    Available(Candidate),
    /// The manifest offers something, but nothing acceptable: the newest entry and why.
    Refused { version: String, reason: Refusal },
}

/// Picks the newest acceptable release. Entries are tried newest first; the first one that
/// passes [`assess_release`] wins. When none does, the newest entry's refusal is reported (an
/// entry equal to the running version means "up to date").
pub fn select(entries: &[ReleaseEntry], ctx: &AssessContext<'_>) -> Selection {
    let mut parsed: Vec<(Version, &ReleaseEntry)> = entries
        .iter()
        .filter_map(|e| Version::parse(e.version.trim()).ok().map(|v| (v, e)))
        .filter(|(v, _)| v.pre.is_empty() || *ctx.channel == UpdateChannel::Beta)
        .collect();
    parsed.sort_by(|a, b| b.0.cmp(&a.0));
    let Some((newest, newest_entry)) = parsed.first() else {
        return Selection::UpToDate;
    };
    if newest == ctx.current {
        return Selection::UpToDate;
    }
    let mut first_refusal = None;
    for (_, entry) in &parsed {
        match assess_release(entry, ctx) {
            Ok(c) => return Selection::Available(c),
            Err(reason) => {
                if first_refusal.is_none() {
                    first_refusal = Some(reason);
                }
            }
        }
    }
    match first_refusal {
        Some(reason) => Selection::Refused {
            version: newest_entry.version.trim().to_string(),
            reason,
        },
        None => Selection::UpToDate,
    }
}

/// Fetches and parses the manifest at `url`.
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<ReleaseEntry>, UpdateError> {
    let shown = redact_url(url);
    let err = |message: String| UpdateError::Manifest {
        url: shown.clone(),
        message,
    };
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(MANIFEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| err(describe_reqwest(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(err(format!("the server answered HTTP {}", status.as_u16())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| err(describe_reqwest(&e)))?
    {
        if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(err(format!(
                "larger than {MAX_MANIFEST_BYTES} bytes; not a release manifest"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let body = String::from_utf8(body).map_err(|_| err("not UTF-8".into()))?;
    parse(&body, url).map_err(err)
}

/// Parses a manifest body (schema 1) with self_update's parser.
pub fn parse(body: &str, manifest_url: &str) -> Result<Vec<ReleaseEntry>, String> {
    let releases = self_update::backends::manifest::parse_manifest(body, manifest_url)
        .map_err(|e| format!("not a valid release manifest: {e}"))?;
    Ok(releases
        .into_iter()
        .map(|r| ReleaseEntry {
            version: r.version().to_string(),
            assets: r
                .assets()
                .iter()
                .map(|a| AssetEntry {
                    name: a.name().to_string(),
                    url: a.download_url().to_string(),
                    digest: a.digest().map(str::to_string),
                })
                .collect(),
        })
        .collect())
}

/// A reqwest error without its URL (which could carry credentials).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the response body could not be read"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "x86_64-unknown-linux-gnu";

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn entry(version: &str) -> ReleaseEntry {
        ReleaseEntry {
            version: version.into(),
            assets: vec![AssetEntry {
                name: format!("arbosync-{version}-{T}.tar.gz"),
                url: format!("https://releases.example.org/stable/arbosync-{version}-{T}.tar.gz"),
                digest: Some("sha256:00".into()),
            }],
        }
    }

    fn ctx<'a>(
        current: &'a Version,
        floor: Option<&'a Version>,
        channel: &'a UpdateChannel,
        rejected: &'a [Version],
    ) -> AssessContext<'a> {
        AssessContext {
            current,
            floor,
            channel,
            target: T,
            rejected,
        }
    }

    #[test]
    fn a_newer_release_with_its_asset_is_accepted() {
        let cur = v("1.0.0");
        let c = assess_release(
            &entry("1.1.0"),
            &ctx(&cur, None, &UpdateChannel::Stable, &[]),
        )
        .unwrap();
        assert_eq!(c.version, v("1.1.0"));
        assert_eq!(c.asset_name, format!("arbosync-1.1.0-{T}.tar.gz"));
    }

    #[test]
    fn older_equal_and_below_floor_are_refused() {
        let cur = v("1.0.0");
        let st = UpdateChannel::Stable;
        assert!(matches!(
            assess_release(&entry("0.9.0"), &ctx(&cur, None, &st, &[])),
            Err(Refusal::NotNewer { .. })
        ));
        assert!(matches!(
            assess_release(&entry("1.0.0"), &ctx(&cur, None, &st, &[])),
            Err(Refusal::NotNewer { .. })
        ));
        let floor = v("1.2.0");
        assert!(matches!(
            assess_release(&entry("1.1.0"), &ctx(&cur, Some(&floor), &st, &[])),
            Err(Refusal::BelowFloor { .. })
        ));
        // Equal to the floor is allowed (re-installing what was installed before).
        assert!(assess_release(&entry("1.2.0"), &ctx(&cur, Some(&floor), &st, &[])).is_ok());
    }

    #[test]
    fn prereleases_only_on_beta() {
        let cur = v("1.0.0");
        assert_eq!(
            assess_release(
                &entry("1.1.0-beta.1"),
                &ctx(&cur, None, &UpdateChannel::Stable, &[])
            ),
            Err(Refusal::PrereleaseOnStable)
        );
        assert!(
            assess_release(
                &entry("1.1.0-beta.1"),
                &ctx(&cur, None, &UpdateChannel::Beta, &[])
            )
            .is_ok()
        );
    }

    #[test]
    fn asset_rules() {
        let cur = v("1.0.0");
        let st = UpdateChannel::Stable;
        let c = ctx(&cur, None, &st, &[]);
        // The 1.0.5 archive listed under 1.2.0: its name does not match the version.
        let mut republished = entry("1.2.0");
        republished.assets[0].name = format!("arbosync-1.0.5-{T}.tar.gz");
        assert!(matches!(
            assess_release(&republished, &c),
            Err(Refusal::NoAssetForTarget { .. })
        ));
        let mut other_target = entry("1.2.0");
        other_target.assets[0].name = "arbosync-1.2.0-aarch64-unknown-linux-gnu.tar.gz".into();
        assert!(matches!(
            assess_release(&other_target, &c),
            Err(Refusal::NoAssetForTarget { .. })
        ));
        let mut no_digest = entry("1.2.0");
        no_digest.assets[0].digest = None;
        assert_eq!(assess_release(&no_digest, &c), Err(Refusal::NoDigest));
        let mut plain_http = entry("1.2.0");
        plain_http.assets[0].url = "http://releases.example.org/x.tar.gz".into();
        assert_eq!(assess_release(&plain_http, &c), Err(Refusal::InsecureUrl));
        let mut loopback = entry("1.2.0");
        loopback.assets[0].url = "http://127.0.0.1:8080/x.tar.gz".into();
        assert!(assess_release(&loopback, &c).is_ok());
        let mut dup = entry("1.2.0");
        dup.assets.push(dup.assets[0].clone());
        assert!(matches!(
            assess_release(&dup, &c),
            Err(Refusal::DuplicateAsset { .. })
        ));
    }

    #[test]
    fn rolled_back_versions_are_skipped() {
        let cur = v("1.0.0");
        let rejected = [v("1.1.0")];
        let st = UpdateChannel::Stable;
        let c = ctx(&cur, None, &st, &rejected);
        assert_eq!(
            assess_release(&entry("1.1.0"), &c),
            Err(Refusal::RolledBackBefore)
        );
        // A newer fix is taken; with only the bad one, the refusal is reported.
        assert!(matches!(
            select(&[entry("1.1.0"), entry("1.1.1")], &c),
            Selection::Available(Candidate { ref version, .. }) if *version == v("1.1.1")
        ));
        assert!(matches!(
            select(&[entry("1.1.0")], &c),
            Selection::Refused {
                reason: Refusal::RolledBackBefore,
                ..
            }
        ));
    }

    #[test]
    fn select_picks_the_newest_acceptable() {
        let cur = v("1.0.0");
        let st = UpdateChannel::Stable;
        let c = ctx(&cur, None, &st, &[]);
        assert_eq!(select(&[], &c), Selection::UpToDate);
        assert_eq!(select(&[entry("1.0.0")], &c), Selection::UpToDate);
        let mut broken_newest = entry("1.3.0");
        broken_newest.assets.clear();
        match select(&[entry("1.1.0"), broken_newest, entry("1.2.0")], &c) {
            Selection::Available(c) => assert_eq!(c.version, v("1.2.0")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            select(&[entry("0.9.0")], &c),
            Selection::Refused {
                reason: Refusal::NotNewer { .. },
                ..
            }
        ));
        // Pre-releases are invisible on stable.
        assert_eq!(select(&[entry("1.1.0-rc.1")], &c), Selection::UpToDate);
    }

    #[test]
    fn asset_names_round_trip() {
        let ver = v("1.4.2-beta.1");
        let name = asset_name(&ver, T);
        assert_eq!(version_from_asset_name(&name, T), Some(ver));
        assert_eq!(
            version_from_asset_name("arbosync-1.4.2-other.tar.gz", T),
            None
        );
        assert_eq!(
            version_from_asset_name(&format!("arbosync-../1-{T}.tar.gz"), T),
            None
        );
    }

    #[test]
    fn manifest_parsing_resolves_relative_urls() {
        let body = format!(
            r#"{{"schema":1,"releases":[{{"version":"1.1.0","assets":[{{"name":"arbosync-1.1.0-{T}.tar.gz","url":"arbosync-1.1.0-{T}.tar.gz","digest":"sha256:ab"}}]}},{{"version":"nightly","assets":[]}}]}}"#
        );
        let entries = parse(&body, "https://r.example.org/stable/manifest.json").unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].assets[0].url,
            format!("https://r.example.org/stable/arbosync-1.1.0-{T}.tar.gz")
        );
        assert!(parse(r#"{"schema":2,"releases":[]}"#, "https://x/m.json").is_err());
    }
}
