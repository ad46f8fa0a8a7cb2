//! The raw vector API, shaped after Milvus: collections with a dimension, a `metric_type`
//! (`L2`, `IP`, `COSINE`), an `index_type` (`FLAT`, `HNSW`, `IVF_FLAT`, `LSH`, the SQ8 kinds
//! `FLAT_SQ8`, `HNSW_SQ`, `IVF_SQ8` and the RaBitQ kinds `FLAT_RABITQ`, `IVF_RABITQ`,
//! `HNSW_RABITQ`) and
//! `params`; searches with `data`, `limit`, `filter` and
//! `param: {metric_type, params: {ef, nprobe, probes, refine_k}}`.
//!
//! The use cases are the engine's (`Engine::collections`): names, dimensions, the read-only
//! image collection and existence are checked there. This file parses, applies the server's
//! request limits, and shapes the JSON.

use super::extract::{JsonBody, PathParam};
use super::{blocking, check_filter, check_k, check_threshold};
use crate::error::AppError;
use crate::openapi::{E400, E403, E404, E409, E413, E415, TAG_VECTORS};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use engine::CollectionInfo;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Instant;
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;
use vecdb::{CollectionConfig, Hit, IndexSpec, Point, SearchRequest};

mod params;

use params::{
    index_from_params, index_to_params, metric_from_name, metric_name, INDEX_NAMES, METRIC_NAMES,
};

/// The `{name}` path segment of the routes under `/api/collections/{name}`, described once for
/// every operation that takes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only the OpenAPI document reads it; the handlers extract the name as text.
struct CollectionName {
    /// Collection name.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    name: String,
}

/// What a collection gets when `metric_type` or `index_type` is left out.
const DEFAULT_METRIC: &str = "COSINE";
const DEFAULT_INDEX: &str = "FLAT";

// The metric and index fields are documented as enums of the names `params` parses and shows.
// A `schema_with` function replaces the field's whole schema, doc comment included, so each
// carries its description.
const METRIC_TEXT: &str = "The metric (any case on input).";
const INDEX_TEXT: &str = "The index kind (any case on input).";

fn metric_schema() -> RefOr<Schema> {
    crate::openapi::string_enum(METRIC_NAMES, METRIC_TEXT, None)
}

fn asked_metric_schema() -> RefOr<Schema> {
    let text = "The metric (any case); must equal the collection's when given.";
    crate::openapi::string_enum(METRIC_NAMES, text, None)
}

fn index_schema() -> RefOr<Schema> {
    crate::openapi::string_enum(INDEX_NAMES, INDEX_TEXT, None)
}

fn metric_default_schema() -> RefOr<Schema> {
    crate::openapi::string_enum(METRIC_NAMES, METRIC_TEXT, Some(DEFAULT_METRIC))
}

fn index_default_schema() -> RefOr<Schema> {
    crate::openapi::string_enum(INDEX_NAMES, INDEX_TEXT, Some(DEFAULT_INDEX))
}

/// Body of `POST /api/collections`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateCollection)]
pub struct CreateBody {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    name: String,
    #[schema(minimum = 1, maximum = 65536)]
    dimension: usize,
    #[serde(default = "default_metric")]
    #[schema(schema_with = metric_default_schema, required = false)]
    metric_type: String,
    #[serde(default = "default_index")]
    #[schema(schema_with = index_default_schema, required = false)]
    index_type: String,
    /// HNSW: M, efConstruction, ef; IVF_FLAT: nlist, nprobe; LSH: tables, bits, probes,
    /// bucket_width; FLAT_SQ8: refine, refine_k; HNSW_SQ: M, efConstruction, ef, refine,
    /// refine_k; IVF_SQ8: nlist, nprobe, refine, refine_k; FLAT_RABITQ: refine;
    /// IVF_RABITQ: nlist, nprobe, refine; HNSW_RABITQ: M, efConstruction, ef; FLAT: none.
    /// Other keys are refused.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: Map<String, Value>,
}

fn default_metric() -> String {
    DEFAULT_METRIC.into()
}

fn default_index() -> String {
    DEFAULT_INDEX.into()
}

