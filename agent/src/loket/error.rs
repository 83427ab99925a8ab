//! The error type of the Loket client, [`LoketError`], and how it is classified.
//!
//! Messages never contain tokens, response bodies or personal data. The only text taken from a
//! response is Loket's `messages[].description` on a 400 and the `reason` of a 403, both of which
//! Loket writes for the integrator.

use std::time::Duration;

use serde::Deserialize;

/// A message from Loket's response envelope (`messages[]`), as sent with a 400.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiMessage {
    /// Loket's numeric code. Loket warns it may change; use it for display only.
    pub code: Option<i64>,
    /// The entity the message is about, in multi-item operations.
    pub id: Option<String>,
    /// `BrokenBusinessRule`, `Warning`, `Exception` or `NotFound`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Loket's human-readable description.
    pub description: Option<String>,
}

/// Everything that can go wrong when talking to Loket.
#[derive(Debug, thiserror::Error)]
pub enum LoketError {
    /// 400: Loket received the request but did not process it.
    #[error("Loket rejected the request to {path} (400): {}", describe_messages(.messages))]
    BadRequest {
        /// The request path (ids only, no query).
        path: String,
        /// Loket's reasons.
        messages: Vec<ApiMessage>,
    },
    /// 401 again after one token refresh and one retry.
    #[error("Loket did not accept a freshly refreshed access token (401 after a refresh)")]
    Unauthorized,
    /// 403: the client, user, role, module or entity is not authorised for this activity.
    #[error("Loket denied access to {activity} (403): {message}")]
    Forbidden {
        /// The Loket activity from the 403 reason (for example `GetAbsencesByEmployeeId`), or the path.
        activity: String,
        /// Loket's explanation.
        message: String,
    },
    /// 404.
    #[error("Loket has no resource at {path} (404)")]
    NotFound {
        /// The request path.
        path: String,
    },
    /// A status code the client does not expect for a GET (for example 405 or 409).
    #[error("Loket answered {path} with unexpected status {status}")]
    UnexpectedStatus {
        /// The request path.
        path: String,
        /// The HTTP status code.
        status: u16,
    },
    /// A failure that may go away by itself: 429, 5xx, a timeout, a broken connection or a body
    /// cut off mid-transfer. The client has already retried; the caller may try again later.
    #[error("temporary failure talking to Loket: {reason}{}", retry_after_suffix(.retry_after))]
    Transient {
        /// What happened (status code or transport error class).
        reason: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The body was not valid JSON or did not match the model. Nothing of it is used.
    #[error("Loket sent a body for {path} that cannot be used: {detail}")]
    MalformedBody {
        /// The request path.
        path: String,
        /// What is wrong, without any of the body's content.
        detail: String,
    },
    /// The pages of a list did not fit together (the page count changed, or items went missing).
    #[error("the pages of {path} did not fit together: {detail}")]
    InconsistentPaging {
        /// The request path.
        path: String,
        /// What did not fit.
        detail: String,
    },
    /// The refresh token was rejected (`invalid_grant` or `invalid_client`): a person must give
    /// consent again. Never retried.
    #[error("Loket rejected the refresh token ({error}); the connection needs a new consent")]
    InvalidGrant {
        /// The OAuth error code.
        error: String,
    },
    /// No refresh token is stored for this connection: a person must give consent first.
    #[error("no refresh token is stored for this connection; the connection needs a consent")]
    MissingRefreshToken,
    /// Any other error from the OAuth token endpoint.
    #[error("the Loket OAuth server refused the token request (status {status}): {error}")]
    OAuth {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code (RFC 6749), or a description of what was wrong with the answer.
        error: String,
    },
    /// The connection settings are unusable.
    #[error("invalid Loket connection settings: {0}")]
    Config(String),
    /// An id that is not safe to put into a path (ids must be Loket UUIDs).
    #[error("invalid {what} id (only letters, digits and '-' are allowed)")]
    InvalidId {
        /// Which kind of id.
        what: &'static str,
    },
    /// The refresh-token store failed.
    #[error(transparent)]
    TokenStore(#[from] TokenStoreError),
}

impl LoketError {
    /// True for failures worth retrying later without any change of configuration.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LoketError::Transient { .. } | LoketError::InconsistentPaging { .. }
        )
    }

