//! Image search: by uploaded images and indexed ids as examples and counter-examples (POST), by
//! an indexed image's id or by words (GET).

use super::{blocking, check_k, check_threshold, decode_permit, parse_filter, ImageUrls};
use crate::error::AppError;
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

/// Query string of `GET /api/search`: exactly one of `id` and `text`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    id: Option<u64>,
    text: Option<String>,
    k: Option<usize>,
    threshold: Option<f32>,
    filter: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

/// One result as the API shows it.
#[derive(Debug, Serialize)]
pub struct HitOut {
    id: u64,
    path: PathBuf,
    score: f32,
    #[serde(flatten)]
    urls: ImageUrls,
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
#[derive(Debug, Serialize)]
pub struct SearchResponse {
    hits: Vec<HitOut>,
    /// The `cursor` of the next page; `null` on the last one.
    next: Option<String>,
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