/// A collection: its settings and size.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Collection)]
pub struct CollectionOut {
    name: String,
    dimension: usize,
    #[schema(schema_with = metric_schema)]
    metric_type: &'static str,
    #[schema(schema_with = index_schema)]
    index_type: &'static str,
    /// The index's parameters, every one of them (defaults included).
    #[schema(value_type = Object)]
    params: Map<String, Value>,
    count: u64,
    /// True for the collection that holds the image index (read-only here).
    images: bool,
}

/// A point to insert: an id below 2^64-1, a vector of the collection's dimension and optional
/// metadata (a JSON object).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointIn {
    id: u64,
    vector: Vec<f32>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// Body of `POST /api/collections/{name}/insert`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertBody {
    data: Vec<PointIn>,
}

/// How a vector search runs.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchParam {
    #[schema(schema_with = asked_metric_schema, required = false)]
    metric_type: Option<String>,
    #[serde(default)]
    params: QueryParamsIn,
}

/// Per-search parameters of the index; each applies to the index kinds that have it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryParamsIn {
    /// HNSW, HNSW_SQ: candidates kept while searching.
    ef: Option<usize>,
    /// IVF_FLAT, IVF_SQ8, IVF_RABITQ: lists searched.
    nprobe: Option<usize>,
    /// LSH: buckets probed per table.
    probes: Option<usize>,
    /// The SQ8 kinds: candidates re-ranked on the full vectors, as a multiple of `limit`
    /// (the RaBitQ kinds re-rank by RaBitQ's error bound instead).
    refine_k: Option<f32>,
}

/// Body of `POST /api/collections/{name}/search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VectorSearch)]
pub struct SearchBody {
    /// Query vectors, each of the collection's dimension (at most `max_queries`).
    #[schema(min_items = 1, example = json!([[0.1, 0.2, 0.3]]))]
    data: Vec<Vec<f32>>,
    /// Hits per query vector.
    #[serde(default = "default_limit")]
    #[schema(minimum = 1, default = 10)]
    limit: usize,
    /// A metadata filter: {"eq":{field,value}}, {"in":{field,values}},
    /// {"range":{field,gt,gte,lt,lte}}, {"and":[...]}, {"or":[...]}, {"not":{...}}. field is a
    /// dotted path into the metadata; dates compare as instants.
    #[schema(value_type = Option<Object>)]
    filter: Option<vecdb::Filter>,
    /// Minimum score (cosine/IP) or maximum distance (L2) a hit must have.
    threshold: Option<f32>,
    #[serde(default)]
    param: SearchParam,
}

/// Answer of `GET /api/collections`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionList {
    collections: Vec<CollectionOut>,
}

/// Answer of `DELETE /api/collections/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionDropped {
    name: String,
    dropped: bool,
}

/// Answer of `POST /api/collections/{name}/insert`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Inserted {
    insert_count: usize,
    ids: Vec<u64>,
}

/// Answer of `POST /api/collections/{name}/search`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VectorResults {
    /// One list of hits per query vector.
    results: Vec<Vec<Hit>>,
}

/// Answer of `POST /api/collections/{name}/delete`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// Points that were there and are deleted.
    delete_count: usize,
}

/// Answer of `POST /api/collections/{name}/get`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Points {
    data: Vec<Point>,
}

fn default_limit() -> usize {
    10
}

