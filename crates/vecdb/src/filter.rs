//! Metadata filters: the public JSON form ([`Filter`]) and its validated, compiled form.
//!
//! A filter is parsed from JSON by serde (externally tagged, lowercase names), for example
//! `{"and":[{"eq":{"field":"folder","value":"a"}},{"range":{"field":"taken","gte":"2020-01-01"}}]}`.
//! Before use it is compiled: field paths are split once, range bounds are checked and turned into
//! numbers or instants, so that evaluating it per point does no parsing of the filter and an
//! invalid filter is rejected with `InvalidFilter` before any search runs.
//!
//! Semantics:
//! - `field` is a dotted path into the metadata object (`exif.camera.make`). Keys that themselves
//!   contain dots cannot be addressed.
//! - When the path meets an array (at the end or in the middle), the filter matches when any
//!   element matches, so `{"eq":{"field":"tags","value":"daisy"}}` matches `{"tags":["rose","daisy"]}`.
//! - Numbers compare by value (`1` equals `1.0`). A missing field never matches `eq`, `in` or `range`
//!   (so `not(eq)` matches points lacking the field).
//! - `range` bounds are either all numbers or all date strings. Dates are RFC 3339
//!   (`2020-01-01T10:00:00+02:00`), ISO 8601 date-times without offset (taken as UTC),
//!   `YYYY-MM-DD HH:MM:SS` (UTC) or plain dates `YYYY-MM-DD` (midnight UTC); they compare as instants.
//! - `and([])` matches everything and `or([])` matches nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::error::VecDbError;

/// A metadata filter in its public (JSON) form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Filter {
    /// The field equals `value` (or, for an array field, one of its elements does).
    Eq { field: String, value: Value },
    /// The field lies within the given bounds; at least one bound is required.
    Range {
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gt: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gte: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lt: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lte: Option<Value>,
    },
    /// The field equals one of `values`.
    In { field: String, values: Vec<Value> },
    /// All sub-filters match.
    And(Vec<Filter>),
    /// At least one sub-filter matches.
    Or(Vec<Filter>),
    /// The sub-filter does not match.
    Not(Box<Filter>),
}

impl Filter {
    /// Parses a filter from its JSON form, mapping serde errors to `InvalidFilter`.
    pub fn from_json(value: &Value) -> Result<Filter, VecDbError> {
        let filter: Filter =
            serde_json::from_value(value.clone()).map_err(|e| VecDbError::InvalidFilter {
                reason: e.to_string(),
            })?;
        filter.compile()?;
        Ok(filter)
    }

    /// Shorthand for an equality filter.
    pub fn eq(field: &str, value: impl Into<Value>) -> Filter {
        Filter::Eq {
            field: field.to_string(),
            value: value.into(),
        }
    }

