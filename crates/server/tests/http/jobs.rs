//! The jobs API: background indexing, its events, cancellation between batches, one job at a
//! time, searches answered meanwhile, and who may start a job on which paths.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use serde_json::{json, Value};
use server::{app, AppState, ServerConfig};

use super::common::*;

const TOKEN: &str = "local-token-0123456789abcdef";

/// An engine of its own over an empty data directory (jobs change the index, which the shared
/// fixture's tests count), and a folder holding `copies` copies of three photos; with
/// `restrict`, jobs may index that folder only.
fn setup(copies: usize, restrict: bool) -> (Router, PathBuf, tempfile::TempDir) {
    setup_with(copies, restrict, false)
}

/// As [`setup`]; with `library`, the photos folder is also the configured library.
fn setup_with(
    copies: usize,
    restrict: bool,
    library: bool,
) -> (Router, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../embed/tests/fixtures");
    for i in 0..copies {
        for name in ["coffee.jpg", "astronaut.jpg", "rocket.jpg"] {
            std::fs::copy(fixtures.join(name), photos.join(format!("{i}-{name}"))).unwrap();
        }
    }
    let engine = engine::Engine::open(engine::EngineConfig {
        data_dir: dir.path().join("data"),
        ..Default::default()
    })
    .unwrap();
    let config = ServerConfig {
        local_token: Some(TOKEN.into()),
        index_roots: if restrict {
            vec![photos.clone()]
        } else {
            Vec::new()
        },
        libraries: if library {
            vec![photos.clone()]
        } else {
            Vec::new()
        },
        ..ServerConfig::default()
    };
    let router = app(AppState::with_config(Arc::new(engine), config));
    (router, photos, dir)
}

fn authorised(mut request: Request<Body>) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    request
}

fn submit(paths: &[&Path]) -> Request<Body> {
    authorised(post_json("/api/jobs/index", json!({ "paths": paths })))
}

