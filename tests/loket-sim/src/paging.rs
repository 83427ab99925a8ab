//! Paging (`pageNumber`, `pageSize`) and Loket's response envelopes.
//!
//! `pageSize` defaults to 250 and is capped server-side at the configured maximum; the
//! response's `pageSize` says what was used. `totalPages` is `ceil(totalSize/pageSize)`
//! (0 for an empty collection). A page past the end is an empty `_embedded` (200).
//! Non-numeric or non-positive values are a 400.

use serde_json::{Value, json};

pub const DEFAULT_PAGE_SIZE: usize = 250;

/// Requested paging after validation and capping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paging {
    pub page_number: usize,
    pub page_size: usize,
}

/// Parse the raw query values; `Err` carries the 400 message.
pub fn parse(
    page_number: Option<&str>,
    page_size: Option<&str>,
    max_page_size: usize,
) -> Result<Paging, String> {
    let num = |raw: Option<&str>, name: &str, default: usize| -> Result<usize, String> {
        match raw.map(str::trim) {
            None | Some("") => Ok(default),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => Err(format!(
                    "The value '{s}' is not valid for {name}; it must be a whole number of 1 or more."
                )),
            },
        }
    };
    let page_number = num(page_number, "pageNumber", 1)?;
    let page_size = num(page_size, "pageSize", DEFAULT_PAGE_SIZE)?.min(max_page_size.max(1));
    Ok(Paging {
        page_number,
        page_size,
    })
}

pub fn version_block(resource_version: &str) -> Value {
    json!({ "resourceVersion": resource_version, "obsoleteDate": null })
}

/// Build a list envelope holding one page of `items`.
pub fn list_envelope(items: Vec<Value>, paging: Paging, resource_version: &str) -> Value {
    let total = items.len();
    let total_pages = total.div_ceil(paging.page_size);
    let skip = (paging.page_number - 1).saturating_mul(paging.page_size);
    let page: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(paging.page_size)
        .collect();
    json!({
        "_embedded": page,
        "currentPage": paging.page_number,
        "pageSize": paging.page_size,
        "totalPages": total_pages,
        "totalSize": total,
        "version": version_block(resource_version),
        "messages": [],
    })
}

/// Build a single-entity envelope.
pub fn content_envelope(content: Value, resource_version: &str) -> Value {
    json!({ "content": content, "version": version_block(resource_version), "messages": [] })
}

/// A Loket `messages` error body (400/404/406).
pub fn error_envelope(
    resource_version: Option<&str>,
    message_type: &str,
    code: i32,
    description: &str,
) -> Value {
    json!({
        "version": resource_version.map(version_block),
        "messages": [{ "code": code, "id": null, "type": message_type, "description": description, "properties": [] }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_defaults() {
        assert_eq!(
            parse(None, None, 100),
            Ok(Paging {
                page_number: 1,
                page_size: 100
            })
        );
        assert_eq!(
            parse(Some("3"), Some("10"), 250),
            Ok(Paging {
                page_number: 3,
                page_size: 10
            })
        );
        assert_eq!(parse(None, Some("2000"), 250).map(|p| p.page_size), Ok(250));
        assert!(parse(Some("0"), None, 250).is_err());
        assert!(parse(None, Some("x"), 250).is_err());
    }

    #[test]
    fn envelope_counts() {
        let items: Vec<Value> = (0..5).map(|i| json!({ "i": i })).collect();
        let v = list_envelope(
            items,
            Paging {
                page_number: 2,
                page_size: 2,
            },
            "2018-01-01",
        );
        assert_eq!(v["totalPages"], 3);
        assert_eq!(v["totalSize"], 5);
        assert_eq!(v["_embedded"][0]["i"], 2);
        let v = list_envelope(
            Vec::new(),
            Paging {
                page_number: 1,
                page_size: 2,
            },
            "2018-01-01",
        );
        assert_eq!(v["totalPages"], 0);
    }
}