    /// Checks the filter and compiles it for evaluation.
    pub(crate) fn compile(&self) -> Result<CompiledFilter, VecDbError> {
        Ok(match self {
            Filter::Eq { field, value } => CompiledFilter::Eq {
                path: split_path(field)?,
                value: value.clone(),
            },
            Filter::In { field, values } => CompiledFilter::In {
                path: split_path(field)?,
                values: ValueSet::new(values),
            },
            Filter::Range {
                field,
                gt,
                gte,
                lt,
                lte,
            } => CompiledFilter::Range {
                path: split_path(field)?,
                bounds: compile_bounds(field, [gt, gte, lt, lte])?,
            },
            Filter::And(items) => CompiledFilter::And(
                items
                    .iter()
                    .map(Filter::compile)
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Or(items) => CompiledFilter::Or(
                items
                    .iter()
                    .map(Filter::compile)
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Not(inner) => CompiledFilter::Not(Box::new(inner.compile()?)),
        })
    }
}

/// A filter checked and compiled once, for callers that evaluate it on metadata themselves
/// (the engine's text search filters its catalog this way), with the same semantics as a search.
#[derive(Clone, Debug)]
pub struct MetadataMatcher(CompiledFilter);

impl MetadataMatcher {
    /// Whether one metadata object passes the filter.
    pub fn matches(&self, metadata: &Value) -> bool {
        self.0.matches(metadata)
    }
}

impl Filter {
    /// Checks the filter and compiles it into a [`MetadataMatcher`].
    pub fn matcher(&self) -> Result<MetadataMatcher, VecDbError> {
        self.compile().map(MetadataMatcher)
    }
}

/// A validated filter, ready to be evaluated against metadata objects.
#[derive(Clone, Debug)]
pub(crate) enum CompiledFilter {
    Eq { path: Vec<String>, value: Value },
    In { path: Vec<String>, values: ValueSet },
    Range { path: Vec<String>, bounds: Bounds },
    And(Vec<CompiledFilter>),
    Or(Vec<CompiledFilter>),
    Not(Box<CompiledFilter>),
}

/// The values of an `in`, looked up by hash, so that a long list costs one lookup per metadata
/// value rather than a scan: numbers by value (so `1` and `1.0` are one key, as in `eq`),
/// strings, booleans and null directly; arrays and objects, rare in filters, by a scan.
#[derive(Clone, Debug, Default)]
pub(crate) struct ValueSet {
    numbers: std::collections::HashSet<u64>,
    strings: std::collections::HashSet<String>,
    bools: [bool; 2],
    null: bool,
    other: Vec<Value>,
}

impl ValueSet {
    fn new(values: &[Value]) -> ValueSet {
        let mut set = ValueSet::default();
        for v in values {
            match v {
                Value::Number(n) => match n.as_f64() {
                    Some(x) => {
                        set.numbers.insert(number_key(x));
                    }
                    None => set.other.push(v.clone()),
                },
                Value::String(s) => {
                    set.strings.insert(s.clone());
                }
                Value::Bool(b) => set.bools[usize::from(*b)] = true,
                Value::Null => set.null = true,
                _ => set.other.push(v.clone()),
            }
        }
        set
    }

    /// The scalar values of the set, each once (numbers equal by value are one).
    pub(crate) fn scalars(&self) -> impl Iterator<Item = Value> + '_ {
        let numbers = self.numbers.iter().filter_map(|&bits| {
            serde_json::Number::from_f64(f64::from_bits(bits)).map(Value::Number)
        });
        let strings = self.strings.iter().map(|s| Value::String(s.clone()));
        let bools = [false, true]
            .into_iter()
            .filter(|&b| self.bools[usize::from(b)])
            .map(Value::Bool);
        numbers
            .chain(strings)
            .chain(bools)
            .chain(self.null.then_some(Value::Null))
    }

    /// Whether the set holds an array or an object (compared by a scan of the JSON).
    pub(crate) fn has_composite(&self) -> bool {
        !self.other.is_empty()
    }

    fn contains(&self, v: &Value) -> bool {
        match v {
            Value::Number(n) => match n.as_f64() {
                Some(x) => self.numbers.contains(&number_key(x)),
                None => self.other.iter().any(|w| json_eq(v, w)),
            },
            Value::String(s) => self.strings.contains(s),
            Value::Bool(b) => self.bools[usize::from(*b)],
            Value::Null => self.null,
            _ => self.other.iter().any(|w| json_eq(v, w)),
        }
    }
}

/// A hash key under which numbers equal by value are one: JSON has no NaN, and -0 equals 0.
fn number_key(x: f64) -> u64 {
    if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

/// Range bounds, all of one kind. Each bound is `(value, inclusive)`.
#[derive(Clone, Debug)]
pub(crate) enum Bounds {
    Number {
        lo: Option<(f64, bool)>,
        hi: Option<(f64, bool)>,
    },
    /// Instants in nanoseconds since the Unix epoch.
    Instant {
        lo: Option<(i128, bool)>,
        hi: Option<(i128, bool)>,
    },
}

impl CompiledFilter {
    /// Evaluates the filter against one point's metadata.
    pub(crate) fn matches(&self, metadata: &Value) -> bool {
        match self {
            CompiledFilter::Eq { path, value } => {
                any_at(metadata, path, &mut |v| json_eq(v, value))
            }
            CompiledFilter::In { path, values } => {
                any_at(metadata, path, &mut |v| values.contains(v))
            }
            CompiledFilter::Range { path, bounds } => {
                any_at(metadata, path, &mut |v| bounds.contains(v))
            }
            CompiledFilter::And(items) => items.iter().all(|f| f.matches(metadata)),
            CompiledFilter::Or(items) => items.iter().any(|f| f.matches(metadata)),
            CompiledFilter::Not(inner) => !inner.matches(metadata),
        }
    }
}

impl Bounds {
    fn contains(&self, v: &Value) -> bool {
        match self {
            Bounds::Number { lo, hi } => match v.as_f64() {
                Some(x) => within(x, *lo, *hi),
                None => false,
            },
            Bounds::Instant { lo, hi } => match v.as_str().and_then(parse_instant) {
                Some(t) => within(t, *lo, *hi),
                None => false,
            },
        }
    }
}

fn within<T: PartialOrd>(x: T, lo: Option<(T, bool)>, hi: Option<(T, bool)>) -> bool {
    let lo_ok = match lo {
        None => true,
        Some((b, true)) => x >= b,
        Some((b, false)) => x > b,
    };
    let hi_ok = match hi {
        None => true,
        Some((b, true)) => x <= b,
        Some((b, false)) => x < b,
    };
    lo_ok && hi_ok
}

fn split_path(field: &str) -> Result<Vec<String>, VecDbError> {
    let parts: Vec<String> = field.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(VecDbError::InvalidFilter {
            reason: format!("field path {field:?} is empty or has an empty segment"),
        });
    }
    Ok(parts)
}

/// One parsed bound before the kind check: a number or an instant.
enum Bound {
    Number(f64),
    Instant(i128),
}

fn parse_bound(field: &str, name: &str, v: &Value) -> Result<Bound, VecDbError> {
    if let Some(x) = v.as_f64() {
        if x.is_finite() {
            return Ok(Bound::Number(x));
        }
    }
    if let Some(t) = v.as_str().and_then(parse_instant) {
        return Ok(Bound::Instant(t));
    }
    Err(VecDbError::InvalidFilter {
        reason: format!(
            "range bound {name} on {field:?} must be a number or an RFC 3339 / ISO 8601 date, got {v}"
        ),
    })
}

/// Checks the four optional bounds (`gt`, `gte`, `lt`, `lte`) and turns them into one `Bounds`.
fn compile_bounds(field: &str, raw: [&Option<Value>; 4]) -> Result<Bounds, VecDbError> {
    let names = ["gt", "gte", "lt", "lte"];
    let mut parsed: [Option<Bound>; 4] = [None, None, None, None];
    for i in 0..4 {
        if let Some(v) = raw[i] {
            parsed[i] = Some(parse_bound(field, names[i], v)?);
        }
    }
    let invalid = |reason: String| VecDbError::InvalidFilter { reason };
    if parsed.iter().all(Option::is_none) {
        return Err(invalid(format!("range on {field:?} has no bound")));
    }
    if parsed[0].is_some() && parsed[1].is_some() || parsed[2].is_some() && parsed[3].is_some() {
        return Err(invalid(format!(
            "range on {field:?} gives both gt and gte, or both lt and lte"
        )));
    }
    let numbers = parsed
        .iter()
        .flatten()
        .all(|b| matches!(b, Bound::Number(_)));
    let instants = parsed
        .iter()
        .flatten()
        .all(|b| matches!(b, Bound::Instant(_)));
    let [gt, gte, lt, lte] = parsed;
    if numbers {
        let num = |b: Option<Bound>, incl: bool| match b {
            Some(Bound::Number(x)) => Some((x, incl)),
            _ => None,
        };
        Ok(Bounds::Number {
            lo: num(gt, false).or(num(gte, true)),
            hi: num(lt, false).or(num(lte, true)),
        })
    } else if instants {
        let ins = |b: Option<Bound>, incl: bool| match b {
            Some(Bound::Instant(t)) => Some((t, incl)),
            _ => None,
        };
        Ok(Bounds::Instant {
            lo: ins(gt, false).or(ins(gte, true)),
            hi: ins(lt, false).or(ins(lte, true)),
        })
    } else {
        Err(invalid(format!(
            "range on {field:?} mixes number and date bounds"
        )))
    }
}

/// Parses a date or date-time string into nanoseconds since the Unix epoch (UTC when no offset).
pub fn parse_instant(s: &str) -> Option<i128> {
    // Cheap reject first: every accepted form starts with four digits and a dash, and most
    // metadata strings (paths, names) do not, so the parsers below rarely run.
    let b = s.as_bytes();
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = PrimitiveDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    let spaced = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    if let Ok(t) = PrimitiveDateTime::parse(s, &spaced) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    let date_only = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(s, &date_only) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    None
}

/// JSON equality where numbers compare by value, so that `1` equals `1.0`.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p == q,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// Calls `pred` on every value the path reaches, fanning out over arrays, and reports whether
/// any call returned true. A final array is offered both whole and element by element.
fn any_at(v: &Value, path: &[String], pred: &mut dyn FnMut(&Value) -> bool) -> bool {
    match path.split_first() {
        None => match v {
            Value::Array(items) => pred(v) || items.iter().any(&mut *pred),
            _ => pred(v),
        },
        Some((head, rest)) => match v {
            Value::Object(map) => map.get(head).is_some_and(|x| any_at(x, rest, pred)),
            Value::Array(items) => items.iter().any(|x| any_at(x, path, pred)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(filter: Value, meta: Value) -> bool {
        Filter::from_json(&filter)
            .unwrap()
            .compile()
            .unwrap()
            .matches(&meta)
    }

    #[test]
    fn eq_on_scalars_arrays_and_nested_paths() {
        assert!(check(
            json!({"eq":{"field":"a","value":1}}),
            json!({"a":1.0})
        ));
        assert!(!check(
            json!({"eq":{"field":"a","value":2}}),
            json!({"a":1})
        ));
        assert!(check(
            json!({"eq":{"field":"tags","value":"daisy"}}),
            json!({"tags":["rose","daisy"]})
        ));
        assert!(check(
            json!({"eq":{"field":"exif.make","value":"X"}}),
            json!({"exif":{"make":"X"}})
        ));
        assert!(check(
            json!({"eq":{"field":"people.name","value":"b"}}),
            json!({"people":[{"name":"a"},{"name":"b"}]})
        ));
        assert!(!check(
            json!({"eq":{"field":"missing","value":1}}),
            json!({"a":1})
        ));
        assert!(check(
            json!({"not":{"eq":{"field":"missing","value":1}}}),
            json!({})
        ));
    }

    #[test]
    fn ranges_on_numbers_and_dates() {
        let f = json!({"range":{"field":"n","gte":2,"lt":5}});
        assert!(!check(f.clone(), json!({"n":1})));
        assert!(check(f.clone(), json!({"n":2})));
        assert!(check(f.clone(), json!({"n":4.9})));
        assert!(!check(f.clone(), json!({"n":5})));
        assert!(!check(f, json!({"n":"3"})));
        let d = json!({"range":{"field":"taken","gte":"2020-01-01","lt":"2021-01-01T00:00:00Z"}});
        assert!(check(
            d.clone(),
            json!({"taken":"2020-06-01T12:00:00+02:00"})
        ));
        assert!(check(d.clone(), json!({"taken":"2020-01-01"})));
        assert!(check(d.clone(), json!({"taken":"2020-03-04 10:11:12"})));
        assert!(!check(d.clone(), json!({"taken":"2021-01-01"})));
        assert!(!check(d.clone(), json!({"taken":"2019-12-31T23:59:59Z"})));
        // An offset moves the instant: 2021-01-01T00:30+01:00 is still 2020 in UTC.
        assert!(check(d, json!({"taken":"2021-01-01T00:30:00+01:00"})));
    }

    #[test]
    fn in_and_or() {
        let f = json!({"or":[{"in":{"field":"c","values":["x","y"]}},{"eq":{"field":"d","value":true}}]});
        assert!(check(f.clone(), json!({"c":"y"})));
        assert!(check(f.clone(), json!({"d":true})));
        assert!(!check(f, json!({"c":"z","d":false})));
        assert!(check(
            json!({"in":{"field":"n","values":[1,"a",true,null,[2]]}}),
            json!({"n":1.0})
        ));
        assert!(check(
            json!({"in":{"field":"n","values":[-0.0]}}),
            json!({"n":0})
        ));
        assert!(check(
            json!({"in":{"field":"n","values":[null]}}),
            json!({"n":null})
        ));
        assert!(!check(
            json!({"in":{"field":"n","values":[false]}}),
            json!({"n":true})
        ));
        assert!(!check(
            json!({"in":{"field":"n","values":["1"]}}),
            json!({"n":1})
        ));
        assert!(check(json!({"and":[]}), json!({})));
        assert!(!check(json!({"or":[]}), json!({})));
    }

    #[test]
    fn malformed_filters_are_rejected() {
        let bad = [
            json!({"eq":{"field":"","value":1}}),
            json!({"eq":{"field":"a..b","value":1}}),
            json!({"range":{"field":"a"}}),
            json!({"range":{"field":"a","gt":1,"gte":2}}),
            json!({"range":{"field":"a","gt":1,"lt":"2020-01-01"}}),
            json!({"range":{"field":"a","gt":"yesterday"}}),
            json!({"range":{"field":"a","gt":[1]}}),
            json!({"like":{"field":"a","value":1}}),
            json!({"eq":{"field":"a","value":1,"extra":2}}),
            json!({"and":{"eq":{"field":"a","value":1}}}),
            json!("eq"),
        ];
        for f in bad {
            assert!(
                matches!(Filter::from_json(&f), Err(VecDbError::InvalidFilter { .. })),
                "{f} should be rejected"
            );
        }
    }

    #[test]
    fn json_round_trip() {
        let f = json!({"and":[{"eq":{"field":"folder","value":"a"}},{"range":{"field":"taken","gte":"2020-01-01"}},{"not":{"in":{"field":"t","values":[1,2]}}}]});
        let parsed = Filter::from_json(&f).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), f);
    }
}