/// Ids of points (at most `max_ids`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Ids)]
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
#[utoipa::path(
    post,
    path = "/api/collections",
    tag = TAG_VECTORS,
    operation_id = "createCollection",
    summary = "Create a collection (Milvus-style dimension, metric_type, index_type, params).",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created.", body = CollectionOut),
        (status = 400, response = E400),
        (status = 409, response = E409),
        (status = 413, response = E413),
        (status = 415, response = E415),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/collections",
    tag = TAG_VECTORS,
    operation_id = "listCollections",
    summary = "List collections.",
    responses((status = 200, description = "OK", body = CollectionList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<CollectionList>, AppError> {
    let infos = blocking(move || Ok(state.engine.collections().list()?)).await?;
    Ok(Json(CollectionList {
        collections: infos.into_iter().map(describe).collect(),
    }))
}

/// `GET /api/collections/{name}`.
#[utoipa::path(
    get,
    path = "/api/collections/{name}",
    tag = TAG_VECTORS,
    operation_id = "getCollection",
    summary = "Describe a collection.",
    params(CollectionName),
    responses(
        (status = 200, description = "OK", body = CollectionOut),
        (status = 404, response = E404),
    )
)]
pub async fn info(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<CollectionOut>, AppError> {
    let info = blocking(move || Ok(state.engine.collections().info(&name)?)).await?;
    Ok(Json(describe(info)))
}

/// `DELETE /api/collections/{name}`.
#[utoipa::path(
    delete,
    path = "/api/collections/{name}",
    tag = TAG_VECTORS,
    operation_id = "dropCollection",
    summary = "Drop a collection (not the image index's own).",
    params(CollectionName),
    responses(
        (status = 200, description = "OK", body = CollectionDropped),
        (status = 403, response = E403),
        (status = 404, response = E404),
    )
)]
pub async fn drop_collection(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> Result<Json<CollectionDropped>, AppError> {
    blocking(move || {
        state.engine.collections().drop(&name)?;
        Ok(Json(CollectionDropped {
            name,
            dropped: true,
        }))
    })
    .await
}

/// `POST /api/collections/{name}/insert`: adds or replaces points (upsert semantics), all or
/// nothing.
#[utoipa::path(
    post,
    path = "/api/collections/{name}/insert",
    tag = TAG_VECTORS,
    operation_id = "insertPoints",
    summary = "Insert or replace points, all or nothing.",
    params(CollectionName),
    request_body = InsertBody,
    responses(
        (status = 200, description = "OK", body = Inserted),
        (status = 400, response = E400),
        (status = 403, response = E403),
        (status = 404, response = E404),
        (status = 413, response = E413),
        (status = 415, response = E415),
    )
)]
pub async fn insert(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<InsertBody>,
) -> Result<Json<Inserted>, AppError> {
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
        Ok(Json(Inserted {
            insert_count: ids.len(),
            ids,
        }))
    })
    .await
}

/// `POST /api/collections/{name}/search`: nearest neighbours of each query vector.
#[utoipa::path(
    post,
    path = "/api/collections/{name}/search",
    tag = TAG_VECTORS,
    operation_id = "searchVectors",
    summary = "Nearest neighbours of each query vector.",
    params(CollectionName),
    request_body = SearchBody,
    responses(
        (status = 200, description = "OK", body = VectorResults),
        (status = 400, response = E400),
        (status = 404, response = E404),
        (status = 413, response = E413),
        (status = 415, response = E415),
    )
)]
pub async fn search(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<SearchBody>,
) -> Result<Json<VectorResults>, AppError> {
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
    Ok(Json(VectorResults { results }))
}

/// `POST /api/collections/{name}/delete`: removes points by id; unknown ids are not an error.
#[utoipa::path(
    post,
    path = "/api/collections/{name}/delete",
    tag = TAG_VECTORS,
    operation_id = "deletePoints",
    summary = "Delete points by id; unknown ids are skipped.",
    params(CollectionName),
    request_body = IdsBody,
    responses(
        (status = 200, description = "OK", body = Deleted),
        (status = 400, response = E400),
        (status = 403, response = E403),
        (status = 404, response = E404),
        (status = 415, response = E415),
    )
)]
pub async fn delete_points(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<IdsBody>,
) -> Result<Json<Deleted>, AppError> {
    let ids = unique_ids(body.ids, state.config.max_ids)?;
    blocking(move || {
        let delete_count = state.engine.collections().delete(&name, &ids)?;
        Ok(Json(Deleted { delete_count }))
    })
    .await
}

/// `POST /api/collections/{name}/get`: points by id, with vectors and metadata; unknown ids
/// are skipped.
#[utoipa::path(
    post,
    path = "/api/collections/{name}/get",
    tag = TAG_VECTORS,
    operation_id = "getPoints",
    summary = "Points by id with vectors and metadata; unknown ids are skipped.",
    params(CollectionName),
    request_body = IdsBody,
    responses(
        (status = 200, description = "OK", body = Points),
        (status = 400, response = E400),
        (status = 404, response = E404),
        (status = 415, response = E415),
    )
)]
pub async fn get_points(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
    JsonBody(body): JsonBody<IdsBody>,
) -> Result<Json<Points>, AppError> {
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
        let data = collections.get(&name, &ids)?;
        Ok(Json(Points { data }))
    })
    .await
}
