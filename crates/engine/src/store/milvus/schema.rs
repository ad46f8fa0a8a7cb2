//! How imgsearch collections map onto Milvus: schema, stored config, index and search
//! parameters, and the conversion of points to columns and back. Nothing here does IO.
//!
//! | imgsearch | Milvus |
//! |---|---|
//! | point id (u64, at most `i64::MAX - 1`, see [`MAX_ID`]) | field `id`, INT64 primary key, `auto_id` off |
//! | vector | field `vector`, FLOAT_VECTOR(dim) |
//! | metadata (JSON object) | field `metadata`, JSON |
//! | (derived) instants of date strings | field `instants`, JSON (see `expr.rs`) |
//! | CollectionConfig | collection property `imgsearch.config` (JSON, versioned) |

use std::collections::HashMap;
use vecdb::{HnswParams, IvfParams};

use milvus::v2::prelude as sdk;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vecdb::{CollectionConfig, IndexSpec, Metric, Point, SearchRequest, VecDbError};

use super::expr::{instants_of, INSTANTS, METADATA};
use crate::store::StoreError;

/// The largest point id the Milvus store accepts. Milvus 2.3 accepts a row with id `i64::MAX`
/// and then never returns it, from queries, gets or counts alike (the value is its internal
/// sentinel), so the store refuses it rather than lose the point silently.
pub const MAX_ID: u64 = i64::MAX as u64 - 1;

pub(crate) const ID: &str = "id";
pub(crate) const VECTOR: &str = "vector";
/// The collection property that holds the imgsearch config.
pub(crate) const CONFIG_PROPERTY: &str = "imgsearch.config";
/// Version of the stored config document; bumped when its shape changes.
const CONFIG_FORMAT: u32 = 1;
/// Milvus refuses JSON values above 64 KiB.
const MAX_METADATA_BYTES: usize = 65_536;
/// Milvus limits: `nlist` of IVF indexes, `ef` of HNSW searches, hits per search.
const MAX_NLIST: usize = 65_536;
const MAX_SEARCH_EF: usize = 32_768;
pub(crate) const MAX_TOPK: usize = 16_384;

/// The config document stored in [`CONFIG_PROPERTY`].
#[derive(Serialize, Deserialize)]
struct StoredConfig {
    format: u32,
    config: CollectionConfig,
}

pub(crate) fn encode_config(config: &CollectionConfig) -> String {
    let doc = StoredConfig {
        format: CONFIG_FORMAT,
        config: config.clone(),
    };
    serde_json::to_string(&doc).expect("a config always serialises")
}

/// The config of a collection from its properties; `None` when it was not created by imgsearch.
pub(crate) fn decode_config(
    name: &str,
    properties: &HashMap<String, String>,
) -> Result<Option<CollectionConfig>, StoreError> {
    let Some(raw) = properties.get(CONFIG_PROPERTY) else {
        return Ok(None);
    };
    let doc: StoredConfig = serde_json::from_str(raw).map_err(|e| StoreError::Rejected {
        reason: format!("collection {name} has an unreadable {CONFIG_PROPERTY} property: {e}"),
    })?;
    if doc.format != CONFIG_FORMAT {
        return Err(StoreError::Rejected {
            reason: format!(
                "collection {name} was written by a newer imgsearch (config format {}, this \
                 build reads {CONFIG_FORMAT})",
                doc.format
            ),
        });
    }
    Ok(Some(doc.config))
}

/// vecdb's rules plus Milvus' own: a letter or `_` first, then letters, digits and `_`.
pub(crate) fn validate_config(config: &CollectionConfig) -> Result<(), StoreError> {
    config.validate()?;
    let name = &config.name;
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || name.contains('-') {
        return Err(VecDbError::InvalidName {
            name: name.clone(),
            reason: "Milvus collection names must start with a letter or '_' and contain only \
                     letters, digits and '_'"
                .into(),
        }
        .into());
    }
    index_param(config).map(|_| ())
}

pub(crate) fn schema(config: &CollectionConfig) -> sdk::CollectionSchema {
    sdk::CollectionSchema::new()
        .description("imgsearch collection")
        .enable_dynamic_field(false)
        .add_field(
            sdk::FieldSchema::new()
                .name(ID)
                .data_type(sdk::DataType::Int64)
                .primary_key(true)
                .auto_id(false),
        )
        .add_field(
            sdk::FieldSchema::new()
                .name(VECTOR)
                .data_type(sdk::DataType::FloatVector)
                .dimension(config.dim as u32),
        )
        .add_field(
            sdk::FieldSchema::new()
                .name(METADATA)
                .data_type(sdk::DataType::Json),
        )
        .add_field(
            sdk::FieldSchema::new()
                .name(INSTANTS)
                .data_type(sdk::DataType::Json),
        )
}

fn metric_type(metric: Metric) -> sdk::MetricType {
    match metric {
        Metric::L2 => sdk::MetricType::L2,
        Metric::Ip => sdk::MetricType::Ip,
        Metric::Cosine => sdk::MetricType::Cosine,
    }
}