/// Polls the job until it is no longer running.
async fn wait_end(router: &Router, id: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = json(router, get(&format!("/api/jobs/{id}"))).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job did not end: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events of a stream read to its end: (event name, data as JSON).
fn parse_events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            }
        }
        if !data.is_empty() {
            out.push((name, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_indexes_in_the_background_and_streams_its_progress() {
    let (r, photos, _dir) = setup(1, false);
    // Starting a job takes a token whenever the server has one, even without a configured one.
    expect_error(
        &r,
        post_json("/api/jobs/index", json!({ "paths": [photos] })),
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        &r,
        submit(&[Path::new("relative/photos")]),
        400,
        "invalid_parameter",
    )
    .await;
    expect_error(&r, submit(&[&photos.join("missing")]), 404, "not_found").await;
    expect_error(&r, submit(&[]), 400, "invalid_parameter").await;

    let res = send(&r, submit(&[&photos])).await;
    assert_eq!(res.status(), 202);
    let location = res.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    let job: Value = serde_json::from_slice(&bytes(res).await).unwrap();
    let id = job["id"].as_u64().unwrap();
    assert_eq!(location, format!("/api/jobs/{id}"));
    assert_eq!(job["state"], "running");

    let res = send(&r, get(&format!("/api/jobs/{id}/events"))).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The stream ends after the job's last event.
    let text = String::from_utf8(bytes(res).await).unwrap();
    let events = parse_events(&text);
    let (last_name, last) = events.last().expect("at least the final event");
    assert_eq!(last_name, "done", "{text}");
    assert_eq!(last["report"]["added"], 3, "{last}");
    assert_eq!(last["total"], 3, "{last}");
    assert_eq!(last["done"], 3, "{last}");
    let versions: Vec<u64> = events
        .iter()
        .map(|(_, e)| e["version"].as_u64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert!(events[..events.len() - 1]
        .iter()
        .all(|(name, e)| name == "running" && e["state"] == "running"));
    // A finished job's stream is its last event alone.
    let again = send(&r, get(&format!("/api/jobs/{id}/events"))).await;
    let again = parse_events(&String::from_utf8(bytes(again).await).unwrap());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, "done");

    let (status, list) = json(&r, get("/api/jobs")).await;
    assert_eq!(status, 200);
    assert_eq!(list["jobs"][0]["id"], id);
    expect_error(&r, get("/api/jobs/999"), 404, "not_found").await;
    expect_error(&r, get("/api/jobs/999/events"), 404, "not_found").await;
    expect_error(
        &r,
        authorised(
            Request::delete("/api/jobs/999")
                .body(Body::empty())
                .unwrap(),
        ),
        404,
        "not_found",
    )
    .await;

    // What the job indexed is searchable.
    let (status, hits) = json(&r, get("/api/search?text=rocket&k=3")).await;
    assert_eq!(status, 200, "{hits}");
    assert!(!hits["hits"].as_array().unwrap().is_empty(), "{hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_cancelled_between_batches_while_searches_are_answered() {
    // 14 copies of 3 photos: two batches of the ingest at least.
    let (r, photos, _dir) = setup(14, false);
    let (status, first) = json(&r, submit(&[&photos])).await;
    assert_eq!(status, 202, "{first}");
    let id = first["id"].as_u64().unwrap();
    // One job at a time.
    expect_error(&r, submit(&[&photos]), 409, "job_running").await;
    // Searches are answered while it runs.
    let (status, body) = json(&r, get("/api/search?text=coffee")).await;
    assert_eq!(status, 200, "{body}");
    // Cancelling is for token holders too.
    expect_error(
        &r,
        Request::delete(format!("/api/jobs/{id}"))
            .body(Body::empty())
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let (status, cancelled) = json(
        &r,
        authorised(
            Request::delete(format!("/api/jobs/{id}"))
                .body(Body::empty())
                .unwrap(),
        ),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["cancel_requested"], true);
    let end = wait_end(&r, id).await;
    assert_eq!(end["state"], "cancelled", "{end}");
    let added = end["report"]["added"].as_u64().unwrap();
    assert!(added < 42, "{end}");

    // The next job resumes: what the first one stored is unchanged, the rest is added.
    let (status, second) = json(&r, submit(&[&photos])).await;
    assert_eq!(status, 202, "{second}");
    let end = wait_end(&r, second["id"].as_u64().unwrap()).await;
    assert_eq!(end["state"], "done", "{end}");
    assert_eq!(
        end["report"]["added"].as_u64().unwrap() + added,
        42,
        "{end}"
    );
    assert_eq!(end["report"]["unchanged"].as_u64().unwrap(), added, "{end}");
}

#[tokio::test]
async fn job_paths_must_lie_under_the_index_roots() {
    let (r, photos, dir) = setup(0, true);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    expect_error(&r, submit(&[&elsewhere]), 403, "path_not_allowed").await;
    expect_error(&r, submit(&[&photos.join("..")]), 403, "path_not_allowed").await;
    let (status, job) = json(&r, submit(&[&photos])).await;
    assert_eq!(status, 202, "{job}");
    let end = wait_end(&r, job["id"].as_u64().unwrap()).await;
    assert_eq!(end["state"], "done", "{end}");
}

#[tokio::test]
async fn the_page_may_rescan_the_libraries_and_list_them_newest_first() {
    // Without libraries there is nothing to rescan.
    let (r, _, _dir) = setup(0, false);
    expect_error(
        &r,
        post_json("/api/libraries/rescan", json!({})),
        404,
        "not_found",
    )
    .await;

    let (r, photos, _dir) = setup_with(2, false, true);
    // No token needed: the rescan takes no path.
    let (status, job) = json(&r, post_json("/api/libraries/rescan", json!({}))).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["paths"], json!([photos]));
    let end = wait_end(&r, job["id"].as_u64().unwrap()).await;
    assert_eq!(end["state"], "done", "{end}");

    // Six images, two pages of four and two, newest first, each once.
    let (status, first) = json(&r, get("/api/library?limit=4")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["total"], 6);
    assert_eq!(first["images"].as_array().unwrap().len(), 4);
    assert!(first["images"][0]["thumbnail_url"].is_string());
    let next = first["next"].as_str().unwrap().to_string();
    let (_, second) = json(&r, get(&format!("/api/library?limit=4&after={next}"))).await;
    assert_eq!(second["images"].as_array().unwrap().len(), 2);
    assert!(second["next"].is_null());
    let mtimes: Vec<i64> = first["images"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["images"].as_array().unwrap())
        .map(|i| i["mtime"].as_i64().unwrap())
        .collect();
    assert!(mtimes.windows(2).all(|w| w[0] >= w[1]), "{mtimes:?}");
    expect_error(&r, get("/api/library?limit=0"), 400, "invalid_parameter").await;
    expect_error(
        &r,
        get("/api/library?after=nonsense"),
        400,
        "invalid_parameter",
    )
    .await;
}
