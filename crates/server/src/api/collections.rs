//! The raw vector API, shaped after Milvus: collections with a dimension, a `metric_type`
//! (`L2`, `IP`, `COSINE`), an `index_type` (`FLAT`, `HNSW`, `IVF_FLAT`, `LSH`) and `params`;
//! searches with `data`, `limit`, `filter` and `param: {metric_type, params: {ef, nprobe}}`.
//!
//! Everything goes through `engine.store()`, so it works the same on the embedded store and on
//! Milvus. The collection that holds the image index may be read here but not written: points
//! written behind the engine's back would disagree with its catalog.

use super::extract::{JsonBody, PathParam};
use super::{blocking, check_k, check_threshold};
use crate::error::AppError;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Instant;
use vecdb::{CollectionConfig, IndexSpec, Metric, Point, SearchRequest};

mod params;

use params::{index_from_params, index_to_params, metric_from_name, metric_name};

/// Largest number of query vectors in one search request.
const MAX_QUERIES: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    dimension: usize,
    #[serde(default = "default_metric")]
    metric_type: String,
    #[serde(default = "default_index")]
    index_type: String,
    #[serde(default)]
    params: Map<String, Value>,
}

fn default_metric() -> String {
    "COSINE".into()
}

fn default_index() -> String {
    "FLAT".into()
}

