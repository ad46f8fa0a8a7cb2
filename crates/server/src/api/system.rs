//! Health, status, metrics, the OpenAPI document, JSON fallbacks and common response headers.

use super::blocking;
use crate::error::AppError;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The OpenAPI 3 document of every route, written by hand next to the code it describes.
pub const OPENAPI: &str = include_str!("../../assets/openapi.json");

/// `GET /healthz`: answers as long as the process serves requests.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /api/status`: what the engine reports (counts, model, index, store) plus HTTP settings.
pub async fn status(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    let engine = state.engine.clone();
    let status = blocking(move || engine.status().map_err(AppError::from)).await?;
    let mut value = serde_json::to_value(&status).map_err(|err| AppError::Internal {
        reason: format!("cannot serialise status: {err}"),
    })?;
    if let Some(map) = value.as_object_mut() {
        map.insert("server".into(), {
            let c = &state.config;
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "auth": if c.token.is_some() { "token" } else { "none" },
                "max_upload_bytes": c.max_upload_bytes,
                "max_k": c.max_k,
                "thumbnail_size": c.thumbnail_size,
                "limits": {
                    "max_upload_bytes": c.max_upload_bytes,
                    "max_k": c.max_k,
                    "max_ids": c.max_ids,
                    "max_queries": c.max_queries,
                    "max_results": c.max_results,
                    "max_response_floats": c.max_response_floats,
                    "max_filter_bytes": c.max_filter_bytes,
                    "max_filter_nodes": c.max_filter_nodes,
                    "decode_slots": c.decode_slots,
                    "decode_wait_ms": c.decode_wait_ms,
                    "header_timeout_secs": c.header_timeout_secs,
                    "request_timeout_secs": c.request_timeout_secs,
                    "max_connections": c.max_connections,
                    "max_pixels": state.engine.config().limits.max_pixels,
                    "max_file_bytes": state.engine.config().limits.max_file_bytes,
                    "max_lsh_projection": vecdb::index::MAX_LSH_PROJECTION,
                    "max_ivf_centres": vecdb::index::MAX_IVF_CENTRES,
                    "max_dimension": vecdb::config::MAX_DIM,
                },
            })
        });
    }
    Ok(Json(value))
}

/// `GET /metrics`: Prometheus text format.
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

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
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
