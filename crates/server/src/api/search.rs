//! Image search: by an uploaded image (POST), by an indexed image's id or by words (GET).

use super::{blocking, check_k, check_threshold, decode_permit, parse_filter, ImageUrls};
use crate::error::AppError;
use crate::openapi::{E400, E404, E413, E415, E422, TAG_SEARCH};
use crate::sniff::image_mime;
use crate::AppState;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Query, State};
use axum::Json;
use engine::SearchHit;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};

/// Query string of `GET /api/search`: exactly one of `id` and `text`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Search for images like this indexed image (it is left out of the hits).
    id: Option<u64>,
    /// Search by words (matched against the images' labels).
    text: Option<String>,
    /// Number of hits (refused, not capped, above the server's max_k).
    #[param(minimum = 1, maximum = 1000, default = 10)]
    k: Option<usize>,
    /// Minimum score (cosine/IP) or maximum distance (L2) a hit must have.
    threshold: Option<f32>,
    /// A metadata filter as JSON text, e.g. {"eq":{"field":"tags","value":"daisy"}}.
    #[param(example = r#"{"eq":{"field":"tags","value":"daisy"}}"#)]
    filter: Option<String>,
}

/// The multipart form of `POST /api/search`. The handler reads the fields one by one (to
/// bound their size), so this type only describes the form to the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SearchForm {
    /// JPEG, PNG, WebP, GIF, BMP or TIFF.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Number of hits (refused, not capped, above the server's max_k).
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    k: Option<usize>,
    /// Minimum score (cosine/IP) or maximum distance (L2) a hit must have.
    threshold: Option<f32>,
    /// A metadata filter as JSON text.
    filter: Option<String>,
}

/// One result as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Hit)]
pub struct HitOut {
    id: u64,
    #[schema(value_type = String)]
    path: PathBuf,
    /// Cosine similarity or inner product (higher is closer) or L2 distance (lower is closer),
    /// by the index's metric.
    score: f32,
    #[serde(flatten)]
    urls: ImageUrls,
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
}

impl From<SearchHit> for HitOut {
    fn from(hit: SearchHit) -> Self {
        HitOut {
            id: hit.id,
            path: hit.path,
            score: hit.score,
            urls: ImageUrls::for_id(hit.id),
            metadata: hit.metadata,
        }
    }
}

/// Body of every image-search answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    hits: Vec<HitOut>,
    /// Time the search took, in milliseconds.
    took_ms: f64,
}

enum SearchInput {
    Bytes(Vec<u8>),
    Id(u64),
    Text(String),
}

impl SearchInput {
    fn kind(&self) -> &'static str {
        match self {
            SearchInput::Bytes(_) => "image",
            SearchInput::Id(_) => "id",
            SearchInput::Text(_) => "text",
        }
    }
}

fn build_query(
    state: &AppState,
    k: Option<usize>,
    threshold: Option<f32>,
    filter: Option<&str>,
) -> Result<engine::Query, AppError> {
    let defaults = engine::Query::default();
    Ok(engine::Query {
        k: check_k("k", k.unwrap_or(defaults.k), state.config.max_k)?,
        threshold: check_threshold(threshold)?,
        filter: parse_filter(filter, &state.config)?,
    })
}

async fn run_search(
    state: AppState,
    input: SearchInput,
    query: engine::Query,
) -> Result<Json<SearchResponse>, AppError> {
    let kind = input.kind();
    let engine = state.engine.clone();
    // Only a search by image decodes and embeds; by id and by words it reads the index.
    let permit = match input {
        SearchInput::Bytes(_) => Some(decode_permit(&state).await?),
        _ => None,
    };
    let started = Instant::now();
    let hits = blocking(move || {
        let _permit = permit;
        match &input {
            SearchInput::Bytes(bytes) => engine.search_bytes(bytes, &query).map_err(AppError::from),
            SearchInput::Id(id) => engine.search_id(*id, &query).map_err(|err| match err {
                engine::EngineError::NotFound { .. } => AppError::ImageNotFound { id: *id },
                other => other.into(),
            }),
            SearchInput::Text(words) => engine.search_text(words, &query).map_err(AppError::from),
        }
    })
    .await?;
    let elapsed = started.elapsed();
    state.metrics.record_search(kind, elapsed);
    Ok(Json(SearchResponse {
        hits: hits.into_iter().map(HitOut::from).collect(),
        took_ms: elapsed.as_secs_f64() * 1e3,
    }))
}

/// `GET /api/search?id=..` or `?text=..`, with optional `k`, `threshold` and `filter`.
#[utoipa::path(
    get,
    path = "/api/search",
    tag = TAG_SEARCH,
    operation_id = "searchGet",
    summary = "Search by an indexed image (id) or by words (text). Give exactly one of id and text.",
    params(SearchParams),
    responses(
        (status = 200, description = "OK", body = SearchResponse),
        (status = 400, response = E400),
        (status = 404, response = E404),
    )
)]
pub async fn search_get(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResponse>, AppError> {
    let Query(params) = params?;
    let input = match (params.id, params.text) {
        (Some(id), None) => SearchInput::Id(id),
        (None, Some(text)) if !text.trim().is_empty() => SearchInput::Text(text),
        (None, Some(_)) => return Err(AppError::param("text", "must not be empty")),
        (Some(_), Some(_)) => {
            return Err(AppError::param("id", "give either id or text, not both"));
        }
        (None, None) => {
            return Err(AppError::param(
                "id",
                "give id (an indexed image) or text (words)",
            ));
        }
    };
    let query = build_query(&state, params.k, params.threshold, params.filter.as_deref())?;
    run_search(state, input, query).await
}

/// `POST /api/search`, multipart: `image` (required), `k`, `threshold`, `filter` (JSON text).
#[utoipa::path(
    post,
    path = "/api/search",
    tag = TAG_SEARCH,
    operation_id = "searchPost",
    summary = "Search by an uploaded image.",
    request_body(content = SearchForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "OK", body = SearchResponse),
        (status = 400, response = E400),
        (status = 413, response = E413),
        (status = 415, response = E415),
        (status = 422, response = E422),
    )
)]
pub async fn search_post(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<SearchResponse>, AppError> {
    let limit = state.config.max_upload_bytes;
    let mut multipart = multipart?;
    let (mut image, mut k, mut threshold, mut filter) = (None, None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::from(e).with_limit(limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "image" => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::from(e).with_limit(limit))?;
                image = Some(bytes.to_vec());
            }
            "k" | "threshold" | "filter" => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| AppError::from(e).with_limit(limit))?;
                match name.as_str() {
                    "k" => k = Some(parse_number::<usize>("k", &text)?),
                    "threshold" => threshold = Some(parse_number::<f32>("threshold", &text)?),
                    _ => filter = Some(text),
                }
            }
            other => {
                return Err(AppError::InvalidMultipart {
                    reason: format!("unknown field {other:?}"),
                })
            }
        }
    }
    let image = image.ok_or_else(|| AppError::InvalidMultipart {
        reason: "the image field is missing".to_string(),
    })?;
    if image_mime(&image).is_none() {
        return Err(AppError::NotAnImage);
    }
    let query = build_query(&state, k, threshold, filter.as_deref())?;
    run_search(state, SearchInput::Bytes(image), query).await
}

fn parse_number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, AppError> {
    text.trim()
        .parse()
        .map_err(|_| AppError::param(name, format!("{text:?} is not a valid number")))
}
