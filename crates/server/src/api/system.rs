//! Health, status, metrics, the OpenAPI document, JSON fallbacks and common response headers.

use super::blocking;
use crate::error::AppError;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::EngineStatus;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::{E500, E503, TAG_SYSTEM};

/// Answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /healthz`: answers as long as the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = TAG_SYSTEM,
    operation_id = "healthz",
    summary = "Liveness check.",
    responses((status = 200, description = "OK", body = Health)),
    security(())
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The engine's status (image count, model, the runtime running it, dimension, metric, index,
/// store kind, data directory, storage) and the server's settings.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// The engine's part: `files`, `points`, `model`, `collection_model`, `runtime`, `dim`,
    /// `metric`, `index`, `text_search`, `store`, `collection`, `data_dir`, `storage`,
    /// `duplicates` (the score bands `identical`, `duplicate` and `similar` that tell copies
    /// from similar shots; cosine only).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    engine: EngineStatus,
    server: ServerSettings,
}

/// The server's part of `GET /api/status`.
#[derive(Serialize, ToSchema)]
pub struct ServerSettings {
    version: &'static str,
    /// `token` when requests need a token, `none` otherwise.
    #[schema(example = "none")]
    auth: &'static str,
    max_upload_bytes: usize,
    max_k: usize,
    thumbnail_size: u32,
    limits: Limits,
}

/// Every limit of the server, named after its configuration key (see the README).
#[derive(Serialize, ToSchema)]
pub struct Limits {
    max_upload_bytes: usize,
    max_k: usize,
    max_ids: usize,
    max_queries: usize,
    max_results: usize,
    max_response_floats: usize,
    max_filter_bytes: usize,
    max_filter_nodes: usize,
    decode_slots: usize,
    decode_wait_ms: u64,
    header_timeout_secs: u64,
    request_timeout_secs: u64,
    max_connections: usize,
    max_pixels: u64,
    max_file_bytes: u64,
    max_lsh_projection: usize,
    max_ivf_centres: usize,
    max_dimension: usize,
}

/// `GET /api/status`: what the engine reports (counts, model, index, store) plus HTTP settings.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = TAG_SYSTEM,
    operation_id = "status",
    summary = "Index status: image count, model, dimension, metric, index, store.",
    responses(
        (status = 200, description = "OK", body = Status),
        (status = 500, response = E500),
        (status = 503, response = E503),
    )
)]
pub async fn status(State(state): State<AppState>) -> Result<Json<Status>, AppError> {
    let engine = state.engine.clone();
    let status = blocking(move || engine.status().map_err(AppError::from)).await?;
    let c = &state.config;
    let limits = &state.engine.config().limits;
    let server = ServerSettings {
        version: env!("CARGO_PKG_VERSION"),
        auth: if c.token.is_some() { "token" } else { "none" },
        max_upload_bytes: c.max_upload_bytes,
        max_k: c.max_k,
        thumbnail_size: c.thumbnail_size,
        limits: Limits {
            max_upload_bytes: c.max_upload_bytes,
            max_k: c.max_k,
            max_ids: c.max_ids,
            max_queries: c.max_queries,
            max_results: c.max_results,
            max_response_floats: c.max_response_floats,
            max_filter_bytes: c.max_filter_bytes,
            max_filter_nodes: c.max_filter_nodes,
            decode_slots: c.decode_slots,
            decode_wait_ms: c.decode_wait_ms,
            header_timeout_secs: c.header_timeout_secs,
            request_timeout_secs: c.request_timeout_secs,
            max_connections: c.max_connections,
            max_pixels: limits.max_pixels,
            max_file_bytes: limits.max_file_bytes,
            max_lsh_projection: vecdb::index::MAX_LSH_PROJECTION,
            max_ivf_centres: vecdb::index::MAX_IVF_CENTRES,
            max_dimension: vecdb::config::MAX_DIM,
        },
    };
    Ok(Json(Status {
        engine: status,
        server,
    }))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = TAG_SYSTEM,
    operation_id = "metrics",
    summary = "Prometheus metrics: requests and latency per route, search latency, indexed images.",
    responses((status = 200, description = "OK", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let engine = state.engine.clone();
    // A failing status call must not hide the request metrics, so the gauge is simply left out.
    let indexed = blocking(move || engine.status().map_err(AppError::from))
        .await
        .ok()
        .map(|s| s.files);
    let body = state.metrics.render(indexed);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /openapi.json`: the document [`crate::openapi`] generates from the handlers and types.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = TAG_SYSTEM,
    operation_id = "openapi",
    summary = "This document.",
    responses((status = 200, description = "OK", body = Object)),
    security(())
)]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
    )
        .into_response()
}

/// Any path no route matches.
pub async fn route_not_found(uri: Uri) -> AppError {
    AppError::RouteNotFound {
        path: uri.path().to_string(),
    }
}

/// A known path asked with a method it does not serve.
pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
