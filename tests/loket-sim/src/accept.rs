//! Resource-version negotiation from the `Accept` header (`application/json;version=YYYY-MM-DD`).
//!
//! Rules: the newest version dated on or before the requested date is used. A date older
//! than the resource's first version gives **406 Not Acceptable** with a Loket `messages`
//! body (Loket leaves this undocumented). No `version=` parameter (plain
//! `application/json`, `*/*`, or no `Accept` header) gives the NEWEST version (also
//! undocumented; integrations that send plain `application/json` do get data). A malformed
//! version date is a 400; a media type other than JSON is a 406.

use chrono::NaiveDate;

/// Why negotiation failed.
#[derive(Debug, PartialEq)]
pub enum AcceptError {
    /// 400: the header could not be understood.
    BadRequest(String),
    /// 406: no version or media type we can serve.
    NotAcceptable(String),
}

/// Pick a version from `versions` (ascending `yyyy-MM-dd` strings, non-empty).
pub fn negotiate(
    accept: Option<&str>,
    versions: &[&'static str],
) -> Result<&'static str, AcceptError> {
    let newest = versions.last().copied().unwrap_or("2018-01-01");
    let Some(header) = accept.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(newest);
    };
    for range in header.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(
            media.as_str(),
            "application/json" | "application/*" | "*/*" | "text/json"
        ) {
            continue;
        }
        let version = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("version"));
        let Some((_, raw)) = version else {
            return Ok(newest);
        };
        let raw = raw.trim().trim_matches('"');
        let Ok(requested) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") else {
            return Err(AcceptError::BadRequest(format!(
                "The version '{raw}' in the Accept header is not a valid date (yyyy-MM-dd)."
            )));
        };
        let pick = versions
            .iter()
            .rev()
            .find(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok_and(|d| d <= requested));
        return match pick {
            Some(v) => Ok(v),
            None => Err(AcceptError::NotAcceptable(format!(
                "The requested version {raw} is older than the first version ({}) of this resource.",
                versions.first().copied().unwrap_or(newest)
            ))),
        };
    }
    Err(AcceptError::NotAcceptable(format!(
        "The media type(s) '{header}' cannot be served; use application/json."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMP: &[&str] = &["2018-12-31", "2021-03-29"];

    #[test]
    fn picks_newest_not_after_requested() {
        assert_eq!(
            negotiate(Some("application/json;version=2021-03-29"), EMP),
            Ok("2021-03-29")
        );
        assert_eq!(
            negotiate(Some("application/json; version=2025-01-01"), EMP),
            Ok("2021-03-29")
        );
        assert_eq!(
            negotiate(Some("application/json;version=2019-06-01"), EMP),
            Ok("2018-12-31")
        );
        assert_eq!(negotiate(Some("application/json"), EMP), Ok("2021-03-29"));
        assert_eq!(negotiate(None, EMP), Ok("2021-03-29"));
        assert_eq!(negotiate(Some("*/*"), EMP), Ok("2021-03-29"));
    }

    #[test]
    fn rejects_old_or_bad() {
        assert!(matches!(
            negotiate(Some("application/json;version=2018-01-01"), EMP),
            Err(AcceptError::NotAcceptable(_))
        ));
        assert!(matches!(
            negotiate(Some("application/json;version=yesterday"), EMP),
            Err(AcceptError::BadRequest(_))
        ));
        assert!(matches!(
            negotiate(Some("text/csv;version=2021-03-29"), EMP),
            Err(AcceptError::NotAcceptable(_))
        ));
    }
}
