//! Property tests: random JSON bodies, filters and multipart bodies sent to the router, and
//! random bytes given to the decoders. A client's mistake is never a 5xx and never a panic.
//! The case counts are small so the file runs in seconds; the strategies aim at the parsers'
//! edges (wrong types, huge numbers, deep nesting, truncated images) rather than at volume.

mod common;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Any JSON value, a few levels deep, with the kinds of numbers that break naive parsers.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        "[a-z_.]{0,12}".prop_map(Value::from),
        Just(json!("size")),
        Just(json!("2020-01-01")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("field".to_string()),
                    Just("value".to_string()),
                    Just("values".to_string()),
                    Just("eq".to_string()),
                    Just("in".to_string()),
                    Just("range".to_string()),
                    Just("and".to_string()),
                    Just("or".to_string()),
                    Just("not".to_string()),
                    Just("gte".to_string()),
                    Just("lt".to_string()),
                    Just("ids".to_string()),
                    Just("data".to_string()),
                    Just("limit".to_string()),
                    Just("vector".to_string()),
                    Just("id".to_string()),
                    Just("name".to_string()),
                    Just("dimension".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A filter-shaped value: mostly the real operators, with random fields and operands.
fn filter_like() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        Just(json!("size")),
        Just(json!("tags")),
        Just(json!("taken")),
        Just(json!("a..b")),
        Just(json!("")),
        any_json(),
    ];
    let leaf = prop_oneof![
        (field.clone(), any_json()).prop_map(|(f, v)| json!({"eq": {"field": f, "value": v}})),
        (field.clone(), prop::collection::vec(any_json(), 0..8))
            .prop_map(|(f, v)| json!({"in": {"field": f, "values": v}})),
        (field, any_json(), any_json())
            .prop_map(|(f, a, b)| json!({"range": {"field": f, "gte": a, "lt": b}})),
        any_json(),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "and": v })),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "or": v })),
            inner.prop_map(|v| json!({ "not": v })),
        ]
    })
}

fn status_of(request: axum::http::Request<axum::body::Body>) -> u16 {
    let r = router();
    runtime().block_on(async move { send(&r, request).await.status().as_u16() })
}

/// Sets up the collection the vector-API properties write into, once.
fn vector_collection() -> &'static str {
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        let r = router();
        runtime().block_on(async move {
            let create = post_json(
                "/api/collections",
                json!({"name": "props", "dimension": 3, "metric_type": "L2"}),
            );
            let status = send(&r, create).await.status().as_u16();
            assert!(status == 201 || status == 409);
        });
    });
    "props"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_json_to_the_vector_api_is_never_a_server_error(
        body in any_json(),
        route in prop_oneof![
            Just("/api/collections"),
            Just("/api/collections/props/search"),
            Just("/api/collections/props/insert"),
            Just("/api/collections/props/get"),
            Just("/api/collections/props/delete"),
            Just("/api/collections/nope/search"),
        ],
    ) {
        vector_collection();
        let status = status_of(post_json(route, body.clone()));
        prop_assert!(status < 500, "{route} {body} -> {status}");
    }

    #[test]
    fn random_filters_are_never_a_server_error(filter in filter_like(), k in 0usize..2000) {
        vector_collection();
        let text = filter.to_string();
        let encoded: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
        let status = status_of(get(&format!("/api/search?text=cat&k={k}&filter={encoded}")));
        prop_assert!(status < 500, "{text} -> {status}");
        let body = json!({"data": [[1.0, 2.0, 3.0]], "limit": k, "filter": filter});
        let status = status_of(post_json("/api/collections/props/search", body.clone()));
        prop_assert!(status < 500, "{body} -> {status}");
    }

    #[test]
    fn random_multipart_bodies_are_never_a_server_error(
        fields in prop::collection::vec(
            (
                prop_oneof![Just("image"), Just("k"), Just("threshold"), Just("filter"), Just("x")],
                prop::collection::vec(any::<u8>(), 0..64),
                any::<bool>(),
            ),
            0..4,
        ),
        image_prefix in prop_oneof![
            Just(&b""[..]),
            Just(&b"\xFF\xD8\xFF\xE0"[..]),
            Just(&b"\x89PNG\r\n\x1A\n"[..]),
            Just(&b"GIF89a"[..]),
        ],
        route in prop_oneof![Just("/api/search"), Just("/api/images")],
    ) {
        let owned: Vec<(&str, Vec<u8>, bool)> = fields
            .into_iter()
            .map(|(name, bytes, file)| {
                let bytes = if name == "image" { [image_prefix, &bytes[..]].concat() } else { bytes };
                (name, bytes, file)
            })
            .collect();
        let parts: Vec<(&str, Part)> = owned
            .iter()
            .map(|(name, bytes, file)| {
                let part = match (file, std::str::from_utf8(bytes)) {
                    (false, Ok(text)) => Part::Text(text),
                    _ => Part::File("f.bin", bytes),
                };
                (*name, part)
            })
            .collect();
        let status = status_of(multipart(route, &parts));
        prop_assert!(status < 500 || status == 503, "{route} -> {status}");
    }

    #[test]
    fn random_bytes_never_panic_the_decoders(
        prefix in prop_oneof![
            Just(&b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"[..]),
            Just(&b"\x89PNG\r\n\x1A\n\x00\x00\x00\rIHDR"[..]),
            Just(&b"GIF89a"[..]),
            Just(&b"BM"[..]),
            Just(&b"II*\x00"[..]),
            Just(&b"RIFF\x20\x00\x00\x00WEBPVP8 "[..]),
        ],
        tail in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let bytes = [prefix, &tail[..]].concat();
        // Small limits keep a header that declares a huge image from costing memory.
        let limits = embed::DecodeLimits { max_pixels: 1 << 20, max_file_bytes: 1 << 20 };
        let probed = embed::probe_bytes(&bytes, "fuzz", &limits);
        let decoded = embed::decode_bytes(&bytes, "fuzz", &limits);
        // The header check never lets through what the decoder then finds too large.
        if let Ok(img) = &decoded {
            prop_assert!(probed.is_ok());
            prop_assert!(u64::from(img.rgb.width()) * u64::from(img.rgb.height()) <= 1 << 20);
        }
    }
}