/// The vector index for a config; LSH, HNSW_SQ, FLAT_SQ8, the RaBitQ kinds and oversized IVF
/// are refused.
/// IVF_SQ8 maps to Milvus' IVF_SQ8, which searches on its codes without re-ranking: the
/// spec's `refine` and `refine_k` have no effect there.
pub(crate) fn index_param(config: &CollectionConfig) -> Result<sdk::IndexParam, StoreError> {
    let (kind, params): (sdk::IndexType, Vec<(&str, usize)>) = match config.index {
        IndexSpec::Flat => (sdk::IndexType::Flat, vec![]),
        IndexSpec::Ivf(IvfParams { nlist, .. })
        | IndexSpec::IvfSq8 {
            ivf: IvfParams { nlist, .. },
            ..
        } => {
            if nlist > MAX_NLIST {
                return Err(StoreError::Rejected {
                    reason: format!("Milvus accepts IVF nlist up to {MAX_NLIST}, got {nlist}"),
                });
            }
            let kind = match config.index {
                IndexSpec::IvfSq8 { .. } => sdk::IndexType::IvfSq8,
                _ => sdk::IndexType::IvfFlat,
            };
            (kind, vec![("nlist", nlist)])
        }
        IndexSpec::Hnsw(HnswParams {
            m, ef_construction, ..
        }) => (
            sdk::IndexType::Hnsw,
            vec![("M", m), ("efConstruction", ef_construction)],
        ),
        IndexSpec::Lsh(_) => {
            return Err(StoreError::Rejected {
                reason: "Milvus has no LSH index; use flat, ivf or hnsw with the Milvus store"
                    .into(),
            })
        }
        IndexSpec::HnswSq { .. } => {
            return Err(StoreError::Rejected {
                reason: "Milvus 2.3 has no HNSW_SQ index (it came with Milvus 2.6); use HNSW or \
                         IVF_SQ8 with the Milvus store"
                    .into(),
            })
        }
        IndexSpec::FlatSq8(_) => {
            return Err(StoreError::Rejected {
                reason: "Milvus has no FLAT_SQ8 index; use FLAT or IVF_SQ8 with the Milvus store"
                    .into(),
            })
        }
        IndexSpec::FlatRabitq { .. } | IndexSpec::IvfRabitq { .. } | IndexSpec::HnswRabitq(_) => {
            return Err(StoreError::Rejected {
                reason: "Milvus 2.3 has no RaBitQ index (IVF_RABITQ came with Milvus 2.6); use \
                         IVF_SQ8 with the Milvus store"
                    .into(),
            })
        }
    };
    Ok(sdk::IndexParam::new()
        .field_name(VECTOR)
        .index_name("vector_index")
        .index_type(kind)
        .metric_type(metric_type(config.metric))
        .extra_params(
            params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
}

/// Checks a search request against the config and returns the Milvus search parameters.
/// The checks mirror vecdb's, so both stores refuse the same requests.
pub(crate) fn search_params(
    config: &CollectionConfig,
    query: &[f32],
    req: &SearchRequest,
) -> Result<HashMap<String, String>, StoreError> {
    vecdb::search::check_query(config, query)?;
    let param = |name: &str, reason: String| -> StoreError {
        VecDbError::InvalidParameter {
            name: name.into(),
            reason,
        }
        .into()
    };
    vecdb::search::check_k("k", req.k, usize::MAX)?;
    vecdb::search::check_threshold(req.threshold)?;
    if req.k > MAX_TOPK {
        return Err(StoreError::Rejected {
            reason: format!(
                "Milvus returns at most {MAX_TOPK} hits per search, asked {}",
                req.k
            ),
        });
    }
    if req.refine_k.is_some() && config.index.quantized_parts().is_some() {
        return Err(StoreError::Rejected {
            reason: "Milvus' IVF_SQ8 does not re-rank with the original vectors, so refine_k \
                     has no meaning on the Milvus store"
                .into(),
        });
    }
    let mut out = HashMap::new();
    match config.index {
        IndexSpec::Hnsw(HnswParams { ef, .. }) => {
            let ef = match req.ef {
                Some(e) if e < req.k => {
                    return Err(param(
                        "ef",
                        format!("must be at least k ({}), got {e}", req.k),
                    ))
                }
                Some(e) => e,
                None => ef.max(req.k),
            };
            if ef > MAX_SEARCH_EF {
                return Err(param(
                    "ef",
                    format!("Milvus accepts ef up to {MAX_SEARCH_EF}, got {ef}"),
                ));
            }
            out.insert("ef".into(), ef.to_string());
        }
        IndexSpec::Ivf(IvfParams { nlist, nprobe })
        | IndexSpec::IvfSq8 {
            ivf: IvfParams { nlist, nprobe },
            ..
        } => {
            let nprobe = req.nprobe.unwrap_or(nprobe);
            if nprobe == 0 || nprobe > nlist {
                return Err(param(
                    "nprobe",
                    format!("must be between 1 and {nlist} (it cannot exceed nlist), got {nprobe}"),
                ));
            }
            out.insert("nprobe".into(), nprobe.to_string());
        }
        // HNSW_SQ, FLAT_SQ8 and the RaBitQ kinds are refused when created.
        IndexSpec::Flat
        | IndexSpec::Lsh(_)
        | IndexSpec::HnswSq { .. }
        | IndexSpec::FlatSq8(_)
        | IndexSpec::FlatRabitq { .. }
        | IndexSpec::IvfRabitq { .. }
        | IndexSpec::HnswRabitq(_) => {}
    }
    Ok(out)
}

/// Converts Milvus' score to vecdb's: Milvus reports squared L2 distances.
pub(crate) fn to_score(metric: Metric, raw: f32) -> f32 {
    match metric {
        Metric::L2 => raw.max(0.0).sqrt(),
        Metric::Ip | Metric::Cosine => raw,
    }
}

/// Whether a score passes the request's threshold under vecdb's convention.
pub(crate) fn within_threshold(metric: Metric, score: f32, threshold: Option<f32>) -> bool {
    match (threshold, metric) {
        (None, _) => true,
        (Some(t), Metric::L2) => score <= t,
        (Some(t), _) => score >= t,
    }
}

/// Validates a batch by vecdb's rule ([`vecdb::check_points`]) plus Milvus' limits (signed ids,
/// 64 KiB JSON), before anything is sent.
pub(crate) fn check_points(config: &CollectionConfig, points: &[Point]) -> Result<(), StoreError> {
    vecdb::check_points(config, points)?;
    for p in points {
        if p.id > MAX_ID {
            return Err(VecDbError::InvalidParameter {
                name: "id".into(),
                reason: format!(
                    "Milvus keeps ids as signed 64-bit integers below i64::MAX; {} is too large",
                    p.id
                ),
            }
            .into());
        }
        let size = serde_json::to_vec(&p.metadata).map_or(0, |v| v.len());
        if size > MAX_METADATA_BYTES {
            return Err(VecDbError::InvalidMetadata {
                id: p.id,
                reason: format!("{size} bytes of JSON; Milvus keeps at most {MAX_METADATA_BYTES}"),
            }
            .into());
        }
    }
    Ok(())
}

/// Approximate bytes one point takes on the wire, used to size batches.
pub(crate) fn wire_size(p: &Point) -> usize {
    64 + p.vector.len() * 4 + serde_json::to_vec(&p.metadata).map_or(0, |v| v.len()) * 2
}

/// Column data for an upsert of already checked points.
pub(crate) fn columns(points: &[Point]) -> Vec<sdk::FieldData> {
    let metadata: Vec<Value> = points
        .iter()
        .map(|p| match &p.metadata {
            Value::Null => Value::Object(Default::default()),
            m => m.clone(),
        })
        .collect();
    let instants = metadata.iter().map(instants_of).collect();
    vec![
        sdk::FieldData::Int64 {
            name: ID.into(),
            values: points.iter().map(|p| p.id as i64).collect(),
        },
        sdk::FieldData::FloatVector {
            name: VECTOR.into(),
            values: points.iter().map(|p| p.vector.clone()).collect(),
        },
        sdk::FieldData::Json {
            name: METADATA.into(),
            values: metadata,
        },
        sdk::FieldData::Json {
            name: INSTANTS.into(),
            values: instants,
        },
    ]
}

/// Rebuilds points from query result columns (`id`, and `vector` / `metadata` when present).
pub(crate) fn points_from_columns(fields: &[sdk::FieldData]) -> Result<Vec<Point>, StoreError> {
    let mut ids: Option<&Vec<i64>> = None;
    let mut vectors: Option<&Vec<Vec<f32>>> = None;
    let mut metadata: Option<&Vec<Value>> = None;
    for f in fields {
        match f {
            sdk::FieldData::Int64 { name, values } if name == ID => ids = Some(values),
            sdk::FieldData::FloatVector { name, values } if name == VECTOR => {
                vectors = Some(values)
            }
            sdk::FieldData::Json { name, values } if name == METADATA => metadata = Some(values),
            _ => {}
        }
    }
    let ids = ids.ok_or_else(|| StoreError::Rejected {
        reason: "Milvus returned rows without the id field".into(),
    })?;
    let column_ok = |len: Option<usize>| len.is_none_or(|l| l == ids.len());
    if !column_ok(vectors.map(Vec::len)) || !column_ok(metadata.map(Vec::len)) {
        return Err(StoreError::Rejected {
            reason: "Milvus returned columns of different lengths".into(),
        });
    }
    Ok(ids
        .iter()
        .enumerate()
        .map(|(i, &id)| Point {
            id: id as u64,
            vector: vectors.map(|v| v[i].clone()).unwrap_or_default(),
            metadata: metadata
                .map(|m| m[i].clone())
                .unwrap_or_else(|| Value::Object(Default::default())),
        })
        .collect())
}

/// `id in [1, 2, 3]`; the SDK's filter templates are refused by Milvus 2.3, literals are not.
pub(crate) fn id_list_filter(ids: &[i64]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("{ID} in [{}]", list.join(", "))
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