#[derive(Debug, Serialize)]
pub struct CollectionOut {
    name: String,
    dimension: usize,
    metric_type: &'static str,
    index_type: &'static str,
    params: Map<String, Value>,
    count: u64,
    /// True for the collection that holds the image index (read-only here).
    images: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointIn {
    id: u64,
    vector: Vec<f32>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertBody {
    data: Vec<PointIn>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParam {
    metric_type: Option<String>,
    #[serde(default)]
    params: QueryParamsIn,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParamsIn {
    ef: Option<usize>,
    nprobe: Option<usize>,
    probes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    data: Vec<Vec<f32>>,
    #[serde(default = "default_limit")]
    limit: usize,
    filter: Option<vecdb::Filter>,
    threshold: Option<f32>,
    #[serde(default)]
    param: SearchParam,
}

fn default_limit() -> usize {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdsBody {
    ids: Vec<u64>,
}

/// Milvus-compatible collection names: a letter or underscore, then letters, digits and
/// underscores, at most 255 characters.
fn check_name(name: &str) -> Result<(), AppError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || name.len() > 255 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(AppError::param(
            "name",
            "must start with a letter or _, hold only letters, digits and _, and be at most 255 long",
        ));
    }
    Ok(())
}

fn writable(state: &AppState, name: &str) -> Result<(), AppError> {
    if state.engine.collection().name == name {
        return Err(AppError::ReadOnlyCollection {
            name: name.to_string(),
        });
    }
    Ok(())
}

fn describe(state: &AppState, config: CollectionConfig) -> Result<CollectionOut, AppError> {
    let count = state.engine.store().count(&config.name)?;
    let images = state.engine.collection().name == config.name;
    Ok(CollectionOut {
        dimension: config.dim,
        metric_type: metric_name(config.metric),
        index_type: params::index_name(&config.index),
        params: index_to_params(&config.index),
        count,
        images,
        name: config.name,
    })
}

fn existing(state: &AppState, name: &str) -> Result<CollectionConfig, AppError> {
    state
        .engine
        .store()
        .collection_info(name)?
        .ok_or_else(|| AppError::UnknownCollection {
            name: name.to_string(),
        })
}

/// `POST /api/collections`: creates a collection.
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<CollectionOut>), AppError> {
    check_name(&body.name)?;
    if body.dimension == 0 || body.dimension > 65_536 {
        return Err(AppError::param("dimension", "must be between 1 and 65536"));
    }
    let metric = metric_from_name(&body.metric_type)?;
    let index: IndexSpec = index_from_params(&body.index_type, &body.params)?;
    index
        .validate(body.dimension)
        .map_err(|reason| AppError::param("params", reason))?;
    let config = CollectionConfig {
        name: body.name,
        dim: body.dimension,
        metric,
        index,
    };
    let out = blocking(move || {
        state.engine.store().create_collection(&config)?;
        describe(&state, config)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /api/collections`: every collection with its settings and size.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let out = blocking(move || {
        let configs = state.engine.store().list_collections()?;
        configs
            .into_iter()
            .map(|c| describe(&state, c))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(Json(serde_json::json!({ "collections": out })))
}

/// `GET /api/collections/{name}`.
pub async fn info(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<CollectionOut>, AppError> {
    let out = blocking(move || {
        let config = existing(&state, &name)?;
        describe(&state, config)
    })
    .await?;
    Ok(Json(out))
}

/// `DELETE /api/collections/{name}`.
pub async fn drop_collection(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<Value>, AppError> {
    blocking(move || {
        existing(&state, &name)?;
        writable(&state, &name)?;
        state.engine.store().drop_collection(&name)?;
        Ok(Json(serde_json::json!({ "name": name, "dropped": true })))
    })
    .await
}

/// `POST /api/collections/{name}/insert`: adds or replaces points (upsert semantics), all or
/// nothing.
pub async fn insert(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<InsertBody>,
) -> Result<Json<Value>, AppError> {
    if body.data.is_empty() {
        return Err(AppError::param("data", "must hold at least one point"));
    }
    let mut points = Vec::with_capacity(body.data.len());
    for p in body.data {
        let metadata = match p.metadata {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(m @ Value::Object(_)) => m,
            Some(_) => {
                return Err(AppError::param(
                    "metadata",
                    format!("of point {} must be a JSON object", p.id),
                ))
            }
        };
        points.push(Point {
            id: p.id,
            vector: p.vector,
            metadata,
        });
    }
    blocking(move || {
        let config = existing(&state, &name)?;
        writable(&state, &name)?;
        if let Some(bad) = points.iter().find(|p| p.vector.len() != config.dim) {
            return Err(AppError::WrongDimension {
                expected: config.dim,
                got: bad.vector.len(),
            });
        }
        state.engine.store().upsert(&name, &points)?;
        let ids: Vec<u64> = points.iter().map(|p| p.id).collect();
        Ok(Json(
            serde_json::json!({ "insert_count": ids.len(), "ids": ids }),
        ))
    })
    .await
}

/// `POST /api/collections/{name}/search`: nearest neighbours of each query vector.
pub async fn search(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<SearchBody>,
) -> Result<Json<Value>, AppError> {
    if body.data.is_empty() || body.data.len() > MAX_QUERIES {
        return Err(AppError::param(
            "data",
            format!("must hold 1 to {MAX_QUERIES} query vectors"),
        ));
    }
    let req = SearchRequest {
        k: check_k("limit", body.limit, state.config.max_k)?,
        filter: body.filter,
        threshold: check_threshold(body.threshold)?,
        ef: body.param.params.ef,
        nprobe: body.param.params.nprobe,
        probes: body.param.params.probes,
    };
    let asked_metric = body
        .param
        .metric_type
        .as_deref()
        .map(metric_from_name)
        .transpose()?;
    let metrics = state.metrics.clone();
    let started = Instant::now();
    let results = blocking(move || {
        let config = existing(&state, &name)?;
        check_metric(config.metric, asked_metric)?;
        let mut results = Vec::with_capacity(body.data.len());
        for query in &body.data {
            if query.len() != config.dim {
                return Err(AppError::WrongDimension {
                    expected: config.dim,
                    got: query.len(),
                });
            }
            results.push(state.engine.store().search(&name, query, &req)?);
        }
        Ok(results)
    })
    .await?;
    metrics.record_search("vector", started.elapsed());
    Ok(Json(serde_json::json!({ "results": results })))
}

/// A search may restate the collection's metric (as Milvus clients do) but not change it: the
/// index was built for one metric.
fn check_metric(actual: Metric, asked: Option<Metric>) -> Result<(), AppError> {
    match asked {
        Some(asked) if asked != actual => Err(AppError::param(
            "param.metric_type",
            format!(
                "the collection uses {}, not {}",
                metric_name(actual),
                metric_name(asked)
            ),
        )),
        _ => Ok(()),
    }
}

/// `POST /api/collections/{name}/delete`: removes points by id; unknown ids are not an error.
pub async fn delete_points(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<IdsBody>,
) -> Result<Json<Value>, AppError> {
    blocking(move || {
        existing(&state, &name)?;
        writable(&state, &name)?;
        let store = state.engine.store();
        // The store's delete does not say how many ids it found, so count them first.
        let present = store.get(&name, &body.ids)?.len();
        store.delete(&name, &body.ids)?;
        Ok(Json(serde_json::json!({ "delete_count": present })))
    })
    .await
}

/// `POST /api/collections/{name}/get`: points by id, with vectors and metadata; unknown ids
/// are skipped.
pub async fn get_points(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<IdsBody>,
) -> Result<Json<Value>, AppError> {
    blocking(move || {
        existing(&state, &name)?;
        let points = state.engine.store().get(&name, &body.ids)?;
        let data: Vec<Value> = points
            .into_iter()
            .map(|p| serde_json::json!({ "id": p.id, "vector": p.vector, "metadata": p.metadata }))
            .collect();
        Ok(Json(serde_json::json!({ "data": data })))
    })
    .await
}
