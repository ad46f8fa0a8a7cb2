//! What the command line asks of a running server besides searches and jobs: an indexed image
//! by the path it was indexed under (`imgsearch search --similar-to PATH`) and the
//! near-duplicate groups (`imgsearch dedup`). Both are the engine's use cases, unchanged.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use engine::SearchHit;
use serde::Deserialize;

use super::blocking;
use super::images::image_json;
use crate::error::AppError;
use crate::AppState;

/// Query of `GET /api/images`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByPath {
    /// The absolute, canonical path the image was indexed under.
    path: String,
}

/// `GET /api/images?path=P`: the record of the image indexed under `P`. Only the catalog is
/// read (no file-system access), so this tells no more than search results do.
pub async fn by_path(
    State(state): State<AppState>,
    query: Result<Query<ByPath>, QueryRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let Query(ByPath { path }) = query?;
    let engine = state.engine.clone();
    let key = path.clone();
    let record = blocking(move || engine.image_by_indexed_path(&key).map_err(AppError::from))
        .await?
        .ok_or(AppError::NotFound {
            what: format!("indexed image {path}"),
        })?;
    Ok(Json(image_json(&record)?))
}

/// Query of `GET /api/dedup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupParams {
    /// Minimum similarity (cosine, ip) or maximum distance (l2).
    threshold: f32,
}

/// `GET /api/dedup?threshold=T`: groups of near-duplicate images, largest first.
pub async fn dedup(
    State(state): State<AppState>,
    query: Result<Query<DedupParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let Query(DedupParams { threshold }) = query?;
    let engine = state.engine.clone();
    let groups: Vec<Vec<SearchHit>> =
        blocking(move || engine.dedup(threshold).map_err(AppError::from)).await?;
    Ok(Json(serde_json::json!({ "groups": groups })))
}
