//! Translation of [`vecdb::Filter`] into Milvus boolean expressions.
//!
//! The filter is user input (it arrives over HTTP), and a Milvus expression is a small language,
//! so nothing from the filter is ever pasted into the expression as is:
//! - field paths must match a strict pattern ([`check_segment`]) and are then emitted as quoted
//!   JSON keys (`metadata["exif"]["make"]`);
//! - string values become double-quoted literals with every quote, backslash and line break
//!   escaped ([`string_literal`]); other control characters are refused, because the two servers
//!   we test (Milvus Lite and Milvus 2.3) disagree on them;
//! - numbers are printed from parsed values, never copied from the request text.
//!
//! Semantics follow vecdb's (see `vecdb::filter`), with these mappings:
//! - every comparison is guarded by `exists`, so a point lacking the field never matches it and
//!   `not(...)` does match it, on both Milvus Lite (three-valued logic) and Milvus 2.3;
//! - `eq` and `in` also match arrays that contain the value (`json_contains`), like vecdb;
//! - `in` becomes a disjunction, since Milvus Lite refuses `in` on JSON paths;
//! - `range` with number bounds compares the JSON value directly; `range` with date bounds
//!   compares the point's instant in nanoseconds since the Unix epoch, which the store keeps in
//!   a second JSON field ([`INSTANTS`], see [`instants_of`]) because Milvus would compare the
//!   strings lexicographically, which is wrong across time-zone offsets and formats.

use serde_json::{Map, Value};
use vecdb::{Filter, VecDbError};

/// The JSON field holding each point's metadata.
pub(crate) const METADATA: &str = "metadata";
/// The JSON field holding, for each date-like string in the metadata, its instant in
/// nanoseconds since the Unix epoch, keyed by its dotted path.
pub(crate) const INSTANTS: &str = "instants";
/// An always-true and an always-false predicate; ids are never negative (the store refuses ids
/// above `i64::MAX`), and a bare `true` is not accepted by Milvus 2.3.
pub(crate) const ALWAYS: &str = "id >= 0";
pub(crate) const NEVER: &str = "id < 0";

/// Longest accepted path segment, and deepest accepted path.
const MAX_SEGMENT: usize = 64;
const MAX_DEPTH: usize = 8;

fn invalid(reason: impl Into<String>) -> VecDbError {
    VecDbError::InvalidFilter {
        reason: reason.into(),
    }
}

/// Translates a filter into a Milvus expression over the [`METADATA`] and [`INSTANTS`] fields.
pub(crate) fn translate(filter: &Filter) -> Result<String, VecDbError> {
    // vecdb's own validation first, so both stores reject the same filters with the same reason.
    let json = serde_json::to_value(filter).map_err(|e| invalid(e.to_string()))?;
    Filter::from_json(&json)?;
    translate_node(filter)
}

fn translate_node(filter: &Filter) -> Result<String, VecDbError> {
    Ok(match filter {
        Filter::Eq { field, value } => {
            let path = json_path(METADATA, field)?;
            guarded(&path, &equality(&path, value)?)
        }
        Filter::In { field, values } => {
            if values.is_empty() {
                return Ok(NEVER.to_string());
            }
            let path = json_path(METADATA, field)?;
            let parts = values
                .iter()
                .map(|v| equality(&path, v))
                .collect::<Result<Vec<_>, _>>()?;
            guarded(&path, &parts.join(" or "))
        }
        Filter::Range {
            field,
            gt,
            gte,
            lt,
            lte,
        } => range(field, [gt, gte, lt, lte])?,
        Filter::And(items) => combine(items, " and ", ALWAYS)?,
        Filter::Or(items) => combine(items, " or ", NEVER)?,
        Filter::Not(inner) => format!("not ({})", translate_node(inner)?),
    })
}

