//! Health, status, metrics, the OpenAPI document, JSON fallbacks and common response headers.

use super::blocking;
use crate::error::AppError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Uri};
use axum::middleware::Next;
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
        map.insert(
            "server".into(),
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "max_upload_bytes": state.config.max_upload_bytes,
                "max_k": state.config.max_k,
                "thumbnail_size": state.config.thumbnail_size,
            }),
        );
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

/// Headers every response carries: no MIME sniffing, no framing, and a content security policy
/// that lets the page load nothing from outside this server.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
}
