//! Image search: by uploaded images and indexed ids as examples and counter-examples (POST), by
//! an indexed image's id or by words (GET).

use super::{blocking, check_k, check_threshold, decode_permit, parse_filter, ImageUrls};
use crate::error::AppError;
use crate::openapi::{Binary, E400, E404, E413, E415, E422, TAG_SEARCH};
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
    /// Number of hits per page (refused, not capped, above the server's max_k).
    #[param(minimum = 1, maximum = 1000, default = 10)]
    k: Option<usize>,
    /// Minimum score (cosine/IP) or maximum distance (L2) a hit must have.
    threshold: Option<f32>,
    /// A metadata filter as JSON text, e.g. {"eq":{"field":"tags","value":"daisy"}}.
    #[param(example = r#"{"eq":{"field":"tags","value":"daisy"}}"#)]
    filter: Option<String>,
    /// `score` (the default) or `date`: newest first within the threshold.
    #[param(example = "date")]
    sort: Option<String>,
    /// The `next` of the page before.
    cursor: Option<String>,
}

/// The multipart form of `POST /api/search`. The handler reads the parts one by one (to bound
/// their size and number), so this type only describes the form to the OpenAPI document. Give
/// at least one example to look like (an `image` or a `positive` id), and at most 16 examples
/// in all.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SearchForm {
    /// Uploads to look like (JPEG, PNG, WebP, GIF, BMP or TIFF); the part is repeatable.
    #[schema(inline)]
    image: Option<Vec<Binary>>,
    /// Uploads not to look like; the part is repeatable.
    #[schema(inline)]
    negative_image: Option<Vec<Binary>>,
    /// Indexed images' ids to look like, comma-separated; the part is repeatable.
    #[schema(example = "12, 40")]
    positive: Option<String>,
    /// Indexed images' ids not to look like, comma-separated; the part is repeatable.
    negative: Option<String>,
    /// `average` (the default) or `best_score`.
    #[schema(example = "best_score")]
    strategy: Option<String>,
    /// Number of hits per page (refused, not capped, above the server's max_k).
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    k: Option<usize>,
    /// Minimum score (cosine/IP) or maximum distance (L2) a hit must have.
    threshold: Option<f32>,
    /// A metadata filter as JSON text.
    filter: Option<String>,
    /// `score` (the default) or `date`: newest first within the threshold.
    sort: Option<String>,
    /// The `next` of the page before.
    cursor: Option<String>,
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
    /// The `cursor` of the next page; `null` on the last one.
    next: Option<String>,
    /// Time the search took, in milliseconds.
    took_ms: f64,
}

enum SearchInput {
    /// Images (uploads or indexed ids) to look like and not to look like.
    Examples(engine::Examples),
    Text(String),
}

impl SearchInput {
    /// The metrics label: "image" when an upload is decoded, "id" for indexed images only.
    fn kind(&self) -> &'static str {
        match self {
            SearchInput::Examples(ex) if ex.positive.iter().chain(&ex.negative).any(is_upload) => {
                "image"
            }
            SearchInput::Examples(_) => "id",
            SearchInput::Text(_) => "text",
        }
    }
}

fn is_upload(e: &engine::Example) -> bool {
    matches!(e, engine::Example::Bytes(_))
}

/// The query's parameters as given (query string or multipart fields), before checking.
struct RawQuery<'a> {
    k: Option<usize>,
    threshold: Option<f32>,
    filter: Option<&'a str>,
    sort: Option<&'a str>,
    cursor: Option<&'a str>,
}

fn build_query(state: &AppState, raw: RawQuery<'_>) -> Result<engine::Query, AppError> {
    let defaults = engine::Query::default();
    let refused =
        |name: &'static str| move |e: engine::EngineError| AppError::param(name, e.to_string());
    Ok(engine::Query {
        k: check_k("k", raw.k.unwrap_or(defaults.k), state.config.max_k)?,
        threshold: check_threshold(raw.threshold)?,
        filter: parse_filter(raw.filter, &state.config)?,
        order: match raw.sort {
            None => defaults.order,
            Some(s) => s.parse().map_err(refused("sort"))?,
        },
        cursor: match raw.cursor.map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(c.parse().map_err(refused("cursor"))?),
        },
    })
}

