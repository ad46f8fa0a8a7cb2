//! What the command line asks of a running server besides searches and jobs: an indexed image
//! by the path it was indexed under (`imgsearch search --similar-to PATH`) and the
//! near-duplicate groups (`imgsearch dedup`). Both are the engine's use cases, unchanged.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use engine::SearchHit;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::blocking;
use super::images::ImageOut;
use crate::error::AppError;
use crate::openapi::{E400, E404, TAG_IMAGES};
use crate::AppState;

/// Query of `GET /api/images`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ByPath {
    /// The absolute, canonical path the image was indexed under.
    path: String,
}

/// `GET /api/images?path=P`: the record of the image indexed under `P`. Only the catalog is
/// read (no file-system access), so this tells no more than search results do.
#[utoipa::path(
    get,
    path = "/api/images",
    tag = TAG_IMAGES,
    operation_id = "getImageByPath",
    summary = "The record of the image indexed under a path (what `imgsearch search --similar-to` \
               asks). Only the catalog is read.",
    params(ByPath),
    responses(
        (status = 200, description = "OK", body = ImageOut),
        (status = 400, response = E400),
        (status = 404, response = E404),
    )
)]
pub async fn by_path(
    State(state): State<AppState>,
    query: Result<Query<ByPath>, QueryRejection>,
) -> Result<Json<ImageOut>, AppError> {
    let Query(ByPath { path }) = query?;
    let engine = state.engine.clone();
    let key = path.clone();
    let record = blocking(move || engine.image_by_indexed_path(&key).map_err(AppError::from))
        .await?
        .ok_or(AppError::NotFound {
            what: format!("indexed image {path}"),
        })?;
    Ok(Json(record.into()))
}

/// Query of `GET /api/dedup`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DedupParams {
    /// Minimum similarity (cosine, ip) or maximum distance (l2).
    threshold: f32,
}

/// Answer of `GET /api/dedup`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DedupGroups {
    /// Groups of near-duplicate images, largest first.
    groups: Vec<Vec<SearchHit>>,
}

/// `GET /api/dedup?threshold=T`: groups of near-duplicate images, largest first.
#[utoipa::path(
    get,
    path = "/api/dedup",
    tag = TAG_IMAGES,
    operation_id = "dedup",
    summary = "Groups of near-duplicate images, largest first (what `imgsearch dedup` prints).",
    params(DedupParams),
    responses(
        (status = 200, description = "OK", body = DedupGroups),
        (status = 400, response = E400),
    )
)]
pub async fn dedup(
    State(state): State<AppState>,
    query: Result<Query<DedupParams>, QueryRejection>,
) -> Result<Json<DedupGroups>, AppError> {
    let Query(DedupParams { threshold }) = query?;
    let engine = state.engine.clone();
    let groups: Vec<Vec<SearchHit>> =
        blocking(move || engine.dedup(threshold).map_err(AppError::from)).await?;
    Ok(Json(DedupGroups { groups }))
}

/// Query of `GET /api/library`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LibraryParams {
    /// Images per page, at most `max_k`.
    #[param(minimum = 1, default = 60)]
    limit: Option<usize>,
    /// The `next` of the page before.
    after: Option<String>,
}

/// One page of `GET /api/library`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LibraryPage {
    images: Vec<ImageOut>,
    /// Cursor of the next page; null on the last page.
    next: Option<String>,
    /// Images in the library.
    total: u64,
}

/// `GET /api/library?limit=N&after=CURSOR`: every indexed image, newest first, a page at a time
/// (`next` is the cursor of the following page, `null` on the last one).
#[utoipa::path(
    get,
    path = "/api/library",
    tag = TAG_IMAGES,
    operation_id = "library",
    summary = "Every indexed image, newest first (by file modification time), a page at a time.",
    params(LibraryParams),
    responses(
        (status = 200, description = "OK", body = LibraryPage),
        (status = 400, response = E400),
    )
)]
pub async fn page(
    State(state): State<AppState>,
    query: Result<Query<LibraryParams>, QueryRejection>,
) -> Result<Json<LibraryPage>, AppError> {
    let Query(LibraryParams { limit, after }) = query?;
    let limit = super::check_k("limit", limit.unwrap_or(60), state.config.max_k)?;
    let after = after
        .map(|a| a.parse::<engine::LibraryCursor>())
        .transpose()?;
    let engine = state.engine.clone();
    let page = blocking(move || engine.library(after, limit).map_err(AppError::from)).await?;
    Ok(Json(LibraryPage {
        images: page.images.into_iter().map(ImageOut::from).collect(),
        next: page.next.map(|c| c.to_string()),
        total: page.total,
    }))
}
