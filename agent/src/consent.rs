//! `connect NAME`: the interactive OAuth consent for a connection.
//!
//! Prints the authorize URL (with a random `state`), then takes the first of: the browser coming
//! back to a loopback redirect listener, or the operator pasting the redirected URL (or just the
//! code) on standard input. The `state` is checked whenever the answer carries one. The code is
//! exchanged and the refresh token stored encrypted, exactly as a refresh would store it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use url::Url;

use crate::config::ConnectionConfig;
use crate::secrets::SecretStore;

/// The redirect URI when the operator gives none: a loopback listener on a fixed port, which
/// must be registered with the Loket client.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8719/callback";
/// How long the consent may take.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("redirect URI {0:?} is not an absolute http(s) URL")]
    BadRedirect(String),
    #[error(
        "cannot listen on {addr} for the redirect: {source} (paste the redirected URL instead)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the answer's state does not match this consent (a stale or forged redirect); start again"
    )]
    StateMismatch,
    #[error("Loket refused the consent: {0}")]
    Denied(String),
    #[error("no authorization code in the answer")]
    NoCode,
    #[error("no answer within {} minutes", CONSENT_TIMEOUT.as_secs() / 60)]
    Timeout,
    #[error("standard input closed before an answer came")]
    InputClosed,
    #[error("the code exchange failed: {0}")]
    Exchange(String),
}

/// The authorize URL for `state`.
pub fn authorize_url(conn: &ConnectionConfig, redirect_uri: &str, state: &str) -> Url {
    let mut url = conn.oauth_url.clone();
    {
        let mut path = url.path().trim_end_matches('/').to_string();
        path.push_str("/authorize");
        url.set_path(&path);
    }
    url.query_pairs_mut()
        .append_pair("client_id", &conn.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "all")
        .append_pair("state", state);
    url
}

/// The code from an answer: a redirected URL (`...?code=..&state=..`), a query string, or a
/// bare code. A carried `state` must match; an `error` is reported.
pub fn code_from_answer(answer: &str, state: &str) -> Result<String, ConsentError> {
    let answer = answer.trim();
    let query = if let Some((_, q)) = answer.split_once('?') {
        q
    } else if answer.contains('=') {
        answer
    } else if !answer.is_empty() && !answer.contains(char::is_whitespace) {
        return Ok(answer.to_string());
    } else {
        return Err(ConsentError::NoCode);
    };
    let query = query.split('#').next().unwrap_or("");
    let mut code = None;
    let mut got_state = None;
    let mut error = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => got_state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(s) = got_state
        && s != state
    {
        return Err(ConsentError::StateMismatch);
    }
    if let Some(e) = error {
        return Err(ConsentError::Denied(e));
    }
    code.filter(|c| !c.is_empty()).ok_or(ConsentError::NoCode)
}

/// A random `state`: 128 bits, hex.
pub fn new_state() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Runs the consent and stores the refresh token. `out` gets the operator-facing text.
pub async fn run(
    conn: &ConnectionConfig,
    secrets: Arc<SecretStore>,
    redirect_uri: &str,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), ConsentError> {
    let redirect = Url::parse(redirect_uri)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| ConsentError::BadRedirect(redirect_uri.to_string()))?;
    let state = new_state();
    let url = authorize_url(conn, redirect_uri, &state);

    let listener = match loopback_addr(&redirect) {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ConsentError::Listen { addr, source })?,
        ),
        None => None,
    };
    let _ = writeln!(
        out,
        "Open this URL in a browser and log in as the Loket user of connection `{}`:\n\n  {url}\n",
        conn.name
    );
    if listener.is_some() {
        let _ = writeln!(
            out,
            "Waiting for the browser to come back to {redirect_uri} ...\nOr paste the URL the browser ended on (or the code) here and press Enter:"
        );
    } else {
        let _ = writeln!(
            out,
            "Then paste the URL the browser ended on (or the code) here and press Enter:"
        );
    }
    let _ = out.flush();

    let answer = tokio::time::timeout(CONSENT_TIMEOUT, async {
        tokio::select! {
            a = from_listener(listener.as_ref(), &redirect, &state) => a,
            a = from_stdin(&state, listener.is_some()) => a,
        }
    })
    .await
    .map_err(|_| ConsentError::Timeout)??;

    let client = crate::sync::connection::client(conn, secrets)
        .map_err(|e| ConsentError::Exchange(e.to_string()))?;
    client
        .exchange_code(&answer, redirect_uri)
        .await
        .map_err(|e| ConsentError::Exchange(e.to_string()))?;
    Ok(())
}

