//! The raw vector API, shaped after Milvus: collections with a dimension, a `metric_type`
//! (`L2`, `IP`, `COSINE`), an `index_type` (`FLAT`, `HNSW`, `IVF_FLAT`, `LSH`, and the SQ8 kinds
//! `FLAT_SQ8`, `HNSW_SQ`, `IVF_SQ8`) and `params`; searches with `data`, `limit`, `filter` and
//! `param: {metric_type, params: {ef, nprobe, probes, refine_k}}`.
//!
//! The use cases are the engine's (`Engine::collections`): names, dimensions, the read-only
//! image collection and existence are checked there. This file parses, applies the server's
//! request limits, and shapes the JSON.

use super::extract::{JsonBody, PathParam};
use super::{blocking, check_filter, check_k, check_threshold};
use crate::error::AppError;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use engine::CollectionInfo;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Instant;
use vecdb::{CollectionConfig, IndexSpec, Point, SearchRequest};

mod params;

use params::{index_from_params, index_to_params, metric_from_name, metric_name};

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
    refine_k: Option<f32>,
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

/// De-duplicates requested ids (keeping their order) and refuses more than `max_ids`, so one
/// small request cannot make the server fetch and serialise the same point thousands of times.
fn unique_ids(ids: Vec<u64>, max_ids: usize) -> Result<Vec<u64>, AppError> {
    if ids.len() > max_ids {
        return Err(AppError::param(
            "ids",
            format!("holds {} ids; the limit is {max_ids} (max_ids)", ids.len()),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    Ok(ids.into_iter().filter(|id| seen.insert(*id)).collect())
}

fn describe(info: CollectionInfo) -> CollectionOut {
    CollectionOut {
        dimension: info.config.dim,
        metric_type: metric_name(info.config.metric),
        index_type: params::index_name(&info.config.index),
        params: index_to_params(&info.config.index),
        count: info.count,
        images: info.images,
        name: info.config.name,
    }
}

/// `POST /api/collections`: creates a collection.
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<CollectionOut>), AppError> {
    let metric = metric_from_name(&body.metric_type)?;
    let index: IndexSpec = index_from_params(&body.index_type, &body.params)?;
    let config = CollectionConfig {
        name: body.name,
        dim: body.dimension,
        metric,
        index,
    };
    let info = blocking(move || Ok(state.engine.collections().create(config)?)).await?;
    Ok((StatusCode::CREATED, Json(describe(info))))
}

/// `GET /api/collections`: every collection with its settings and size.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let infos = blocking(move || Ok(state.engine.collections().list()?)).await?;
    let out: Vec<CollectionOut> = infos.into_iter().map(describe).collect();
    Ok(Json(serde_json::json!({ "collections": out })))
}

/// `GET /api/collections/{name}`.
pub async fn info(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<CollectionOut>, AppError> {
    let info = blocking(move || Ok(state.engine.collections().info(&name)?)).await?;
    Ok(Json(describe(info)))
}

/// `DELETE /api/collections/{name}`.
pub async fn drop_collection(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<Value>, AppError> {
    blocking(move || {
        state.engine.collections().drop(&name)?;
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
        // The database keeps u64::MAX for itself (it marks free slots).
        if p.id == u64::MAX {
            return Err(AppError::param("id", "must be below 18446744073709551615"));
        }
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
        state.engine.collections().upsert(&name, &points)?;
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
    let max_queries = state.config.max_queries;
    if body.data.is_empty() || body.data.len() > max_queries {
        return Err(AppError::param(
            "data",
            format!("must hold 1 to {max_queries} query vectors (max_queries)"),
        ));
    }
    let k = check_k("limit", body.limit, state.config.max_k)?;
    let results = body.data.len().saturating_mul(k);
    if results > state.config.max_results {
        return Err(AppError::param(
            "limit",
            format!(
                "{} queries x limit {k} asks for {results} hits; the limit is {} (max_results)",
                body.data.len(),
                state.config.max_results
            ),
        ));
    }
    if let Some(filter) = &body.filter {
        check_filter(filter, state.config.max_filter_nodes)?;
    }
    let req = SearchRequest {
        k,
        filter: body.filter,
        threshold: check_threshold(body.threshold)?,
        ef: body.param.params.ef,
        nprobe: body.param.params.nprobe,
        probes: body.param.params.probes,
        refine_k: body.param.params.refine_k,
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
        Ok(state
            .engine
            .collections()
            .search(&name, &body.data, &req, asked_metric)?)
    })
    .await?;
    metrics.record_search("vector", started.elapsed());
    Ok(Json(serde_json::json!({ "results": results })))
}

/// `POST /api/collections/{name}/delete`: removes points by id; unknown ids are not an error.
pub async fn delete_points(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<IdsBody>,
) -> Result<Json<Value>, AppError> {
    let ids = unique_ids(body.ids, state.config.max_ids)?;
    blocking(move || {
        let present = state.engine.collections().delete(&name, &ids)?;
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
    let ids = unique_ids(body.ids, state.config.max_ids)?;
    let max_floats = state.config.max_response_floats;
    blocking(move || {
        let collections = state.engine.collections();
        let config = collections.config(&name)?;
        let floats = ids.len().saturating_mul(config.dim);
        if floats > max_floats {
            return Err(AppError::param(
                "ids",
                format!(
                    "{} ids of dimension {} is {floats} numbers; the limit is {max_floats} \
                     (max_response_floats)",
                    ids.len(),
                    config.dim
                ),
            ));
        }
        let points = collections.get(&name, &ids)?;
        let data: Vec<Value> = points
            .into_iter()
            .map(|p| serde_json::json!({ "id": p.id, "vector": p.vector, "metadata": p.metadata }))
            .collect();
        Ok(Json(serde_json::json!({ "data": data })))
    })
    .await
}