fn combine(items: &[Filter], op: &str, empty: &str) -> Result<String, VecDbError> {
    if items.is_empty() {
        return Ok(empty.to_string());
    }
    let parts = items
        .iter()
        .map(|f| translate_node(f).map(|e| format!("({e})")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parts.join(op))
}

/// `(exists P) and (cond)`: the parentheses are needed, Milvus 2.3 binds `exists` loosely.
fn guarded(path: &str, cond: &str) -> String {
    format!("(exists {path}) and ({cond})")
}

/// `P == v or json_contains(P, v)`, so that arrays holding `v` match as in vecdb.
fn equality(path: &str, value: &Value) -> Result<String, VecDbError> {
    let lit = scalar_literal(value)?;
    Ok(format!("{path} == {lit} or json_contains({path}, {lit})"))
}

fn range(field: &str, bounds: [&Option<Value>; 4]) -> Result<String, VecDbError> {
    const OPS: [&str; 4] = [">", ">=", "<", "<="];
    // vecdb has checked that the bounds are all numbers or all dates.
    let dates = bounds
        .iter()
        .flat_map(|b| b.as_ref())
        .all(|v| v.is_string());
    let path = if dates {
        check_path(field)?;
        format!("{INSTANTS}[{}]", string_literal(field)?)
    } else {
        json_path(METADATA, field)?
    };
    let mut parts = Vec::new();
    for (op, bound) in OPS.iter().zip(bounds) {
        let Some(v) = bound else { continue };
        let lit = if dates {
            let s = v.as_str().unwrap_or_default();
            let t = parse_instant(s)
                .ok_or_else(|| invalid(format!("range bound {s:?} on {field:?} is not a date")))?;
            clamp_nanos(t).to_string()
        } else {
            number_literal(v)?
        };
        parts.push(format!("{path} {op} {lit}"));
    }
    Ok(guarded(&path, &parts.join(" and ")))
}

/// Instants outside the `i64` nanosecond range (years before 1677 or after 2262) are clamped, so
/// a bound far in the past or future still compares the right way.
fn clamp_nanos(t: i128) -> i64 {
    t.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Checks a dotted field path and renders it as `root["a"]["b"]`.
pub(crate) fn json_path(root: &str, field: &str) -> Result<String, VecDbError> {
    let segments = check_path(field)?;
    let mut out = root.to_string();
    for s in segments {
        out.push('[');
        out.push_str(&string_literal(s)?);
        out.push(']');
    }
    Ok(out)
}

fn check_path(field: &str) -> Result<Vec<&str>, VecDbError> {
    let segments: Vec<&str> = field.split('.').collect();
    if segments.len() > MAX_DEPTH {
        return Err(invalid(format!(
            "field path {field:?} is deeper than {MAX_DEPTH} levels"
        )));
    }
    for s in &segments {
        check_segment(field, s)?;
    }
    Ok(segments)
}

/// A path segment is 1 to 64 characters from `[A-Za-z0-9_-]` and inner spaces. The pattern is
/// stricter than what the escaping needs; it keeps expressions readable in server logs.
fn check_segment(field: &str, s: &str) -> Result<(), VecDbError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ' ';
    let ok = !s.is_empty()
        && s.len() <= MAX_SEGMENT
        && s.chars().all(ok_char)
        && !s.starts_with(' ')
        && !s.ends_with(' ');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "field path {field:?}: with the Milvus store each segment must be 1 to \
             {MAX_SEGMENT} characters from A-Z a-z 0-9 _ - and inner spaces, got {s:?}"
        )))
    }
}

/// A string, number or boolean as an expression literal.
fn scalar_literal(v: &Value) -> Result<String, VecDbError> {
    match v {
        Value::String(s) => string_literal(s),
        Value::Number(_) => number_literal(v),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(invalid(format!(
            "the Milvus store can compare only strings, numbers and booleans, got {other}"
        ))),
    }
}

fn number_literal(v: &Value) -> Result<String, VecDbError> {
    let Value::Number(n) = v else {
        return Err(invalid(format!("expected a number, got {v}")));
    };
    if let Some(i) = n.as_i64() {
        return Ok(i.to_string());
    }
    match n.as_f64() {
        // `{:?}` always prints a decimal point or exponent Milvus parses ("1e300", "0.5").
        Some(x) if x.is_finite() => Ok(format!("{x:?}")),
        _ => Err(invalid(format!("number {n} is out of range"))),
    }
}

/// A double-quoted string literal. Quotes, backslashes and line breaks are escaped with the
/// escapes both Milvus Lite and Milvus 2.3 understand; other control characters are refused.
pub(crate) fn string_literal(s: &str) -> Result<String, VecDbError> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                return Err(invalid(format!(
                    "string {s:?} holds control character U+{:04X}, which the Milvus store \
                     cannot express",
                    c as u32
                )))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// The [`INSTANTS`] object for one metadata object: for every string reached through objects
/// only (not through arrays) that parses as a date, its dotted path and instant in nanoseconds.
/// Keys that contain a dot are skipped, since no filter path can address them.
pub(crate) fn instants_of(metadata: &Value) -> Value {
    let mut out = Map::new();
    collect_instants(metadata, &mut String::new(), 0, &mut out);
    Value::Object(out)
}

fn collect_instants(v: &Value, path: &mut String, depth: usize, out: &mut Map<String, Value>) {
    match v {
        Value::String(s) if !path.is_empty() => {
            if let Some(t) = parse_instant(s) {
                out.insert(path.clone(), Value::from(clamp_nanos(t)));
            }
        }
        Value::Object(map) if depth < MAX_DEPTH => {
            for (key, child) in map {
                if key.contains('.') || key.is_empty() {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                collect_instants(child, path, depth + 1, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Dates in metadata and filters are read exactly as vecdb's filters read them, so a filter
/// selects the same points on both stores.
pub(crate) use vecdb::filter::parse_instant;

#[cfg(test)]
#[path = "expr_tests.rs"]
mod tests;
