//! TLS for the PostgreSQL sink: reading libpq's TLS parameters out of the `[database] url`, the
//! rustls connector (with full certificate verification), and clear messages for TLS failures.
//!
//! `sslmode` in the URL decides, stricter than libpq where libpq is weak:
//!
//! - `disable`: plain TCP.
//! - `prefer` (also when `sslmode` is absent): plain TCP, as before TLS support. libpq's `prefer`
//!   tries TLS *without* verifying the certificate and falls back to plain text when that fails:
//!   an active attacker gets plain text either way, so it only adds a false sense of security,
//!   and the agent never connects with an unverified certificate. Set `verify-full` to get TLS.
//! - `require`, `verify-ca`, `verify-full`: TLS, always with FULL verification: the certificate
//!   chain must lead to the system trust store or to the CA in `sslrootcert=/path/ca.pem`, and
//!   the certificate must be valid for the host name in the URL. This is stricter than libpq,
//!   where `require` checks nothing and `verify-ca` does not check the host name: a TLS server
//!   that cannot prove who it is gets no rows (reliability-security.md §3.4, R19). There is no
//!   switch to turn verification off; a private CA goes in `sslrootcert`.
//!
//! `sslrootcert` *adds* its CA(s) to the system trust store (libpq uses it instead of its
//! default; `sslrootcert=system` means the system store alone, as in libpq). A `sslrootcert`
//! without `sslmode` means `verify-full` (libpq 16 does this for `system`); with `disable` or
//! `prefer` it is refused rather than ignored. Client certificates (`sslcert`, `sslkey`) and CRLs
//! are not supported and are refused by name. TLS is not available over a Unix socket.
//!
//! tokio-postgres only knows `disable`, `prefer` and `require` and no `sslrootcert`, so
//! [`split_url`] takes those parameters out of the URL before tokio-postgres parses it. Nothing
//! here ever prints the URL (it may hold a password).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::SinkError;

/// The `sslmode` of the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Option<TlsMode> {
        Some(match value {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the connection must be TLS (with full verification).
    pub(crate) fn uses_tls(self) -> bool {
        matches!(
            self,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull
        )
    }

    /// The tokio-postgres mode. `prefer` is only ever used with `NoTls` (plain).
    pub(crate) fn ssl_mode(self) -> SslMode {
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS parameters taken out of the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub(crate) mode: TlsMode,
    /// An extra trusted CA bundle (`sslrootcert`), `None` for the system store alone.
    pub(crate) root_cert: Option<PathBuf>,
}

/// Parameters refused by name: the agent cannot honour them, and ignoring them could hide that.
const UNSUPPORTED: &[&str] = &["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];

fn invalid(reason: impl Into<String>) -> SinkError {
    SinkError::InvalidUrl {
        reason: reason.into(),
    }
}

/// Splits `sslmode` and `sslrootcert` out of a `postgres://` URL: returns the URL without them
/// (for tokio-postgres, whose parser does not know `verify-*` nor `sslrootcert`) and what they
/// ask for. The query is found the way tokio-postgres finds it (after the credentials, which end
/// at the first `@`); other parameters are passed on untouched.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsParams), SinkError> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| invalid("a PostgreSQL url starts with postgres:// or postgresql://"))?;
    let scheme_len = url.len() - rest.len();
    let after_credentials = rest.find('@').map_or(0, |at| at + 1);
    let query_at = rest[after_credentials..]
        .find('?')
        .map(|q| scheme_len + after_credentials + q);
    let (base, query) = match query_at {
        Some(at) => (&url[..at], &url[at + 1..]),
        None => (url, ""),
    };
    // A TLS parameter outside the query (e.g. before a raw `@` in a parameter value) would be
    // read as something else by tokio-postgres and silently lose its meaning: refuse it.
    if base.contains("sslmode=") || base.contains("sslrootcert=") {
        return Err(invalid(
            "sslmode/sslrootcert must be query parameters (percent-encode an @ in a value as %40)",
        ));
    }
    let mut mode = None;
    let mut root_cert: Option<String> = None;
    let mut kept: Vec<&str> = Vec::new();
    let pairs = if query.is_empty() {
        Vec::new()
    } else {
        query.split('&').collect()
    };
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            kept.push(pair);
            continue;
        };
        let key = decode(key)?;
        match key.as_str() {
            "sslmode" => {
                let value = decode(value)?;
                mode = Some(TlsMode::parse(&value).ok_or_else(|| {
                    invalid(
                        "sslmode must be disable, prefer, require, verify-ca or verify-full \
                         (require and verify-ca verify like verify-full)",
                    )
                })?);
            }
            "sslrootcert" => root_cert = Some(decode(value)?),
            k if UNSUPPORTED.contains(&k) => {
                return Err(invalid(format!(
                    "the url parameter {k} is not supported (no client certificates or CRLs); \
                     TLS takes sslmode and sslrootcert"
                )));
            }
            _ => kept.push(pair),
        }
    }
    let had_root_cert = root_cert.is_some();
    let root_cert = match root_cert.as_deref() {
        None | Some("system") => None,
        Some("") => return Err(invalid("sslrootcert is empty")),
        Some(path) => Some(PathBuf::from(path)),
    };
    let mode = match mode {
        Some(m) => m,
        // A CA named without a mode: the user wants verified TLS, not plain text.
        None if had_root_cert => TlsMode::VerifyFull,
        None => TlsMode::Prefer,
    };
    if had_root_cert && !mode.uses_tls() {
        return Err(invalid(format!(
            "sslrootcert is given with sslmode={}, which does not use TLS: set sslmode=verify-full",
            mode.name()
        )));
    }
    let mut stripped = base.to_owned();
    if !kept.is_empty() {
        stripped.push('?');
        stripped.push_str(&kept.join("&"));
    }
    Ok((stripped, TlsParams { mode, root_cert }))
}

