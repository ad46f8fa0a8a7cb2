//! Request handlers, one module per group of routes, and the helpers they share.

pub mod collections;
pub mod extract;
pub mod images;
pub mod jobs;
pub mod library;
pub mod search;
pub mod system;

use crate::error::AppError;
use crate::{AppState, ServerConfig};
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;
use utoipa::ToSchema;

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
#[derive(Debug, Serialize, ToSchema)]
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

/// The one check of k and of the threshold, the database's; the server passes its configured
/// maximum.
pub fn check_k(name: &str, k: usize, max: usize) -> Result<usize, AppError> {
    Ok(vecdb::search::check_k(name, k, max)?)
}

pub fn check_threshold(threshold: Option<f32>) -> Result<Option<f32>, AppError> {
    Ok(vecdb::search::check_threshold(threshold)?)
}

/// Parses a filter given as a JSON string (query strings and multipart fields carry it so),
/// refusing one longer than `max_bytes` before parsing it and one larger than `max_nodes` after.
pub fn parse_filter(
    text: Option<&str>,
    config: &ServerConfig,
) -> Result<Option<vecdb::Filter>, AppError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(json) => {
            if json.len() > config.max_filter_bytes {
                return Err(AppError::param(
                    "filter",
                    format!(
                        "is {} bytes long; the limit is {} (max_filter_bytes)",
                        json.len(),
                        config.max_filter_bytes
                    ),
                ));
            }
            let filter: vecdb::Filter = serde_json::from_str(json)
                .map_err(|err| AppError::param("filter", format!("not a valid filter: {err}")))?;
            check_filter(&filter, config.max_filter_nodes)?;
            Ok(Some(filter))
        }
    }
}

/// Refuses a filter of more than `max_nodes` nodes (each operator and each value of an `in`),
/// and compiles it once, so that a bad filter is a 400 before any engine or store work starts
/// and no collection lock is ever held while a filter is parsed.
pub fn check_filter(filter: &vecdb::Filter, max_nodes: usize) -> Result<(), AppError> {
    fn count(f: &vecdb::Filter) -> usize {
        use vecdb::Filter as F;
        match f {
            F::Eq { .. } | F::Range { .. } => 1,
            F::In { values, .. } => 1 + values.len(),
            F::And(items) | F::Or(items) => 1 + items.iter().map(count).sum::<usize>(),
            F::Not(inner) => 1 + count(inner),
        }
    }
    let nodes = count(filter);
    if nodes > max_nodes {
        return Err(AppError::param(
            "filter",
            format!("has {nodes} nodes and values; the limit is {max_nodes} (max_filter_nodes)"),
        ));
    }
    filter.matcher().map_err(AppError::from)?;
    Ok(())
}

/// Waits up to `decode_wait_ms` for a decode slot. Decoding and embedding are the costly,
/// memory-hungry steps, so they run at most `decode_slots` at a time; a request that cannot get
/// a slot in time gets 503 with `Retry-After` instead of queueing without bound. The permit must
/// move into the blocking closure, so that the slot stays taken until the work really ends
/// (a timed-out request does not stop a decode already running).
pub async fn decode_permit(state: &AppState) -> Result<OwnedSemaphorePermit, AppError> {
    let wait = std::time::Duration::from_millis(state.config.decode_wait_ms);
    match tokio::time::timeout(wait, state.decode_slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) | Err(_) => Err(AppError::Busy { retry_after: 2 }),
    }
}
