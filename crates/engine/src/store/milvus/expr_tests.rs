use super::*;
use serde_json::json;

fn filter(v: Value) -> Filter {
    serde_json::from_value(v).expect("filter parses")
}

fn tr(v: Value) -> Result<String, VecDbError> {
    translate(&filter(v))
}

/// A token of the Milvus expression language, as far as these tests need it.
#[derive(Debug, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Punct(String),
}

/// Lexes an expression the way Milvus does for the escapes we emit; panics on anything a
/// server would refuse (unterminated string, unknown escape, raw line break in a string).
fn lex(expr: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {}
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next().expect("unterminated string") {
                        '"' => break,
                        '\\' => s.push(match chars.next().expect("dangling backslash") {
                            '"' => '"',
                            '\\' => '\\',
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            other => panic!("unknown escape \\{other}"),
                        }),
                        '\n' | '\r' => panic!("raw line break in string"),
                        other => s.push(other),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' => {
                let mut w = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '.' {
                        w.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(w));
            }
            c => {
                let mut p = c.to_string();
                if matches!(c, '=' | '>' | '<' | '!') && chars.peek() == Some(&'=') {
                    p.push('=');
                    chars.next();
                }
                out.push(Tok::Punct(p));
            }
        }
    }
    out
}

fn w(s: &str) -> Tok {
    Tok::Word(s.into())
}
fn p(s: &str) -> Tok {
    Tok::Punct(s.into())
}
fn s(v: &str) -> Tok {
    Tok::Str(v.into())
}

/// The exact token shape of an `eq` on a top-level field: any injected syntax would change it.
fn eq_shape(field: &str, value: &str) -> Vec<Tok> {
    let path = || vec![w("metadata"), p("["), s(field), p("]")];
    let mut t = vec![p("("), w("exists")];
    t.extend(path());
    t.extend([p(")"), w("and"), p("(")]);
    t.extend(path());
    t.extend([p("=="), s(value), w("or"), w("json_contains"), p("(")]);
    t.extend(path());
    t.extend([p(","), s(value), p(")"), p(")")]);
    t
}