/// Percent-decodes like tokio-postgres (`%XX` only; `+` stays `+`).
fn decode(s: &str) -> Result<String, SinkError> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid("a url parameter is not valid UTF-8"))
}

/// The rustls connector: the system trust store plus the CA(s) in `root_cert`, host name
/// verification on, the aws-lc-rs provider, TLS 1.2 and 1.3, ALPN `postgresql` (as libpq 17
/// sends; servers before 17 ignore it). Built once per sink, not per connection.
pub(crate) fn connector(root_cert: Option<&Path>) -> Result<MakeRustlsConnect, SinkError> {
    let mut roots = rustls::RootCertStore::empty();
    // Errors reading single system certificates are not fatal: what loads is used, and an empty
    // store is refused below.
    let native = rustls_native_certs::load_native_certs();
    let (system, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = root_cert {
        let cannot = |what: String| SinkError::Connect {
            reason: format!("sslrootcert {}: {what}", path.display()),
        };
        let pem = std::fs::read(path).map_err(|e| cannot(format!("cannot be read: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| cannot("is not a PEM certificate bundle".to_owned()))?;
        if certs.is_empty() {
            return Err(cannot("holds no PEM certificate".to_owned()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|_| cannot("holds a certificate that is not a valid CA".to_owned()))?;
        }
    } else if system == 0 {
        return Err(SinkError::Connect {
            reason: "TLS to the database is configured, but the system trust store holds no \
                     usable CA certificate and the url names no sslrootcert=/path/ca.pem"
                .to_owned(),
        });
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::Connect {
            reason: format!("cannot set up TLS: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(MakeRustlsConnect::new(config))
}

/// A clear message for a connection error that is a TLS failure, `None` for anything else.
/// Fixed phrases: the certificate details rustls prints (names, times) are not repeated.
pub(crate) fn failure(error: &tokio_postgres::Error, mode: TlsMode) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let mut tls_source = None;
    while let Some(e) = current {
        // tokio-rustls wraps the rustls error in an io::Error, whose `source()` skips it.
        let rustls_error = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = rustls_error {
            return Some(describe(r, mode));
        }
        tls_source.get_or_insert(e);
        current = e.source();
    }
    // tokio-postgres' own TLS errors ("server does not support TLS", ...).
    let text = error.to_string();
    if text.contains("TLS") {
        let detail = tls_source.map(|s| format!(": {s}")).unwrap_or_default();
        return Some(format!("{text}{detail} (sslmode={})", mode.name()));
    }
    None
}

fn describe(error: &rustls::Error, mode: TlsMode) -> String {
    use rustls::CertificateError as C;
    let mode = mode.name();
    let rejected = |why: &str| {
        format!("TLS certificate of the database server rejected (sslmode={mode}): {why}")
    };
    match error {
        rustls::Error::InvalidCertificate(c) => match c {
            C::NotValidForName | C::NotValidForNameContext { .. } => rejected(
                "not valid for this host name (the host in the url must be a name the \
                 certificate is issued for)",
            ),
            C::UnknownIssuer => rejected(
                "unknown issuer (not signed by a CA in the system trust store or in \
                 sslrootcert; name a private CA with sslrootcert=/path/ca.pem)",
            ),
            C::Expired | C::ExpiredContext { .. } => rejected("expired"),
            C::NotValidYet | C::NotValidYetContext { .. } => rejected("not valid yet"),
            C::Revoked => rejected("revoked"),
            C::BadSignature => rejected("its signature does not verify"),
            _ => rejected("invalid"),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "TLS handshake with the database server failed (sslmode={mode}): the server sent \
             the alert {alert:?}"
        ),
        other => format!("TLS handshake with the database server failed (sslmode={mode}): {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, TlsParams) {
        split_url(url).expect("valid url")
    }

    #[test]
    fn without_tls_parameters_the_url_is_unchanged_and_prefer() {
        for url in [
            "postgres://u:p@h:5432/db",
            "postgresql://h/db?application_name=x",
            "postgres://h",
        ] {
            let (out, p) = split(url);
            assert_eq!(out, url);
            assert_eq!(p.mode, TlsMode::Prefer);
            assert_eq!(p.root_cert, None);
        }
    }

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_kept_in_order() {
        let (out, p) = split(
            "postgres://u:p%3Fx@h/db?connect_timeout=3&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem&application_name=a",
        );
        assert_eq!(
            out,
            "postgres://u:p%3Fx@h/db?connect_timeout=3&application_name=a"
        );
        assert_eq!(p.mode, TlsMode::VerifyFull);
        assert_eq!(p.root_cert, Some(PathBuf::from("/tmp/ca x.pem")));
        let (out, p) = split("postgres://h/db?sslmode=disable");
        assert_eq!(
            (out.as_str(), p.mode),
            ("postgres://h/db", TlsMode::Disable)
        );
        for (m, want) in [
            ("require", TlsMode::Require),
            ("verify-ca", TlsMode::VerifyCa),
            ("prefer", TlsMode::Prefer),
        ] {
            assert_eq!(split(&format!("postgres://h/db?sslmode={m}")).1.mode, want);
        }
        // A '?' inside the (raw) password is not the query: tokio-postgres reads up to the '@'.
        let (out, p) = split("postgres://u:a?b@h/db?sslmode=require");
        assert_eq!(
            (out.as_str(), p.mode),
            ("postgres://u:a?b@h/db", TlsMode::Require)
        );
    }

    #[test]
    fn tls_modes_map_to_tokio_postgres() {
        assert!(!TlsMode::Prefer.uses_tls() && !TlsMode::Disable.uses_tls());
        for m in [TlsMode::Require, TlsMode::VerifyCa, TlsMode::VerifyFull] {
            assert!(m.uses_tls());
            assert_eq!(m.ssl_mode(), SslMode::Require);
        }
    }

    #[test]
    fn sslrootcert_means_verify_full_and_is_refused_without_tls() {
        let (_, p) = split("postgres://h/db?sslrootcert=/ca.pem");
        assert_eq!(p.mode, TlsMode::VerifyFull);
        let (_, p) = split("postgres://h/db?sslrootcert=system");
        assert_eq!((p.mode, p.root_cert), (TlsMode::VerifyFull, None));
        for m in ["disable", "prefer"] {
            let e = split_url(&format!("postgres://h/db?sslmode={m}&sslrootcert=/ca.pem"))
                .expect_err("refused")
                .to_string();
            assert!(e.contains("sslrootcert") && e.contains(m), "{e}");
        }
    }

    #[test]
    fn bad_parameters_are_refused_without_echoing_the_url() {
        for (url, needle) in [
            (
                "postgres://u:SECRETPW@h/db?sslmode=verify_full",
                "sslmode must be",
            ),
            ("postgres://u:SECRETPW@h/db?sslcert=/c.pem", "sslcert"),
            ("postgres://u:SECRETPW@h/db?sslkey=/k.pem", "sslkey"),
            ("postgres://u:SECRETPW@h/db?sslrootcert=", "empty"),
            ("postgres://a/sslmode=require@h/db", "query parameters"),
            ("host=h sslmode=require", "postgres://"),
        ] {
            let e = split_url(url).expect_err(url).to_string();
            assert!(e.contains(needle), "{url}: {e}");
            assert!(!e.contains("SECRETPW"), "{url}: {e}");
        }
    }

    #[test]
    fn a_missing_sslrootcert_file_is_named() {
        let e = connector(Some(Path::new("/nonexistent/arbosync-ca.pem")))
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("/nonexistent/arbosync-ca.pem"), "{e}");
        assert!(e.contains("cannot be read"), "{e}");
    }
}
