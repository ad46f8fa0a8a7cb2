//! A real engine over a temporary data directory with a few real images, shared by the tests of
//! one binary (opening the model and indexing cost seconds; the requests then take milliseconds).
//! Each test binary uses a part of these helpers.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Request, Response};
use axum::Router;
use http_body_util::BodyExt;
use server::{app, AppState, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

pub struct Fixture {
    pub engine: Arc<engine::Engine>,
    /// The indexed image files, in the order their ids were looked up.
    pub images: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

/// Where test images come from: the embedder's fixtures, else the repository's samples.
fn source_images() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in ["crates/embed/tests/fixtures", "samples"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
                matches!(ext.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
            })
            .collect();
        files.sort();
        if files.len() >= 3 {
            files.truncate(4);
            return files;
        }
    }
    panic!("no test images: expected at least 3 JPEG/PNG files in crates/embed/tests/fixtures or samples");
}

/// The fixture shared by the tests of one binary. Tests that upload or delete change it while
/// the others run.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(own_fixture)
}

/// A fixture of its own, for a test whose assertions need a collection that no other test
/// writes to meanwhile (paging through one ranking, for instance).
pub fn own_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let mut images = Vec::new();
    for src in source_images() {
        let dst = photos.join(src.file_name().unwrap());
        std::fs::copy(&src, &dst).unwrap();
        images.push(dst);
    }
    let engine = open_engine(&dir.path().join("data"), &photos);
    Fixture {
        engine: Arc::new(engine),
        images,
        _dir: dir,
    }
}

/// Opens an engine on `data` and indexes `photos`.
fn open_engine(data: &Path, photos: &Path) -> engine::Engine {
    let config = engine::EngineConfig {
        data_dir: data.to_path_buf(),
        ..Default::default()
    };
    let engine = engine::Engine::open(config).unwrap();
    engine
        .index_paths(&[photos.to_path_buf()], &engine::NoProgress)
        .unwrap();
    engine
}

pub fn router() -> Router {
    router_of(fixture())
}

pub fn router_of(fixture: &Fixture) -> Router {
    app(AppState::new(fixture.engine.clone()))
}

pub fn router_with(config: ServerConfig) -> Router {
    app(AppState::with_config(fixture().engine.clone(), config))
}

/// The id the index gave to `path`, found by searching with the file itself.
pub async fn id_of(router: &Router, path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let (status, body) = json(
        router,
        multipart("/api/search", &[("image", Part::File("q.jpg", &bytes))]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["hits"][0]["id"].as_u64().unwrap()
}

pub enum Part<'a> {
    Text(&'a str),
    File(&'a str, &'a [u8]),
}

const BOUNDARY: &str = "----imgsearch-test-boundary";

pub fn multipart(uri: &str, parts: &[(&str, Part)]) -> Request<Body> {
    let mut body = Vec::new();
    for (name, part) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Text(text) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{text}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(file, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Request::post(uri)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn post_json(uri: &str, body: serde_json::Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub async fn send(router: &Router, request: Request<Body>) -> Response<Body> {
    router.clone().oneshot(request).await.unwrap()
}

pub async fn bytes(response: Response<Body>) -> Vec<u8> {
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

/// Sends a request and parses the JSON answer; every answer of the API, errors included, is JSON.
pub async fn json(router: &Router, request: Request<Body>) -> (u16, serde_json::Value) {
    let response = send(router, request).await;
    let status = response.status().as_u16();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = bytes(response).await;
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "status {status}, {content_type:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, value)
}

/// Asserts an error answer: status and stable code.
pub async fn expect_error(router: &Router, request: Request<Body>, status: u16, code: &str) {
    let (got, body) = json(router, request).await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
