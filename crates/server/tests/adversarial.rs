//! The adversarial pass of issue 14 as regression tests: each finding, sent again with inputs
//! just large enough to cross the limit that fixes it (never the gigabyte originals), plus the
//! host, origin and token checks and the headers every response carries.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::*;
use serde_json::json;
use server::{app, AppState, ServerConfig};
use std::io::{Read, Write};
use std::time::Duration;

fn with_header(mut req: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    req.headers_mut().insert(name, value.parse().unwrap());
    req
}

/// Creates a flat collection of dimension `dim` with points 1..=n.
async fn collection(r: &axum::Router, name: &str, dim: usize, n: u64) {
    let (status, body) = json(
        r,
        post_json(
            "/api/collections",
            json!({"name": name, "dimension": dim, "metric_type": "L2"}),
        ),
    )
    .await;
    assert!(status == 201 || status == 409, "{body}");
    if n > 0 {
        let data: Vec<_> = (1..=n)
            .map(|id| json!({"id": id, "vector": vec![id as f32; dim]}))
            .collect();
        let (status, body) = json(
            r,
            post_json(
                &format!("/api/collections/{name}/insert"),
                json!({ "data": data }),
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn finding_01_ids_are_deduplicated_and_capped_and_searches_bounded() {
    let r = router_with(ServerConfig {
        max_ids: 100,
        max_response_floats: 1000,
        ..ServerConfig::default()
    });
    collection(&r, "adv_ids", 4, 3).await;
    // The same id many times is one point in the answer.
    let (status, body) = json(
        &r,
        post_json("/api/collections/adv_ids/get", json!({"ids": vec![1; 100]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    // One id over the cap is refused before any store work; delete shares the rule.
    for route in ["get", "delete"] {
        expect_error(
            &r,
            post_json(
                &format!("/api/collections/adv_ids/{route}"),
                json!({"ids": vec![1; 101]}),
            ),
            400,
            "invalid_parameter",
        )
        .await;
    }
    // ids x dimension is bounded too: 100 distinct ids of dimension 16 are 1600 numbers.
    collection(&r, "adv_wide", 16, 0).await;
    let ids: Vec<u64> = (1..=100).collect();
    expect_error(
        &r,
        post_json("/api/collections/adv_wide/get", json!({ "ids": ids })),
        400,
        "invalid_parameter",
    )
    .await;
    // Queries x limit: 11 queries x 1000 is over the default 10,000 hits.
    let r = router();
    collection(&r, "adv_ids", 4, 0).await;
    let queries = vec![vec![1.0f32; 4]; 11];
    expect_error(
        &r,
        post_json(
            "/api/collections/adv_ids/search",
            json!({"data": queries, "limit": 1000}),
        ),
        400,
        "invalid_parameter",
    )
    .await;
    let (status, body) = json(
        &r,
        post_json(
            "/api/collections/adv_ids/search",
            json!({"data": vec![vec![1.0f32; 4]; 10], "limit": 1000}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn finding_02_cross_site_writes_are_refused() {
    let r = router();
    let upload = || {
        multipart(
            "/api/images",
            &[("image", Part::File("x.txt", b"not an image"))],
        )
    };
    let host = |req| with_header(req, "host", "127.0.0.1:8080");
    let refused = [
        with_header(host(upload()), "origin", "http://evil.example"),
        with_header(host(upload()), "sec-fetch-site", "cross-site"),
        // Another port of this host is same-site, not same-origin: refused as well.
        with_header(host(upload()), "sec-fetch-site", "same-site"),
        with_header(host(upload()), "origin", "http://127.0.0.1:9999"),
        with_header(host(upload()), "origin", "null"),
    ];
    for req in refused {
        expect_error(&r, req, 403, "cross_site_request").await;
    }
    let delete = with_header(
        host(
            Request::delete("/api/images/1")
                .body(Body::empty())
                .unwrap(),
        ),
        "origin",
        "http://evil.example",
    );
    expect_error(&r, delete, 403, "cross_site_request").await;
    // The page itself (same origin) and curl (no Origin) reach the handler, which then judges
    // the body: 415 here, so nothing was stored.
    let same = with_header(
        with_header(host(upload()), "origin", "http://127.0.0.1:8080"),
        "sec-fetch-site",
        "same-origin",
    );
    expect_error(&r, same, 415, "not_an_image").await;
    expect_error(&r, upload(), 415, "not_an_image").await;
    // A cross-site read gets no CORS header, so its page cannot read the answer.
    let read = send(
        &r,
        with_header(host(get("/api/status")), "origin", "http://evil.example"),
    )
    .await;
    assert!(read
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());

    // --cors-origin lets one named origin in, with CORS headers and a preflight answer.
    let r = router_with(ServerConfig {
        cors_origins: vec!["https://app.example".into()],
        ..ServerConfig::default()
    });
    let pre = send(
        &r,
        with_header(
            Request::options("/api/images").body(Body::empty()).unwrap(),
            "origin",
            "https://app.example",
        ),
    )
    .await;
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        pre.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    let allowed = send(&r, with_header(upload(), "origin", "https://app.example")).await;
    assert_eq!(allowed.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    expect_error(
        &r,
        with_header(upload(), "origin", "https://other.example"),
        403,
        "cross_site_request",
    )
    .await;
}

#[tokio::test]
async fn finding_03_dns_rebinding_hosts_are_refused() {
    let r = router();
    for path in ["/api/status", "/api/images/1/original", "/"] {
        expect_error(
            &r,
            with_header(get(path), "host", "attacker.example:8080"),
            421,
            "host_not_allowed",
        )
        .await;
    }
    for ok in ["localhost:8080", "127.0.0.1:8080", "[::1]:8080"] {
        let (status, _) = json(&r, with_header(get("/api/status"), "host", ok)).await;
        assert_eq!(status, 200, "{ok}");
    }
    let r = router_with(ServerConfig {
        allow_hosts: vec!["photos.lan".into()],
        ..ServerConfig::default()
    });
    let (status, _) = json(&r, with_header(get("/api/status"), "host", "photos.lan")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_token_guards_every_api_route_but_not_health_or_the_page() {
    let token = "0123456789abcdef0123";
    let r = router_with(ServerConfig {
        token: Some(token.into()),
        ..ServerConfig::default()
    });
    let res = send(&r, get("/api/status")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    for bad in [
        "Bearer wrong",
        "Bearer 0123456789abcdef012",
        "Basic abc",
        token,
    ] {
        expect_error(
            &r,
            with_header(get("/api/status"), "authorization", bad),
            401,
            "unauthorized",
        )
        .await;
    }
    expect_error(&r, get("/metrics"), 401, "unauthorized").await;
    let ok = with_header(
        get("/api/status"),
        "authorization",
        &format!("Bearer {token}"),
    );
    let (status, body) = json(&r, ok).await;
    assert_eq!(
        (status, body["server"]["auth"].as_str()),
        (200, Some("token"))
    );
    // Image tags send the page's cookie instead of a header.
    let cookie = with_header(
        get("/api/status"),
        "cookie",
        &format!("theme=dark; imgsearch_token={token}"),
    );
    assert_eq!(json(&r, cookie).await.0, 200);
    assert_eq!(send(&r, get("/healthz")).await.status(), StatusCode::OK);
    assert_eq!(send(&r, get("/")).await.status(), StatusCode::OK);
    assert_eq!(
        send(&r, get("/assets/app.js")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let r = router();
    let requests = [
        get("/"),
        get("/healthz"),
        get("/api/status"),
        get("/nowhere"),
        with_header(get("/api/status"), "host", "evil.example"),
        post_json("/api/collections", json!({"bad": 1})),
    ];
    for req in requests {
        let uri = req.uri().to_string();
        let res = send(&r, req).await;
        let h = res.headers();
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{uri}");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"),
            "{uri}: {csp}"
        );
    }
}

#[tokio::test]
async fn finding_04_decodes_are_bounded_in_number_and_size() {
    // With every decode slot taken, an upload waits decode_wait_ms and then gets 503.
    let state = AppState::with_config(
        fixture().engine.clone(),
        ServerConfig {
            decode_slots: 1,
            decode_wait_ms: 50,
            ..ServerConfig::default()
        },
    );
    let slots = state.decode_slots.clone();
    let r = app(state);
    let held = slots.acquire().await.unwrap();
    let photo = std::fs::read(&fixture().images[0]).unwrap();
    let res = send(
        &r,
        multipart("/api/search", &[("image", Part::File("q.jpg", &photo))]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    drop(held);
    let (status, _) = json(
        &r,
        multipart("/api/search", &[("image", Part::File("q.jpg", &photo))]),
    )
    .await;
    assert_eq!(status, 200);
    // A 35-byte GIF that declares 20000 x 20000 pixels is refused from its header: nothing is
    // decoded and nothing is stored.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&20000u16.to_le_bytes());
    gif.extend_from_slice(&20000u16.to_le_bytes());
    gif.extend_from_slice(&[0, 0, 0]);
    gif.extend_from_slice(&[0x2C, 0, 0, 0, 0]);
    gif.extend_from_slice(&20000u16.to_le_bytes());
    gif.extend_from_slice(&20000u16.to_le_bytes());
    gif.extend_from_slice(&[0, 2, 2, 0x4C, 1, 0, 0x3B]);
    let uploads = fixture().engine.config().data_dir.join("uploads");
    expect_error(
        &r,
        multipart("/api/images", &[("image", Part::File("bomb.gif", &gif))]),
        422,
        "invalid_image",
    )
    .await;
    // Other tests upload JPEG and PNG files only.
    assert_eq!(count_gifs(&uploads), 0);
    // The server reports the slots it runs with.
    let (_, status) = json(&r, get("/api/status")).await;
    assert_eq!(status["server"]["limits"]["decode_slots"], 1);
}

fn count_gifs(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".gif"))
            .count()
    })
}

#[tokio::test]
async fn finding_05_lsh_projection_is_bounded() {
    let r = router();
    expect_error(
        &r,
        post_json(
            "/api/collections",
            json!({"name": "adv_lsh", "dimension": 65536, "index_type": "LSH",
                   "params": {"tables": 256, "bits": 64}}),
        ),
        400,
        "invalid_parameter",
    )
    .await;
    let (status, body) = json(&r, get("/api/collections/adv_lsh")).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn finding_06_filters_are_capped_in_size_and_nodes() {
    let r = router_with(ServerConfig {
        max_filter_nodes: 100,
        max_filter_bytes: 2000,
        ..ServerConfig::default()
    });
    let values: Vec<u64> = (0..100).collect();
    let big = json!({"in": {"field": "size", "values": values}}).to_string();
    let search = |filter: &str| {
        get(&format!(
            "/api/search?text=cat&filter={}",
            filter
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        ))
    };
    // 1 + 100 nodes: over by one.
    expect_error(&r, search(&big), 400, "invalid_parameter").await;
    let padded = format!(
        "{{\"eq\":{{\"field\":\"folder\",\"value\":\"{}\"}}}}",
        "x".repeat(2000)
    );
    expect_error(&r, search(&padded), 400, "invalid_parameter").await;
    let values: Vec<u64> = (0..99).collect();
    let fits = json!({"in": {"field": "size", "values": values}}).to_string();
    let (status, body) = json(&r, search(&fits)).await;
    assert_eq!(status, 200, "{body}");
    // The vector API's JSON filters obey the node cap too.
    collection(&r, "adv_filter", 4, 2).await;
    let values: Vec<u64> = (0..200).collect();
    expect_error(
        &r,
        post_json(
            "/api/collections/adv_filter/search",
            json!({"data": [[1.0, 1.0, 1.0, 1.0]],
                   "filter": {"in": {"field": "n", "values": values}}}),
        ),
        400,
        "invalid_parameter",
    )
    .await;
}

/// Serves the fixture's engine on a free loopback port with `config`; returns the address and
/// a sender that stops the server.
async fn spawn_server(
    config: ServerConfig,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::with_config(fixture().engine.clone(), config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server::serve_on(listener, state, async move {
        let _ = rx.await;
    }));
    (addr, tx, handle)
}

/// One blocking HTTP/1.1 exchange; returns the status line and the whole answer.
fn http(addr: std::net::SocketAddr, host: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_07_slow_headers_time_out_and_connections_are_capped() {
    let (addr, stop, handle) = spawn_server(ServerConfig {
        header_timeout_secs: 1,
        max_connections: 2,
        ..ServerConfig::default()
    })
    .await;
    let result = tokio::task::spawn_blocking(move || {
        // Two connections that trickle a header take every slot...
        let mut slow: Vec<std::net::TcpStream> = (0..2)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
                    .unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s
            })
            .collect();
        // ...yet a health check is answered once the header timeout closes them.
        let started = std::time::Instant::now();
        let answer = http(addr, &format!("127.0.0.1:{}", addr.port()), "/healthz");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));
        for s in &mut slow {
            let mut buf = [0u8; 256];
            // Closed by the server: end of stream (or a reset), never a hang.
            let n = s.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
        }
        // The Host check sees the real port: the right name on the wrong port is refused.
        let wrong = http(addr, "localhost:1", "/api/status");
        assert!(wrong.starts_with("HTTP/1.1 421"), "{wrong}");
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
    result.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_is_answered_not_reset_and_the_connection_stays_usable() {
    let (addr, stop, handle) = spawn_server(ServerConfig::default()).await;
    let result = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // Far more than the socket buffers hold: the server answers 421 from the headers alone,
        // and the client must still be able to send the rest and read that answer.
        let len = 4 << 20;
        write!(
            s,
            "POST /api/images HTTP/1.1\r\nHost: attacker.example:{}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n",
            addr.port()
        )
        .unwrap();
        let chunk = vec![0u8; 64 << 10];
        for _ in 0..len / chunk.len() {
            s.write_all(&chunk).expect("the body is read, not reset");
        }
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the answer");
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&answer).to_string();
        assert!(text.starts_with("HTTP/1.1 421"), "{text}");
        // The refused body was drained, so the connection serves the next request.
        let length: usize = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        let head = text.find("\r\n\r\n").unwrap() + 4;
        let mut rest = answer.len() - head;
        while rest < length {
            rest += s.read(&mut buf).unwrap();
        }
        write!(
            s,
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            addr.port()
        )
        .unwrap();
        let mut next = String::new();
        let _ = s.read_to_string(&mut next);
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
    result.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_08_parallel_first_thumbnails_and_uploads_all_succeed() {
    // An odd thumbnail size nothing else asks for, so every request starts uncached.
    let r = router_with(ServerConfig {
        thumbnail_size: 97,
        ..ServerConfig::default()
    });
    let id = id_of(&r, &fixture().images[1]).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move {
                let res = send(&r, get(&format!("/api/images/{id}/thumbnail"))).await;
                (res.status(), bytes(res).await)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::OK));
    assert!(answers.windows(2).all(|w| w[0].1 == w[1].1));

    let photo = std::fs::read(&fixture().images[2]).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (r, photo) = (r.clone(), photo.clone());
            tokio::spawn(async move {
                let name = format!("same-{i}.jpg");
                json(
                    &r,
                    multipart("/api/images", &[("image", Part::File(&name, &photo))]),
                )
                .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_u64().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one image for the same bytes");
    let (status, _) = json(
        &r,
        Request::delete(format!("/api/images/{}", ids[0]))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn finding_09_id_u64_max_is_refused() {
    let r = router();
    collection(&r, "adv_max", 2, 0).await;
    expect_error(
        &r,
        post_json(
            "/api/collections/adv_max/insert",
            json!({"data": [{"id": u64::MAX, "vector": [1.0, 2.0]}]}),
        ),
        400,
        "invalid_parameter",
    )
    .await;
    let (_, body) = json(&r, get("/api/collections/adv_max")).await;
    assert_eq!(body["count"], 0);
}

#[tokio::test]
async fn finding_10_one_collection_name_rule_and_400() {
    let r = router();
    for name in ["a".repeat(65), "b".repeat(255), "has space".into()] {
        let create = post_json("/api/collections", json!({"name": name, "dimension": 2}));
        expect_error(&r, create, 400, "invalid_parameter").await;
    }
    let long = "c".repeat(200);
    for req in [
        get(&format!("/api/collections/{long}")),
        post_json(&format!("/api/collections/{long}/get"), json!({"ids": [1]})),
        Request::delete(format!("/api/collections/{long}"))
            .body(Body::empty())
            .unwrap(),
    ] {
        expect_error(&r, req, 400, "invalid_parameter").await;
    }
    // The database's rule: 64 characters, dashes allowed.
    let ok = format!("adv-{}", "d".repeat(60));
    let (status, body) = json(
        &r,
        post_json("/api/collections", json!({"name": ok, "dimension": 2})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_11_shutdown_drains_requests_in_flight() {
    let (addr, stop, handle) = spawn_server(ServerConfig::default()).await;
    let photo = std::fs::read(&fixture().images[0]).unwrap();
    // A search by image takes a while (decode and embed); stop the server while it runs.
    let client = tokio::task::spawn_blocking(move || {
        let boundary = "b0undary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&photo);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "POST /api/search HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
            addr.port(),
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = stop.send(());
    let answer = client.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    handle.await.unwrap().unwrap();
    // Saving the snapshot after the drain succeeds (the CLI's serve does this on SIGTERM).
    fixture().engine.save().unwrap();
}

#[tokio::test]
async fn finding_12_uploads_are_stored_under_their_sniffed_format() {
    let r = router();
    let png = std::fs::read(
        fixture()
            .images
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "png"))
            .expect("a PNG fixture"),
    )
    .unwrap();
    let mut ids = Vec::new();
    for name in ["a.png", "b.gif", "c.bmp", "d.tif"] {
        let (status, body) = json(
            &r,
            multipart("/api/images", &[("image", Part::File(name, &png))]),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert!(body["path"].as_str().unwrap().ends_with(".png"), "{body}");
        ids.push(body["id"].as_u64().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one image, whatever the client called it");
    let del = Request::delete(format!("/api/images/{}", ids[0]))
        .body(Body::empty())
        .unwrap();
    assert_eq!(json(&r, del).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finding_13_a_thumbnail_racing_a_delete_does_not_outlive_its_image() {
    let r = router_with(ServerConfig {
        thumbnail_size: 61,
        ..ServerConfig::default()
    });
    let photo = std::fs::read(&fixture().images[3 % fixture().images.len()]).unwrap();
    let thumbs = fixture().engine.config().data_dir.join("thumbnails");
    for round in 0..4 {
        let (status, body) = json(
            &r,
            multipart("/api/images", &[("image", Part::File("race.jpg", &photo))]),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_u64().unwrap();
        let thumb = {
            let r = r.clone();
            tokio::spawn(async move { send(&r, get(&format!("/api/images/{id}/thumbnail"))).await })
        };
        // Vary the head start so the delete lands before, during and after the thumbnail.
        tokio::time::sleep(Duration::from_millis(round * 15)).await;
        let del = Request::delete(format!("/api/images/{id}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(json(&r, del).await.0, 200);
        let status = thumb.await.unwrap().status();
        assert!(status == 200 || status == 404, "{status}");
        let prefix = format!("{id}-");
        let left: Vec<_> = std::fs::read_dir(&thumbs)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "round {round}: thumbnail of deleted image {id} left"
        );
    }
}