#[test]
fn eq_on_strings_numbers_and_booleans() {
    assert_eq!(
        tr(json!({"eq": {"field": "folder", "value": "a"}})).unwrap(),
        r#"(exists metadata["folder"]) and (metadata["folder"] == "a" or json_contains(metadata["folder"], "a"))"#
    );
    assert_eq!(
        tr(json!({"eq": {"field": "size", "value": 10}})).unwrap(),
        r#"(exists metadata["size"]) and (metadata["size"] == 10 or json_contains(metadata["size"], 10))"#
    );
    let e = tr(json!({"eq": {"field": "exif.flash", "value": true}})).unwrap();
    assert!(e.contains(r#"metadata["exif"]["flash"] == true"#), "{e}");
    let e = tr(json!({"eq": {"field": "ratio", "value": 0.5}})).unwrap();
    assert!(e.contains(r#"metadata["ratio"] == 0.5 "#), "{e}");
}

#[test]
fn in_becomes_a_guarded_disjunction() {
    let e = tr(json!({"in": {"field": "name", "values": ["p1", 2]}})).unwrap();
    assert_eq!(
        e,
        r#"(exists metadata["name"]) and (metadata["name"] == "p1" or json_contains(metadata["name"], "p1") or metadata["name"] == 2 or json_contains(metadata["name"], 2))"#
    );
    assert_eq!(
        tr(json!({"in": {"field": "name", "values": []}})).unwrap(),
        NEVER
    );
}

#[test]
fn numeric_ranges_compare_the_json_value() {
    assert_eq!(
        tr(json!({"range": {"field": "group", "gte": 1, "lt": 2.5}})).unwrap(),
        r#"(exists metadata["group"]) and (metadata["group"] >= 1 and metadata["group"] < 2.5)"#
    );
    assert_eq!(
        tr(json!({"range": {"field": "n", "gt": -3}})).unwrap(),
        r#"(exists metadata["n"]) and (metadata["n"] > -3)"#
    );
}

#[test]
fn date_ranges_compare_instants_not_strings() {
    let e =
        tr(json!({"range": {"field": "taken", "gt": "2020-01-10T00:00:00Z", "lte": "2020-01-20"}}))
            .unwrap();
    assert_eq!(
        e,
        r#"(exists instants["taken"]) and (instants["taken"] > 1578614400000000000 and instants["taken"] <= 1579478400000000000)"#
    );
    // An offset moves the bound: 01:00+01:00 is midnight UTC.
    let a = tr(json!({"range": {"field": "t", "gte": "2020-01-01T01:00:00+01:00"}})).unwrap();
    let b = tr(json!({"range": {"field": "t", "gte": "2020-01-01"}})).unwrap();
    assert_eq!(a, b);
}

#[test]
fn and_or_not_and_empty_lists() {
    let e = tr(json!({"and": [
        {"eq": {"field": "a", "value": 1}},
        {"not": {"or": [{"eq": {"field": "b", "value": "x"}}, {"range": {"field": "c", "lt": 3}}]}}
    ]}))
    .unwrap();
    assert!(e.starts_with("((exists metadata[\"a\"])"), "{e}");
    assert!(e.contains(") and (not (("), "{e}");
    assert!(e.contains(") or ("), "{e}");
    assert_eq!(tr(json!({"and": []})).unwrap(), ALWAYS);
    assert_eq!(tr(json!({"or": []})).unwrap(), NEVER);
    // Balanced parentheses and lexable output for a deep mix.
    let toks = lex(&e);
    let depth = toks.iter().fold(0i32, |d, t| match t {
        Tok::Punct(x) if x == "(" => d + 1,
        Tok::Punct(x) if x == ")" => d - 1,
        _ => d,
    });
    assert_eq!(depth, 0);
}

#[test]
fn string_values_cannot_inject_syntax() {
    let attacks = [
        r#"x" or id >= 0 or metadata["a"] == "y"#,
        r#"x\" or id >= 0 or "#,
        "x\\",
        "\\\"",
        "a\nb\r\tc",
        r#"" ) or (id >= 0"#,
        "it's 'quoted'",
        "é😀 ünïcode",
        "",
    ];
    for value in attacks {
        let e = tr(json!({"eq": {"field": "name", "value": value}})).unwrap();
        assert_eq!(lex(&e), eq_shape("name", value), "value {value:?} -> {e}");
    }
}

#[test]
fn control_characters_and_odd_values_are_refused() {
    for value in ["a\u{0}b", "a\u{1}b", "\u{7f}"] {
        let err = tr(json!({"eq": {"field": "name", "value": value}})).unwrap_err();
        assert!(
            matches!(err, VecDbError::InvalidFilter { .. }),
            "{value:?}: {err}"
        );
    }
    for value in [json!(null), json!([1]), json!({"a": 1})] {
        assert!(matches!(
            tr(json!({"eq": {"field": "name", "value": value}})),
            Err(VecDbError::InvalidFilter { .. })
        ));
    }
}

#[test]
fn field_names_are_validated_strictly() {
    let bad = [
        r#"a"] == 1 or metadata["b"#,
        "a]",
        "a[0]",
        "a\"b",
        "a\\b",
        " a",
        "a ",
        "a..b",
        "",
        "a\nb",
        "ü",
        "a.b.c.d.e.f.g.h.i",
    ];
    for field in bad {
        let err = tr(json!({"eq": {"field": field, "value": 1}})).unwrap_err();
        assert!(
            matches!(err, VecDbError::InvalidFilter { .. }),
            "{field:?}: {err}"
        );
        let err = tr(json!({"range": {"field": field, "gte": "2020-01-01"}})).unwrap_err();
        assert!(
            matches!(err, VecDbError::InvalidFilter { .. }),
            "{field:?}: {err}"
        );
    }
    let long = "x".repeat(65);
    assert!(tr(json!({"eq": {"field": long, "value": 1}})).is_err());
    for good in ["tag_scores.tabby cat", "exif.Make", "a-b.c_d.9"] {
        assert!(
            tr(json!({"eq": {"field": good, "value": 1}})).is_ok(),
            "{good}"
        );
    }
}

#[test]
fn filters_vecdb_rejects_are_rejected_the_same_way() {
    for bad in [
        json!({"range": {"field": "a"}}),
        json!({"range": {"field": "a", "gt": 1, "gte": 2}}),
        json!({"range": {"field": "a", "gt": 1, "lt": "2020-01-01"}}),
        json!({"range": {"field": "a", "gt": "yesterday"}}),
    ] {
        assert!(
            matches!(tr(bad.clone()), Err(VecDbError::InvalidFilter { .. })),
            "{bad}"
        );
    }
}

#[test]
fn instants_are_collected_for_date_strings_only() {
    let meta = json!({
        "taken": "2020-01-02T00:00:00Z",
        "day": "2020-01-02",
        "name": "2020 photos",
        "path": "/photos/2020-01-02.jpg",
        "size": 12,
        "exif": {"date": "2020-01-02 00:00:00", "deep": {"x": "nope"}},
        "list": ["2020-01-02"],
        "dotted.key": "2020-01-02",
    });
    let inst = instants_of(&meta);
    let day = 1_577_923_200_000_000_000i64;
    assert_eq!(
        inst,
        json!({"taken": day, "day": day, "exif.date": day}),
        "{inst}"
    );
    assert_eq!(instants_of(&json!({})), json!({}));
}

#[test]
fn instant_parsing_matches_vecdb_forms() {
    let midnight = Some(1_577_836_800_000_000_000i128);
    assert_eq!(parse_instant("2020-01-01"), midnight);
    assert_eq!(parse_instant("2020-01-01T00:00:00Z"), midnight);
    assert_eq!(parse_instant("2020-01-01T00:00:00"), midnight);
    assert_eq!(parse_instant("2020-01-01 00:00:00"), midnight);
    assert_eq!(parse_instant("2020-01-01T02:00:00+02:00"), midnight);
    assert_eq!(parse_instant("yesterday"), None);
    assert_eq!(parse_instant("2020-13-01"), None);
    assert_eq!(parse_instant("12345"), None);
}
