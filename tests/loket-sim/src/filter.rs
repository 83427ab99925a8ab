//! Loket's `filter` and `orderBy` query parameters, evaluated on rendered JSON items.
//!
//! Grammar (keywords and field names case-insensitive):
//! `expr := and ('or' and)*`, `and := term ('and' term)*`,
//! `term := '(' expr ')' | field op literal`, `op := eq|ne|gt|ge|lt|le|lk`,
//! `field := name('.'name)*`, `literal := integer | decimal | 'text' ('' escapes a quote) | null | true | false`.
//! Integers compare as i64 (version numbers are above 2^32). Strings compare
//! case-insensitively, which also orders `yyyy-MM-dd` dates. `lk` is a case-insensitive
//! "contains" (`%` wildcards are ignored). A field that no item has is an error.

use std::cmp::Ordering;

use serde_json::Value;

/// A parse or evaluation error; the text goes into Loket's 400 `messages` body.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct FilterError(pub String);

#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Int(i64),
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Lk,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Cmp {
        field: Vec<String>,
        op: Op,
        lit: Lit,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<Tok>, FilterError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(FilterError("unterminated string literal in filter".into()));
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        text.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        text.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(text));
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '(' | ')' | '\'')
            {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.and()?];
        while self.peek_word("or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut parts = vec![self.term()?];
        while self.peek_word("and") {
            self.pos += 1;
            parts.push(self.term()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn term(&mut self) -> Result<Expr, FilterError> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.expr()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err(FilterError("missing ')' in filter".into()));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(field)) => {
                self.pos += 1;
                let field = parse_field(&field)?;
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                        "eq" => Op::Eq,
                        "ne" => Op::Ne,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        "lk" => Op::Lk,
                        other => {
                            return Err(FilterError(format!("unknown filter operator '{other}'")));
                        }
                    },
                    _ => {
                        return Err(FilterError(
                            "expected an operator after the field name".into(),
                        ));
                    }
                };
                self.pos += 1;
                let lit = match self.toks.get(self.pos) {
                    Some(Tok::Str(s)) => Lit::Str(s.clone()),
                    Some(Tok::Word(w)) => parse_literal(w)?,
                    _ => return Err(FilterError("expected a value after the operator".into())),
                };
                self.pos += 1;
                Ok(Expr::Cmp { field, op, lit })
            }
            _ => Err(FilterError("expected a field name or '(' in filter".into())),
        }
    }
}

fn parse_field(s: &str) -> Result<Vec<String>, FilterError> {
    let parts: Vec<String> = s.split('.').map(str::to_string).collect();
    let ok = parts.iter().all(|p| {
        let mut cs = p.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if ok {
        Ok(parts)
    } else {
        Err(FilterError(format!("invalid field name '{s}'")))
    }
}

fn parse_literal(w: &str) -> Result<Lit, FilterError> {
    match w.to_ascii_lowercase().as_str() {
        "null" => return Ok(Lit::Null),
        "true" => return Ok(Lit::Bool(true)),
        "false" => return Ok(Lit::Bool(false)),
        _ => {}
    }
    if let Ok(i) = w.parse::<i64>() {
        return Ok(Lit::Int(i));
    }
    if w.chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        && let Ok(f) = w.parse::<f64>()
    {
        return Ok(Lit::Num(f));
    }
    Err(FilterError(format!(
        "invalid value '{w}' in filter (quote text and dates)"
    )))
}

/// Parse a filter expression.
fn parse(s: &str) -> Result<Expr, FilterError> {
    let toks = lex(s)?;
    if toks.is_empty() {
        return Err(FilterError("empty filter".into()));
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(FilterError(
            "unexpected text after the filter expression".into(),
        ));
    }
    Ok(e)
}

/// Look up a dotted path, matching object keys case-insensitively. `None` if absent.
pub fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        let obj = cur.as_object()?;
        cur = match obj.get(seg.as_str()) {
            Some(x) => x,
            None => obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(seg))
                .map(|(_, x)| x)?,
        };
    }
    Some(cur)
}

fn fields(e: &Expr, out: &mut Vec<Vec<String>>) {
    match e {
        Expr::Or(v) | Expr::And(v) => v.iter().for_each(|x| fields(x, out)),
        Expr::Cmp { field, .. } => out.push(field.clone()),
    }
}

/// Fail if a field is present in none of the items.
fn check_known(items: &[Value], path: &[String]) -> Result<(), FilterError> {
    if items.is_empty() || items.iter().any(|i| lookup(i, path).is_some()) {
        Ok(())
    } else {
        Err(FilterError(format!("unknown field '{}'", path.join("."))))
    }
}

