//! Router tests through `app().oneshot()`: every route, its success path and its errors, on a
//! real engine over real images.

#[path = "http/collections.rs"]
mod collections;
mod common;
#[path = "http/jobs.rs"]
mod jobs;
#[path = "http/watch.rs"]
mod watch;

use axum::body::Body;
use axum::http::{header, Method, Request};
use common::*;
use serde_json::json;
use server::ServerConfig;

#[tokio::test]
async fn health_page_and_assets() {
    let r = router();
    let (status, body) = json(&r, get("/healthz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    let page = send(&r, get("/")).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = String::from_utf8(bytes(page).await).unwrap();
    assert!(html.contains("/assets/app.js") && html.contains("id=\"dropzone\""));
    // The page must not reach beyond this server.
    for asset in ["/", "/assets/app.js", "/assets/app.css"] {
        let text = String::from_utf8(bytes(send(&r, get(asset)).await).await).unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{asset} links outside"
        );
    }

    for (path, mime) in [
        ("/assets/app.css", "text/css"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let res = send(&r, get(path)).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(mime));
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    expect_error(&r, get("/assets/../Cargo.toml"), 404, "route_not_found").await;
    expect_error(&r, get("/assets/secret.txt"), 404, "route_not_found").await;
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let r = router();
    let (status, doc) = json(&r, get("/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let routes = server::route_list();
    for (path, method) in &routes {
        let op = &paths.get(*path).unwrap_or_else(|| panic!("{path} missing"))
            [method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
        // The documented path parameters are exactly the route's `{name}` segments.
        let mut segments: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let mut documented: Vec<&str> = op["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{method} {path}: {p}");
                p["name"].as_str().unwrap()
            })
            .collect();
        segments.sort_unstable();
        documented.sort_unstable();
        assert_eq!(segments, documented, "{method} {path}: path parameters");
    }
    // And nothing documented that the router does not serve.
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            assert!(
                routes.iter().any(|(p, rm)| p == path && *rm == m),
                "{method} {path} is not routed"
            );
        }
    }
}

/// Every `$ref` in `value`, with where it was found.
fn refs<'a>(value: &'a serde_json::Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", serde_json::Value::String(target)) => out.push((at.clone(), target)),
                    _ => refs(v, format!("{at}/{key}"), out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_openapi_document_is_valid_and_its_refs_resolve() {
    let doc: serde_json::Value = serde_json::from_str(server::openapi_json()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "imgsearch");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["info"]["license"]["name"], env!("CARGO_PKG_LICENSE"));
    let components = doc["components"].as_object().unwrap();
    let schemes = components["securitySchemes"].as_object().unwrap();
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id), "{method} {path}: {id} twice");
            for tag in op["tags"].as_array().unwrap() {
                assert!(
                    tags.contains(&tag.as_str().unwrap()),
                    "{method} {path}: {tag}"
                );
            }
            for (status, _) in op["responses"].as_object().unwrap() {
                let code: u16 = status.parse().unwrap();
                assert!((100..600).contains(&code), "{method} {path}: {status}");
            }
            let security = op.get("security").or(doc.get("security")).unwrap();
            for requirement in security.as_array().unwrap() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(scheme), "{method} {path}: {scheme}");
                }
            }
        }
    }
    // The error body is one schema, with its stable codes.
    let error = &components["schemas"]["Error"];
    assert!(error["properties"]["error"].is_object(), "{error}");
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 50, "only {} references", found.len());
    for (at, target) in found {
        let (kind, name) = target
            .strip_prefix("#/components/")
            .and_then(|rest| rest.split_once('/'))
            .unwrap_or_else(|| panic!("{at}: {target} is not a local component"));
        assert!(
            matches!(kind, "schemas" | "responses"),
            "{at}: {target} names a {kind}"
        );
        assert!(
            components[kind].get(name).is_some(),
            "{at}: {target} does not resolve"
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let r = router();
    expect_error(&r, get("/api/nothing"), 404, "route_not_found").await;
    let put = Request::put("/api/status").body(Body::empty()).unwrap();
    expect_error(&r, put, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn status_reports_the_index() {
    let r = router();
    let (status, body) = json(&r, get("/api/status")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["files"].as_u64().unwrap() >= fixture().images.len() as u64,
        "{body}"
    );
    assert!(
        body["model"].is_string() && body["dim"].as_u64().unwrap() > 0,
        "{body}"
    );
    assert_eq!(body["server"]["max_upload_bytes"], 32 * 1024 * 1024);
}

#[tokio::test]
async fn search_by_upload_finds_the_same_image_first() {
    let r = router();
    // The last image: the upload test adds a copy of the first one, which would tie with it.
    let photo = fixture().images.last().unwrap();
    let bytes = std::fs::read(photo).unwrap();
    let req = multipart(
        "/api/search",
        &[
            ("image", Part::File("q.jpg", &bytes)),
            ("k", Part::Text("3")),
        ],
    );
    let (status, body) = json(&r, req).await;
    assert_eq!(status, 200, "{body}");
    let hits = body["hits"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 3, "{body}");
    let first = &hits[0];
    assert_eq!(first["path"].as_str().unwrap(), photo.to_str().unwrap());
    assert!(first["score"].as_f64().unwrap() > 0.99, "{first}");
    let id = first["id"].as_u64().unwrap();
    assert_eq!(
        first["thumbnail_url"],
        format!("/api/images/{id}/thumbnail")
    );
    assert_eq!(first["image_url"], format!("/api/images/{id}/original"));
    assert!(first["metadata"].is_object());
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // A threshold above every other hit leaves only the image itself.
    let req = multipart(
        "/api/search",
        &[
            ("image", Part::File("q.jpg", &bytes)),
            ("threshold", Part::Text("0.999")),
        ],
    );
    let (_, body) = json(&r, req).await;
    assert_eq!(body["hits"].as_array().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn search_by_upload_rejects_bad_requests() {
    let r = router();
    let photo = std::fs::read(&fixture().images[0]).unwrap();
    let search = |parts: &[(&str, Part)]| multipart("/api/search", parts);
    expect_error(
        &r,
        post_json("/api/search", json!({})),
        415,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        &r,
        search(&[("k", Part::Text("3"))]),
        400,
        "invalid_multipart",
    )
    .await;
    expect_error(
        &r,
        search(&[("image", Part::File("a.txt", b"hello, not an image"))]),
        415,
        "not_an_image",
    )
    .await;
    let broken = [&b"\xFF\xD8\xFF\xE0"[..], &[0u8; 64]].concat();
    expect_error(
        &r,
        search(&[("image", Part::File("b.jpg", &broken))]),
        422,
        "invalid_image",
    )
    .await;
    let with = |name, value| {
        search(&[
            ("image", Part::File("q.jpg", &photo)),
            (name, Part::Text(value)),
        ])
    };
    expect_error(&r, with("k", "0"), 400, "invalid_parameter").await;
    expect_error(&r, with("k", "100000"), 400, "invalid_parameter").await;
    expect_error(&r, with("k", "ten"), 400, "invalid_parameter").await;
    expect_error(&r, with("threshold", "high"), 400, "invalid_parameter").await;
    expect_error(&r, with("filter", "{\"eq\": 3}"), 400, "invalid_parameter").await;
    expect_error(&r, with("colour", "red"), 400, "invalid_multipart").await;
    let garbled = Request::post("/api/search")
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=xyz")
        .body(Body::from("--xyz\r\nthis is not a part"))
        .unwrap();
    expect_error(&r, garbled, 400, "invalid_multipart").await;

    let small = router_with(ServerConfig {
        max_upload_bytes: 1024,
        ..ServerConfig::default()
    });
    expect_error(
        &small,
        search(&[("image", Part::File("q.jpg", &photo))]),
        413,
        "payload_too_large",
    )
    .await;
    // The server keeps serving after every one of these.
    let (status, _) = json(&r, get("/healthz")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn search_by_examples_and_counter_examples() {
    let r = router();
    let images = &fixture().images;
    let (first, last) = (&images[0], images.last().unwrap());
    let (a, b) = (std::fs::read(first).unwrap(), std::fs::read(last).unwrap());
    let search = |parts: &[(&str, Part)]| multipart("/api/search", parts);
    // Two uploads, best_score: each finds itself among the first two.
    let (status, body) = json(
        &r,
        search(&[
            ("image", Part::File("a.jpg", &a)),
            ("image", Part::File("b.jpg", &b)),
            ("strategy", Part::Text("best_score")),
            ("k", Part::Text("3")),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let paths: Vec<&str> = body["hits"].as_array().unwrap()[..2]
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&first.to_str().unwrap()), "{body}");
    assert!(paths.contains(&last.to_str().unwrap()), "{body}");
    // Ids as examples and counter-examples are left out of the results.
    let ids = [id_of(&r, &images[1]).await, id_of(&r, first).await];
    let negative = format!("{}, {}", ids[1], ids[1]);
    let (status, body) = json(
        &r,
        search(&[
            ("positive", Part::Text(&ids[0].to_string())),
            ("negative", Part::Text(&negative)),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let hits = body["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{body}");
    assert!(
        hits.iter()
            .all(|h| !ids.contains(&h["id"].as_u64().unwrap())),
        "{body}"
    );

    let upload = || ("image", Part::File("a.jpg", &a));
    let cases = [
        (
            Some(upload()),
            ("strategy", "mean"),
            400,
            "invalid_parameter",
        ),
        (
            Some(upload()),
            ("positive", "abc"),
            400,
            "invalid_parameter",
        ),
        (None, ("positive", "999999999"), 404, "image_not_found"),
        (None, ("negative", "1"), 400, "invalid_multipart"),
    ];
    for (image, (name, value), status, code) in cases {
        let parts: Vec<(&str, Part)> = image
            .into_iter()
            .chain([(name, Part::Text(value))])
            .collect();
        expect_error(&r, search(&parts), status, code).await;
    }
    let too_many: Vec<(&str, Part)> = (0..=engine::MAX_EXAMPLES).map(|_| upload()).collect();
    expect_error(&r, search(&too_many), 400, "invalid_parameter").await;
}

#[tokio::test]
async fn search_pages_by_cursor_in_score_or_date_order() {
    // Its own collection: the shared one changes while the pages are read when other tests
    // upload copies of these images or delete them, and the pages then disagree with `all`.
    let own = own_fixture();
    let r = router_of(&own);
    let id = id_of(&r, &own.images[0]).await;
    let everything = format!("/api/search?id={id}&threshold=-1");
    let (status, all) = json(&r, get(&format!("{everything}&k=100"))).await;
    assert_eq!(status, 200, "{all}");
    assert!(all["next"].is_null());
    let ids = |body: &serde_json::Value| -> Vec<u64> {
        let hits = body["hits"].as_array().unwrap();
        hits.iter().map(|h| h["id"].as_u64().unwrap()).collect()
    };
    for sort in ["score", "date"] {
        let mut seen = Vec::new();
        let mut uri = format!("{everything}&k=2&sort={sort}");
        loop {
            let (status, page) = json(&r, get(&uri)).await;
            assert_eq!(status, 200, "{page}");
            seen.extend(ids(&page));
            match page["next"].as_str() {
                Some(next) => uri = format!("{everything}&k=2&sort={sort}&cursor={next}"),
                None => break,
            }
        }
        let mut expected = ids(&all);
        if sort == "date" {
            expected.sort_unstable();
            seen.sort_unstable();
        }
        assert_eq!(seen, expected, "sort={sort}");
    }
    let bad = [
        format!("/api/search?id={id}&sort=date"),
        format!("/api/search?id={id}&sort=size"),
        format!("{everything}&cursor=nope"),
        format!("{everything}&sort=score&cursor=date:2"),
    ];
    for uri in bad {
        expect_error(&r, get(&uri), 400, "invalid_parameter").await;
    }
}

#[tokio::test]
async fn search_by_id_and_by_text() {
    let r = router();
    let id = id_of(&r, &fixture().images[1]).await;
    let (status, body) = json(&r, get(&format!("/api/search?id={id}&k=2"))).await;
    assert_eq!(status, 200, "{body}");
    let hits = body["hits"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 2, "{body}");
    assert!(
        hits.iter().all(|h| h["id"].as_u64() != Some(id)),
        "the query image is left out"
    );

    let filter = json!({"eq": {"field": "folder", "value": "no-such-folder"}}).to_string();
    let uri = format!("/api/search?id={id}&filter={}", encode(&filter));
    let (status, body) = json(&r, get(&uri)).await;
    assert_eq!(
        (status, body["hits"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{body}"
    );

    let (status, body) = json(&r, get("/api/search?text=flower&k=5")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["hits"].as_array().unwrap().len() <= 5);

    expect_error(&r, get("/api/search?id=999999999"), 404, "image_not_found").await;
    expect_error(&r, get("/api/search?id=abc"), 400, "invalid_parameter").await;
    expect_error(&r, get("/api/search"), 400, "invalid_parameter").await;
    expect_error(
        &r,
        get(&format!("/api/search?id={id}&text=x")),
        400,
        "invalid_parameter",
    )
    .await;
    expect_error(&r, get("/api/search?text=%20"), 400, "invalid_parameter").await;
    expect_error(
        &r,
        get(&format!("/api/search?id={id}&k=0")),
        400,
        "invalid_parameter",
    )
    .await;
    expect_error(
        &r,
        get(&format!("/api/search?id={id}&threshold=NaN")),
        400,
        "invalid_parameter",
    )
    .await;
    expect_error(
        &r,
        get(&format!("/api/search?id={id}&limit=3")),
        400,
        "invalid_parameter",
    )
    .await;
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn images_are_served_by_id_only() {
    let r = router();
    let photo = fixture().images.last().unwrap();
    let id = id_of(&r, photo).await;

    let (status, record) = json(&r, get(&format!("/api/images/{id}"))).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["id"], id);
    assert_eq!(record["path"].as_str().unwrap(), photo.to_str().unwrap());
    assert_eq!(
        record["thumbnail_url"],
        format!("/api/images/{id}/thumbnail")
    );

    let thumb = send(&r, get(&format!("/api/images/{id}/thumbnail"))).await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert!(thumb.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let etag = thumb.headers()[header::ETAG].clone();
    assert!(bytes(thumb).await.starts_with(b"\xFF\xD8\xFF"));
    let again = Request::get(format!("/api/images/{id}/thumbnail"))
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&r, again).await.status(), 304);

    let original = send(&r, get(&format!("/api/images/{id}/original"))).await;
    assert_eq!(original.status(), 200);
    let mime = original.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(mime == "image/jpeg" || mime == "image/png", "{mime}");
    assert!(original.headers().contains_key(header::ETAG));
    assert_eq!(bytes(original).await, std::fs::read(photo).unwrap());

    for suffix in ["", "/thumbnail", "/original"] {
        expect_error(
            &r,
            get(&format!("/api/images/999999999{suffix}")),
            404,
            "image_not_found",
        )
        .await;
        expect_error(
            &r,
            get(&format!("/api/images/abc{suffix}")),
            400,
            "invalid_parameter",
        )
        .await;
    }
    expect_error(
        &r,
        get("/api/images/..%2F..%2Fetc%2Fpasswd/original"),
        400,
        "invalid_parameter",
    )
    .await;
}

#[tokio::test]
async fn upload_indexes_and_delete_removes() {
    let r = router();
    let photo = std::fs::read(&fixture().images[0]).unwrap();
    let req = multipart(
        "/api/images",
        &[("image", Part::File("../../evil name.jpg", &photo))],
    );
    let (status, record) = json(&r, req).await;
    assert_eq!(status, 201, "{record}");
    let id = record["id"].as_u64().unwrap();
    let stored = record["path"].as_str().unwrap();
    assert!(!stored.contains(".."), "{stored}");

    let (status, body) = json(&r, get(&format!("/api/search?id={id}&k=1"))).await;
    assert_eq!(status, 200, "{body}");
    // The upload is a copy of images[0], so the nearest other image is the original file.
    assert!(body["hits"][0]["score"].as_f64().unwrap() > 0.99, "{body}");

    let delete = |id: u64| {
        Request::delete(format!("/api/images/{id}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, body) = json(&r, delete(id)).await;
    assert_eq!(
        (status, body["deleted"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    expect_error(
        &r,
        get(&format!("/api/images/{id}")),
        404,
        "image_not_found",
    )
    .await;
    expect_error(&r, delete(id), 404, "image_not_found").await;

    expect_error(
        &r,
        multipart(
            "/api/images",
            &[("image", Part::File("x.txt", b"plain text"))],
        ),
        415,
        "not_an_image",
    )
    .await;
    expect_error(
        &r,
        multipart("/api/images", &[("file", Part::File("x.jpg", &photo))]),
        400,
        "invalid_multipart",
    )
    .await;
    expect_error(&r, multipart("/api/images", &[]), 400, "invalid_multipart").await;
    expect_error(
        &r,
        post_json("/api/images", json!({"path": "/etc/passwd"})),
        415,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn metrics_count_requests_and_searches() {
    let r = router();
    let _ = json(&r, get("/healthz")).await;
    let _ = id_of(&r, &fixture().images[0]).await;
    let res = send(&r, get("/metrics")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(bytes(res).await).unwrap();
    assert!(
        text.contains(
            "imgsearch_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("imgsearch_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/search\",le=\"+Inf\"} 1"), "{text}");
    assert!(
        text.contains("imgsearch_search_duration_seconds_count{kind=\"image\"} 1"),
        "{text}"
    );
    assert!(text.contains("imgsearch_indexed_images "), "{text}");
}

#[tokio::test]
async fn serves_over_tcp_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = server::AppState::new(fixture().engine.clone());
    let server = tokio::spawn(server::serve_on(listener, state, async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The Host must carry the port the server listens on (the DNS-rebinding check).
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    stop.send(()).unwrap();
    let finished = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    finished.expect("server did not stop").unwrap().unwrap();
}
