//! Request handlers, one module per group of routes, and the helpers they share.

pub mod collections;
pub mod extract;
pub mod images;
pub mod search;
pub mod system;

use crate::error::AppError;
use serde::Serialize;

/// Runs a blocking engine call on tokio's blocking pool, so that decoding and embedding never
/// stall the threads that serve other connections.
pub async fn blocking<T, F>(work: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| AppError::Internal {
            reason: format!("worker task failed: {err}"),
        })?
}

/// The URLs under which the page fetches an indexed image.
#[derive(Debug, Serialize)]
pub struct ImageUrls {
    pub thumbnail_url: String,
    pub image_url: String,
}

impl ImageUrls {
    pub fn for_id(id: u64) -> Self {
        ImageUrls {
            thumbnail_url: format!("/api/images/{id}/thumbnail"),
            image_url: format!("/api/images/{id}/original"),
        }
    }
}

/// Checks a requested result count against the configured maximum; out-of-range values are
/// refused rather than silently capped.
pub fn check_k(name: &str, k: usize, max: usize) -> Result<usize, AppError> {
    if k == 0 || k > max {
        return Err(AppError::param(
            name,
            format!("must be between 1 and {max}, got {k}"),
        ));
    }
    Ok(k)
}

/// Checks that a score threshold is a finite number.
pub fn check_threshold(threshold: Option<f32>) -> Result<Option<f32>, AppError> {
    match threshold {
        Some(t) if !t.is_finite() => Err(AppError::param("threshold", "must be a finite number")),
        other => Ok(other),
    }
}

/// Parses a filter given as a JSON string (query strings and multipart fields carry it so).
pub fn parse_filter(text: Option<&str>) -> Result<Option<vecdb::Filter>, AppError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(json) => serde_json::from_str(json)
            .map(Some)
            .map_err(|err| AppError::param("filter", format!("not a valid filter: {err}"))),
    }
}
