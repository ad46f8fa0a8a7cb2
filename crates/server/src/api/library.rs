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

/// Query of `GET /api/library`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibraryParams {
    /// Images per page, 1 to `max_k` [60].
    limit: Option<usize>,
    /// The `next` of the page before.
    after: Option<String>,
}

/// `GET /api/library?limit=N&after=CURSOR`: every indexed image, newest first, a page at a time
/// (`next` is the cursor of the following page, `null` on the last one).
pub async fn page(
    State(state): State<AppState>,
    query: Result<Query<LibraryParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let Query(LibraryParams { limit, after }) = query?;
    let limit = super::check_k("limit", limit.unwrap_or(60), state.config.max_k)?;
    let after = after
        .map(|a| a.parse::<engine::LibraryCursor>())
        .transpose()?;
    let engine = state.engine.clone();
    let page = blocking(move || engine.library(after, limit).map_err(AppError::from)).await?;
    let images = page
        .images
        .iter()
        .map(image_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(serde_json::json!({
        "images": images,
        "next": page.next.map(|c| c.to_string()),
        "total": page.total,
    })))
}