fn cmp_values(v: &Value, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (Value::Number(n), Lit::Int(i)) => match n.as_i64() {
            Some(x) => Some(x.cmp(i)),
            None => n.as_f64().and_then(|x| x.partial_cmp(&(*i as f64))),
        },
        (Value::Number(n), Lit::Num(f)) => n.as_f64().and_then(|x| x.partial_cmp(f)),
        (Value::String(s), Lit::Str(t)) => Some(s.to_lowercase().cmp(&t.to_lowercase())),
        (Value::Bool(b), Lit::Bool(c)) => Some(b.cmp(c)),
        _ => None,
    }
}

fn eval(e: &Expr, item: &Value) -> bool {
    match e {
        Expr::Or(v) => v.iter().any(|x| eval(x, item)),
        Expr::And(v) => v.iter().all(|x| eval(x, item)),
        Expr::Cmp { field, op, lit } => {
            let v = lookup(item, field).unwrap_or(&Value::Null);
            if *lit == Lit::Null {
                return match op {
                    Op::Eq => v.is_null(),
                    Op::Ne => !v.is_null(),
                    _ => false,
                };
            }
            if *op == Op::Lk {
                return match (v, lit) {
                    (Value::String(s), Lit::Str(t)) => s
                        .to_lowercase()
                        .contains(&t.replace('%', "").to_lowercase()),
                    _ => false,
                };
            }
            let Some(ord) = cmp_values(v, lit) else {
                return *op == Op::Ne;
            };
            match op {
                Op::Eq => ord == Ordering::Equal,
                Op::Ne => ord != Ordering::Equal,
                Op::Gt => ord == Ordering::Greater,
                Op::Ge => ord != Ordering::Less,
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                Op::Lk => false,
            }
        }
    }
}

/// Apply a filter string to the items.
pub fn apply_filter(items: Vec<Value>, filter: &str) -> Result<Vec<Value>, FilterError> {
    let e = parse(filter)?;
    let mut fs = Vec::new();
    fields(&e, &mut fs);
    for f in &fs {
        check_known(&items, f)?;
    }
    Ok(items.into_iter().filter(|i| eval(&e, i)).collect())
}

fn order_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let a = a.unwrap_or(&Value::Null);
    let b = b.unwrap_or(&Value::Null);
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
        },
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Apply an `orderBy` string (`field,-other.field`; `-` = descending). Stable.
pub fn apply_order(mut items: Vec<Value>, order_by: &str) -> Result<Vec<Value>, FilterError> {
    let mut keys = Vec::new();
    for part in order_by.split(',') {
        let part = part.trim();
        let (desc, name) = match part.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, part),
        };
        let path = parse_field(name)
            .map_err(|_| FilterError(format!("invalid orderBy field '{part}'")))?;
        check_known(&items, &path)?;
        keys.push((desc, path));
    }
    items.sort_by(|a, b| {
        for (desc, path) in &keys {
            let o = order_values(lookup(a, path), lookup(b, path));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Value> {
        vec![
            json!({"id": "a", "lastModifiedVersionNumber": 8_589_934_600_i64, "d": {"code": 2}}),
            json!({"id": "b", "lastModifiedVersionNumber": 8_589_934_700_i64, "d": {"code": 1}}),
            json!({"id": "c", "lastModifiedVersionNumber": 8_589_934_800_i64, "d": null}),
        ]
    }

    fn ids(v: &[Value]) -> Vec<&str> {
        v.iter().filter_map(|x| x["id"].as_str()).collect()
    }

    #[test]
    fn version_filters() {
        let r = apply_filter(items(), "lastModifiedVersionNumber gt 8589934600").unwrap();
        assert_eq!(ids(&r), ["b", "c"]);
        let r = apply_filter(
            items(),
            "LASTMODIFIEDVERSIONNUMBER ge 8589934600 and lastModifiedVersionNumber lt 8589934800",
        )
        .unwrap();
        assert_eq!(ids(&r), ["a", "b"]);
        let r = apply_filter(
            items(),
            "lastModifiedVersionNumber eq 8589934700 or id eq 'c'",
        )
        .unwrap();
        assert_eq!(ids(&r), ["b", "c"]);
        let r = apply_filter(items(), "(d.code le 1) or d eq null").unwrap();
        assert_eq!(ids(&r), ["b", "c"]);
    }

    #[test]
    fn bad_filters_fail() {
        for f in [
            "",
            "lastModifiedVersionNumber",
            "lastModifiedVersionNumber gtx 5",
            "x gt 5",
            "id eq 'open",
            "a gt 5 and",
            "id eq abc",
        ] {
            assert!(apply_filter(items(), f).is_err(), "{f}");
        }
    }

    #[test]
    fn ordering() {
        let r = apply_order(items(), "-lastModifiedVersionNumber").unwrap();
        assert_eq!(ids(&r), ["c", "b", "a"]);
        let r = apply_order(items(), "d.code,id").unwrap();
        assert_eq!(ids(&r), ["c", "b", "a"]);
        assert!(apply_order(items(), "nope").is_err());
    }
}