fn loopback_addr(redirect: &Url) -> Option<SocketAddr> {
    if redirect.scheme() != "http" {
        return None;
    }
    let ip: std::net::IpAddr = match redirect.host()? {
        url::Host::Ipv4(ip) => ip.into(),
        url::Host::Ipv6(ip) => ip.into(),
        url::Host::Domain("localhost") => std::net::Ipv4Addr::LOCALHOST.into(),
        url::Host::Domain(_) => return None,
    };
    ip.is_loopback()
        .then(|| SocketAddr::new(ip, redirect.port_or_known_default().unwrap_or(80)))
}

/// Serves the loopback redirect until a request on the redirect path brings a valid answer.
async fn from_listener(
    listener: Option<&TcpListener>,
    redirect: &Url,
    state: &str,
) -> Result<String, ConsentError> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        // Read the request head (bounded); the request line is all we need.
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let line = String::from_utf8_lossy(&head);
        let target = line
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let path = target.split('?').next().unwrap_or("");
        if path != redirect.path() {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let result = code_from_answer(target, state);
        let body = match &result {
            Ok(_) => "arbosync: consent received. You can close this window.\n".to_string(),
            Err(e) => format!("arbosync: {e}\n"),
        };
        let status = if result.is_ok() {
            "200 OK"
        } else {
            "400 Bad Request"
        };
        let _ = stream
            .write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        // A forged or stale redirect does not end the consent; the real one may still come.
        if let Ok(code) = result {
            return Ok(code);
        }
    }
}

async fn from_stdin(state: &str, has_listener: bool) -> Result<String, ConsentError> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim().is_empty() => continue,
            Ok(Some(line)) => return code_from_answer(&line, state),
            // Without standard input, the browser's redirect is the only way left.
            Ok(None) | Err(_) if has_listener => return std::future::pending().await,
            Ok(None) | Err(_) => return Err(ConsentError::InputClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_and_state_checked() {
        let s = "abc";
        assert_eq!(
            code_from_answer("http://127.0.0.1:8719/callback?code=XYZ&state=abc", s).unwrap(),
            "XYZ"
        );
        assert_eq!(code_from_answer("code=XYZ&state=abc", s).unwrap(), "XYZ");
        assert_eq!(code_from_answer("  XYZ  ", s).unwrap(), "XYZ");
        assert!(matches!(
            code_from_answer("http://x/cb?code=XYZ&state=other", s),
            Err(ConsentError::StateMismatch)
        ));
        assert!(matches!(
            code_from_answer("http://x/cb?error=access_denied&state=abc", s),
            Err(ConsentError::Denied(_))
        ));
        assert!(matches!(
            code_from_answer("http://x/cb?state=abc", s),
            Err(ConsentError::NoCode)
        ));
        assert!(matches!(code_from_answer("", s), Err(ConsentError::NoCode)));
    }

    #[test]
    fn loopback_redirects_get_a_listener_and_others_do_not() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            loopback_addr(&u("http://127.0.0.1:8719/callback")),
            Some("127.0.0.1:8719".parse().unwrap())
        );
        assert_eq!(
            loopback_addr(&u("http://localhost:9000/cb")),
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(loopback_addr(&u("https://arbo.example/cb")), None);
        assert_eq!(loopback_addr(&u("http://arbo.example/cb")), None);
    }
}