async fn run_search(
    state: AppState,
    input: SearchInput,
    query: engine::Query,
) -> Result<Json<SearchResponse>, AppError> {
    let kind = input.kind();
    let engine = state.engine.clone();
    // Only a search by uploaded images decodes and embeds; by ids and by words it reads the
    // index.
    let permit = match kind {
        "image" => Some(decode_permit(&state).await?),
        _ => None,
    };
    let started = Instant::now();
    let page = blocking(move || {
        let _permit = permit;
        let input = match &input {
            SearchInput::Examples(examples) => engine::SearchInput::Examples(examples),
            SearchInput::Text(words) => engine::SearchInput::Text(words),
        };
        Ok(engine.search(input, &query)?)
    })
    .await?;
    let elapsed = started.elapsed();
    state.metrics.record_search(kind, elapsed);
    Ok(Json(SearchResponse {
        hits: page.hits.into_iter().map(HitOut::from).collect(),
        next: page.next.map(|c| c.to_string()),
        took_ms: elapsed.as_secs_f64() * 1e3,
    }))
}

/// `GET /api/search?id=..` or `?text=..`, with optional `k` (the page size), `threshold`,
/// `filter`, `sort` (`score`, the default, or `date`: newest first within the threshold) and
/// `cursor` (the `next` of the page before).
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
        (Some(id), None) => SearchInput::Examples(engine::Examples::one(engine::Example::Id(id))),
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
    let query = build_query(
        &state,
        RawQuery {
            k: params.k,
            threshold: params.threshold,
            filter: params.filter.as_deref(),
            sort: params.sort.as_deref(),
            cursor: params.cursor.as_deref(),
        },
    )?;
    run_search(state, input, query).await
}

/// `POST /api/search`, multipart: the examples as `image` parts (uploads to look like),
/// `negative_image` parts (uploads not to look like), `positive` and `negative` fields (indexed
/// images' ids, comma-separated, each field repeatable), at least one positive in all and at most
/// [`engine::MAX_EXAMPLES`] examples; `strategy` (`average`, the default, or `best_score`); `k`,
/// `threshold`, `filter` (JSON text), `sort` and `cursor` as for `GET`.
#[utoipa::path(
    post,
    path = "/api/search",
    tag = TAG_SEARCH,
    operation_id = "searchPost",
    summary = "Search by examples and counter-examples: uploaded images and indexed images' ids.",
    request_body(content = SearchForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "OK", body = SearchResponse),
        (status = 400, response = E400),
        (status = 404, response = E404),
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
    let mut examples = engine::Examples::default();
    let (mut k, mut threshold) = (None, None);
    let (mut filter, mut sort, mut cursor) = (None, None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::from(e).with_limit(limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if examples.positive.len() + examples.negative.len() > engine::MAX_EXAMPLES {
            // Refused before reading more parts: each example image would be held in memory.
            return Err(AppError::param(
                "image",
                format!("at most {} examples are allowed", engine::MAX_EXAMPLES),
            ));
        }
        match name.as_str() {
            "image" | "negative_image" => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::from(e).with_limit(limit))?;
                if image_mime(&bytes).is_none() {
                    return Err(AppError::NotAnImage);
                }
                let example = engine::Example::Bytes(bytes.to_vec());
                match name.as_str() {
                    "image" => examples.positive.push(example),
                    _ => examples.negative.push(example),
                }
            }
            "positive" | "negative" | "strategy" | "k" | "threshold" | "filter" | "sort"
            | "cursor" => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| AppError::from(e).with_limit(limit))?;
                match name.as_str() {
                    "positive" => examples.positive.extend(parse_ids("positive", &text)?),
                    "negative" => examples.negative.extend(parse_ids("negative", &text)?),
                    "strategy" => {
                        examples.strategy = text.parse().map_err(|e: engine::EngineError| {
                            AppError::param("strategy", e.to_string())
                        })?
                    }
                    "k" => k = Some(parse_number::<usize>("k", &text)?),
                    "threshold" => threshold = Some(parse_number::<f32>("threshold", &text)?),
                    "sort" => sort = Some(text),
                    "cursor" => cursor = Some(text),
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
    if examples.positive.is_empty() {
        return Err(AppError::InvalidMultipart {
            reason: "give an image field (an upload) or a positive field (indexed ids)".to_string(),
        });
    }
    let raw = RawQuery {
        k,
        threshold,
        filter: filter.as_deref(),
        sort: sort.as_deref(),
        cursor: cursor.as_deref(),
    };
    let query = build_query(&state, raw)?;
    run_search(state, SearchInput::Examples(examples), query).await
}

/// Ids as a comma-separated list (`"12, 40"`), each an indexed image.
fn parse_ids(name: &str, text: &str) -> Result<Vec<engine::Example>, AppError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| parse_number::<u64>(name, t).map(engine::Example::Id))
        .collect()
}

fn parse_number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, AppError> {
    text.trim()
        .parse()
        .map_err(|_| AppError::param(name, format!("{text:?} is not a valid number")))
}
