//! Loket's official OpenAPI document as a test oracle: finds operations by concrete request path,
//! lists their documented query parameters and `Accept` versions, and validates response bodies
//! against the documented 200-response schemas.
//!
//! The document is OpenAPI 3.0.2 with every schema inlined (no `$ref`), so a schema converts to
//! JSON Schema draft 4 by turning `nullable: true` into a `null` alternative. Formats are checked
//! where they carry meaning for us: `date` must be `yyyy-MM-dd`, `uuid` a UUID, `date-time` an
//! ISO timestamp.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

/// Where the official document lives: `$LOKET_OPENAPI`, else `../shared/loket/loket.nl.openapi.json`
/// next to the repository.
pub fn document_path() -> PathBuf {
    match std::env::var_os("LOKET_OPENAPI") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/loket/loket.nl.openapi.json"),
    }
}

/// The loaded document.
pub struct Spec {
    doc: Value,
    templates: Vec<String>,
}

/// One documented GET operation.
#[derive(Debug, Clone)]
pub struct Operation {
    pub template: String,
    pub operation_id: String,
    /// Query parameter names the operation documents.
    pub query_params: BTreeSet<String>,
    /// Path parameter names.
    pub path_params: BTreeSet<String>,
    /// The 200 response's media types, e.g. `application/json;version=2018-01-01`.
    pub media_types: Vec<String>,
}

impl Spec {
    /// Loads the document; a missing or unreadable document is an error (never a skip).
    pub fn load() -> Result<Spec> {
        let path = document_path();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "Loket's OpenAPI document is missing at {} (set LOKET_OPENAPI to its path)",
                path.display()
            )
        })?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let templates = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("{} has no `paths`", path.display()))?
            .keys()
            .cloned()
            .collect();
        Ok(Spec { doc, templates })
    }

    /// The documented GET operation for a path template such as
    /// `/providers/employers/{employerId}/departments`.
    pub fn operation(&self, template: &str) -> Result<Operation> {
        let item = self.doc["paths"]
            .get(template)
            .ok_or_else(|| anyhow!("the document has no path {template}"))?;
        let get = item
            .get("get")
            .ok_or_else(|| anyhow!("the document has no GET for {template}"))?;
        let mut query_params = BTreeSet::new();
        let mut path_params = BTreeSet::new();
        let params = item
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(
                get.get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
        for p in params {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            match p["in"].as_str() {
                Some("query") => {
                    query_params.insert(name);
                }
                Some("path") => {
                    path_params.insert(name);
                }
                _ => {}
            }
        }
        let media_types = get["responses"]["200"]["content"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        Ok(Operation {
            template: template.to_string(),
            operation_id: get["operationId"].as_str().unwrap_or_default().to_string(),
            query_params,
            path_params,
            media_types,
        })
    }

    /// Finds the template a concrete path (after `/v2`) belongs to. Literal segments beat
    /// parameters, so `/providers/employers/lastmodifiedversionnumbers` is not taken for
    /// `/providers/employers/{employerId}`.
    pub fn match_path(&self, path: &str) -> Option<&str> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut best: Option<(&str, usize)> = None;
        for t in &self.templates {
            let tsegs: Vec<&str> = t.trim_matches('/').split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let mut ok = true;
            for (ts, s) in tsegs.iter().zip(&segs) {
                if ts.starts_with('{') && ts.ends_with('}') {
                    continue;
                }
                if ts.eq_ignore_ascii_case(s) {
                    literal += 1;
                } else {
                    ok = false;
                    break;
                }
            }
            if ok && best.is_none_or(|(_, l)| literal > l) {
                best = Some((t.as_str(), literal));
            }
        }
        best.map(|(t, _)| t)
    }

    /// Validates `body` against the 200-response schema of `template` for `media_type`. Returns
    /// every violation, with its JSON pointer.
    pub fn validate_response(&self, template: &str, media_type: &str, body: &Value) -> Result<()> {
        let schema = self.doc["paths"][template]["get"]["responses"]["200"]["content"][media_type]
            .get("schema")
            .ok_or_else(|| anyhow!("no 200 schema for {template} as {media_type}"))?;
        let schema = to_json_schema(schema);
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .with_format("date", is_iso_date)
            .with_format("uuid", |s: &str| uuid_like(s))
            .with_format("date-time", is_iso_datetime)
            .build(&schema)
            .map_err(|e| anyhow!("the document's schema for {template} does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .take(20)
            .map(|e| format!("at {}: {}", e.instance_path(), e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            bail!(
                "{template} ({media_type}) does not match the official schema:\n  {}",
                errors.join("\n  ")
            )
        }
    }
}

/// Converts an inlined OpenAPI 3.0 schema to JSON Schema draft 4: `nullable: true` becomes a
/// `null` alternative; OpenAPI-only keywords are dropped.
pub fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match k.as_str() {
                    "nullable" | "example" | "readOnly" | "writeOnly" | "xml" | "externalDocs"
                    | "deprecated" | "discriminator" => {}
                    "properties" | "patternProperties" => {
                        let props = v
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(name, s)| (name.clone(), to_json_schema(s)))
                                    .collect::<Map<String, Value>>()
                            })
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    // The document's uuid patterns allow only upper-case hex (`[0-9A-F]`), while
                    // every uuid example in it, and Loket itself, is lower case: compare ids
                    // case-insensitively.
                    "pattern" if map.get("format").and_then(Value::as_str) == Some("uuid") => {
                        let p = v.as_str().unwrap_or_default().replace("A-F", "A-Fa-f");
                        out.insert(k.clone(), Value::String(p));
                    }
                    _ => {
                        out.insert(k.clone(), to_json_schema(v));
                    }
                }
            }
            if map.get("nullable").and_then(Value::as_bool) == Some(true) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert(
                        "type".into(),
                        Value::Array(vec![Value::String(t), "null".into()]),
                    );
                    if let Some(Value::Array(e)) = out.get_mut("enum") {
                        e.push(Value::Null);
                    }
                } else {
                    return serde_json::json!({ "anyOf": [Value::Object(out), { "type": "null" }] });
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

fn is_iso_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn is_iso_datetime(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nullable_becomes_a_null_alternative() {
        let s = to_json_schema(&json!({"type": "string", "nullable": true, "format": "date"}));
        assert_eq!(s, json!({"type": ["string", "null"], "format": "date"}));
        let s =
            to_json_schema(&json!({"nullable": true, "properties": {"a": {"type": "integer"}}}));
        assert_eq!(
            s,
            json!({"anyOf": [{"properties": {"a": {"type": "integer"}}}, {"type": "null"}]})
        );
    }

    #[test]
    fn formats() {
        assert!(is_iso_date("2024-02-29"));
        assert!(!is_iso_date("2024-13-01"));
        assert!(!is_iso_date("2024-01-01T00:00:00Z"));
        assert!(uuid_like("0f1c2d3e-0000-4000-8000-000000000000"));
        assert!(!uuid_like("not-a-uuid"));
    }

    #[test]
    fn uuid_patterns_accept_lower_case() {
        let s = to_json_schema(
            &json!({"type": "string", "format": "uuid", "pattern": "^[0-9A-F]{8}$"}),
        );
        assert_eq!(s["pattern"], "^[0-9A-Fa-f]{8}$");
    }
}