    /// True when a person must give consent again before this connection can work.
    pub fn needs_reconnect(&self) -> bool {
        matches!(
            self,
            LoketError::InvalidGrant { .. } | LoketError::MissingRefreshToken
        )
    }

    /// The server's `Retry-After`, if this error carries one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LoketError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn transient(reason: impl Into<String>) -> Self {
        LoketError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// A failure of a [`TokenStore`](super::auth::TokenStore) implementation.
///
/// The message must not contain the token itself.
#[derive(Debug, thiserror::Error)]
#[error("refresh-token store: {message}")]
pub struct TokenStoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TokenStoreError {
    /// An error with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        TokenStoreError {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and the underlying cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TokenStoreError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Loket's own text, made safe to log and show: printable characters, at most 300 of them,
/// and every run of 8 or more digits (a BSN, an account or phone number that Loket might echo
/// from the request) replaced by `<number>`. A last line of defence: arbosync never sends
/// such values, but Loket's messages are outside its control.
pub fn scrub_text(text: &str) -> String {
    let cleaned: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    let mut out = String::with_capacity(cleaned.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 8 {
            out.push_str("<number>");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in cleaned.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

fn describe_messages(messages: &[ApiMessage]) -> String {
    let parts: Vec<String> = messages
        .iter()
        .map(|m| {
            let kind = m.kind.as_deref().map(scrub_text);
            let kind = kind.as_deref().unwrap_or("message");
            let description = m.description.as_deref().map(scrub_text);
            let description = description.as_deref().unwrap_or("(no description)");
            match m.code {
                Some(code) => format!("{kind} {code}: {description}"),
                None => format!("{kind}: {description}"),
            }
        })
        .collect();
    if parts.is_empty() {
        "no reason given".to_owned()
    } else {
        parts.join("; ")
    }
}

fn retry_after_suffix(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {} s)", d.as_secs()),
        None => String::new(),
    }
}

/// Extracts the activity from a 403 message such as
/// `Insufficient rights for this request, reason "GetAbsencesByEmployeeId"`.
pub(crate) fn forbidden_reason(message: &str) -> Option<String> {
    let (_, after) = message.split_once("reason")?;
    let start = after.find('"')?;
    let rest = &after[start + 1..];
    let end = rest.find('"')?;
    let reason = rest[..end].trim();
    (!reason.is_empty()).then(|| reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_reason_is_taken_from_quotes() {
        assert_eq!(
            forbidden_reason(
                "Insufficient rights for this request, reason \"GetAbsencesByEmployeeId\""
            )
            .as_deref(),
            Some("GetAbsencesByEmployeeId")
        );
        assert_eq!(forbidden_reason("Insufficient rights"), None);
        assert_eq!(forbidden_reason("reason \"\""), None);
        assert_eq!(forbidden_reason("reason \"unterminated"), None);
    }

    #[test]
    fn classification() {
        assert!(LoketError::transient("503").is_transient());
        assert!(!LoketError::Unauthorized.is_transient());
        assert!(LoketError::MissingRefreshToken.needs_reconnect());
        assert!(
            LoketError::InvalidGrant {
                error: "invalid_grant".into()
            }
            .needs_reconnect()
        );
        let e = LoketError::Transient {
            reason: "429".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.to_string().contains("retry after 7 s"));
    }

    #[test]
    fn loket_text_loses_long_numbers_and_control_characters() {
        assert_eq!(
            scrub_text("BSN 123456782 is ongeldig\n"),
            "BSN <number> is ongeldig"
        );
        assert_eq!(scrub_text("code 1234567 ok"), "code 1234567 ok");
        assert_eq!(scrub_text("999999990"), "<number>");
        assert_eq!(scrub_text(&"x".repeat(400)).len(), 300);
    }

    #[test]
    fn bad_request_lists_descriptions() {
        let e = LoketError::BadRequest {
            path: "/providers/employers".into(),
            messages: vec![ApiMessage {
                code: Some(42),
                id: None,
                kind: Some("BrokenBusinessRule".into()),
                description: Some("Filter is invalid".into()),
            }],
        };
        assert_eq!(
            e.to_string(),
            "Loket rejected the request to /providers/employers (400): BrokenBusinessRule 42: Filter is invalid"
        );
    }
}
