//! Evaluates a `vecdb::Filter` against a metadata object outside the store.
//!
//! Text search ranks catalog records by tag score without a query vector, so it cannot ask the
//! store to apply the filter during a vector search. This evaluator follows vecdb's documented
//! semantics (dotted paths, any-element matching on arrays, numbers by value, dates as instants,
//! a missing field never matches); the tests pin those semantics.

use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use vecdb::Filter;

/// Whether `meta` satisfies `filter`.
pub fn matches(filter: &Filter, meta: &Value) -> bool {
    match filter {
        Filter::Eq { field, value } => any_at(meta, field, &|v| json_eq(v, value)),
        Filter::In { field, values } => {
            any_at(meta, field, &|v| values.iter().any(|w| json_eq(v, w)))
        }
        Filter::Range {
            field,
            gt,
            gte,
            lt,
            lte,
        } => any_at(meta, field, &|v| {
            in_bound(v, gt.as_ref(), |o| o.is_gt())
                && in_bound(v, gte.as_ref(), |o| o.is_ge())
                && in_bound(v, lt.as_ref(), |o| o.is_lt())
                && in_bound(v, lte.as_ref(), |o| o.is_le())
        }),
        Filter::And(items) => items.iter().all(|f| matches(f, meta)),
        Filter::Or(items) => items.iter().any(|f| matches(f, meta)),
        Filter::Not(inner) => !matches(inner, meta),
    }
}

/// True when some value at the dotted `path` (descending into arrays) satisfies `pred`.
fn any_at(meta: &Value, path: &str, pred: &dyn Fn(&Value) -> bool) -> bool {
    let parts: Vec<&str> = path.split('.').collect();
    walk(meta, &parts, pred)
}

fn walk(v: &Value, parts: &[&str], pred: &dyn Fn(&Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| walk(i, parts, pred)),
        _ if parts.is_empty() => pred(v),
        Value::Object(map) => map
            .get(parts[0])
            .is_some_and(|c| walk(c, &parts[1..], pred)),
        _ => false,
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `v` compared with `bound` satisfies `ok`; an absent bound always passes.
fn in_bound(v: &Value, bound: Option<&Value>, ok: fn(std::cmp::Ordering) -> bool) -> bool {
    let Some(b) = bound else { return true };
    if let (Some(x), Some(y)) = (v.as_f64(), b.as_f64()) {
        return x.partial_cmp(&y).is_some_and(ok);
    }
    match (v.as_str().and_then(instant), b.as_str().and_then(instant)) {
        (Some(x), Some(y)) => ok(x.cmp(&y)),
        _ => false,
    }
}

/// Nanoseconds since the epoch of an RFC 3339 / ISO 8601 date-time or a plain date (UTC).
pub fn instant(s: &str) -> Option<i128> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = PrimitiveDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    let spaced = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(t) = PrimitiveDateTime::parse(s, spaced) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    let date = format_description!("[year]-[month]-[day]");
    Date::parse(s, date)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(v: Value) -> Filter {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn follows_vecdb_semantics() {
        let m = json!({"tags": ["rose", "daisy"], "size": 10, "taken": "2021-05-01T10:00:00Z",
                       "exif": {"make": "x"}});
        assert!(matches(
            &f(json!({"eq": {"field": "tags", "value": "daisy"}})),
            &m
        ));
        assert!(!matches(
            &f(json!({"eq": {"field": "tags", "value": "tulip"}})),
            &m
        ));
        assert!(matches(
            &f(json!({"eq": {"field": "size", "value": 10.0}})),
            &m
        ));
        assert!(matches(
            &f(json!({"eq": {"field": "exif.make", "value": "x"}})),
            &m
        ));
        assert!(matches(
            &f(json!({"in": {"field": "size", "values": [1, 10]}})),
            &m
        ));
        assert!(matches(
            &f(json!({"range": {"field": "size", "gt": 9, "lte": 10}})),
            &m
        ));
        assert!(!matches(
            &f(json!({"range": {"field": "size", "lt": 10}})),
            &m
        ));
        assert!(matches(
            &f(json!({"range": {"field": "taken", "gte": "2021-05-01"}})),
            &m
        ));
        assert!(matches(
            &f(json!({"range": {"field": "taken", "lt": "2021-05-01T12:00:00+01:00"}})),
            &m
        ));
        assert!(!matches(
            &f(json!({"range": {"field": "taken", "lt": "2021-05-01 09:00:00"}})),
            &m
        ));
        assert!(!matches(
            &f(json!({"eq": {"field": "missing", "value": 1}})),
            &m
        ));
        assert!(matches(
            &f(json!({"not": {"eq": {"field": "missing", "value": 1}}})),
            &m
        ));
        assert!(matches(&f(json!({"and": []})), &m));
        assert!(!matches(&f(json!({"or": []})), &m));
        assert!(matches(
            &f(
                json!({"or": [{"eq": {"field": "size", "value": 3}}, {"eq": {"field": "tags", "value": "rose"}}]})
            ),
            &m
        ));
    }
}
