//! Translation between Milvus-style names (`metric_type`, `index_type`, `params`) and vecdb's
//! [`Metric`] and [`IndexSpec`].
//!
//! Parameters the chosen index does not have are refused with a clear error rather than
//! ignored, so a typo such as `efconstruction` never silently falls back to a default.

use crate::error::AppError;
use serde_json::{Map, Value};
use vecdb::{IndexSpec, Metric};

/// The Milvus names of the metrics, as the OpenAPI document lists them.
pub const METRIC_NAMES: &[&str] = &["L2", "IP", "COSINE"];

/// The Milvus names of the index kinds, as the OpenAPI document lists them.
pub const INDEX_NAMES: &[&str] = &[
    "FLAT",
    "HNSW",
    "IVF_FLAT",
    "LSH",
    "FLAT_SQ8",
    "HNSW_SQ",
    "IVF_SQ8",
    "FLAT_RABITQ",
    "IVF_RABITQ",
];

/// `"L2"`, `"IP"` or `"COSINE"` (any case) to a metric.
pub fn metric_from_name(name: &str) -> Result<Metric, AppError> {
    match name.to_ascii_uppercase().as_str() {
        "L2" => Ok(Metric::L2),
        "IP" => Ok(Metric::Ip),
        "COSINE" => Ok(Metric::Cosine),
        _ => Err(AppError::param(
            "metric_type",
            format!("{name:?} is not one of L2, IP, COSINE"),
        )),
    }
}

/// The Milvus name of a metric.
pub fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::L2 => "L2",
        Metric::Ip => "IP",
        Metric::Cosine => "COSINE",
    }
}

/// The Milvus name of an index kind.
pub fn index_name(index: &IndexSpec) -> &'static str {
    match index {
        IndexSpec::Flat => "FLAT",
        IndexSpec::Hnsw { .. } => "HNSW",
        IndexSpec::Ivf { .. } => "IVF_FLAT",
        IndexSpec::Lsh { .. } => "LSH",
        IndexSpec::FlatSq8 { .. } => "FLAT_SQ8",
        IndexSpec::HnswSq { .. } => "HNSW_SQ",
        IndexSpec::IvfSq8 { .. } => "IVF_SQ8",
        IndexSpec::FlatRabitq { .. } => "FLAT_RABITQ",
        IndexSpec::IvfRabitq { .. } => "IVF_RABITQ",
    }
}

fn bool_param(params: &Map<String, Value>, key: &str, default: bool) -> Result<bool, AppError> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| AppError::param(key, format!("must be true or false, got {v}"))),
    }
}

/// Reads `refine` and `refine_k` (Milvus' names) of a quantised index.
fn refine_params(params: &Map<String, Value>) -> Result<(bool, f32), AppError> {
    Ok((
        bool_param(params, "refine", true)?,
        f32_param(params, "refine_k", vecdb::index::quant::DEFAULT_REFINE_K)?,
    ))
}

/// Reads an optional non-negative integer parameter.
fn usize_param(params: &Map<String, Value>, key: &str, default: usize) -> Result<usize, AppError> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                AppError::param(key, format!("must be a non-negative integer, got {v}"))
            }),
    }
}

fn f32_param(params: &Map<String, Value>, key: &str, default: f32) -> Result<f32, AppError> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .map(|x| x as f32)
            .filter(|x| x.is_finite())
            .ok_or_else(|| AppError::param(key, format!("must be a number, got {v}"))),
    }
}

/// Refuses any key of `params` not in `allowed`.
fn only(params: &Map<String, Value>, index_type: &str, allowed: &[&str]) -> Result<(), AppError> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(AppError::param(
            "params",
            format!(
                "{key:?} is not a parameter of {index_type} (allowed: {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Builds the index spec from `index_type` and its `params`, with vecdb's defaults for
/// parameters left out.
pub fn index_from_params(
    index_type: &str,
    params: &Map<String, Value>,
) -> Result<IndexSpec, AppError> {
    match index_type.to_ascii_uppercase().as_str() {
        "FLAT" => {
            only(params, "FLAT", &[])?;
            Ok(IndexSpec::Flat)
        }
        "HNSW" => {
            only(params, "HNSW", &["M", "efConstruction", "ef"])?;
            let IndexSpec::Hnsw {
                m,
                ef_construction,
                ef,
            } = IndexSpec::default_hnsw()
            else {
                unreachable!("default_hnsw returns an HNSW spec")
            };
            Ok(IndexSpec::Hnsw {
                m: usize_param(params, "M", m)?,
                ef_construction: usize_param(params, "efConstruction", ef_construction)?,
                ef: usize_param(params, "ef", ef)?,
            })
        }
        "IVF_FLAT" | "IVF" => {
            only(params, "IVF_FLAT", &["nlist", "nprobe"])?;
            let IndexSpec::Ivf { nlist, nprobe } = IndexSpec::default_ivf() else {
                unreachable!("default_ivf returns an IVF spec")
            };
            Ok(IndexSpec::Ivf {
                nlist: usize_param(params, "nlist", nlist)?,
                nprobe: usize_param(params, "nprobe", nprobe)?,
            })
        }
        "FLAT_SQ8" => {
            only(params, "FLAT_SQ8", &["refine", "refine_k"])?;
            let (refine, refine_k) = refine_params(params)?;
            Ok(IndexSpec::FlatSq8 { refine, refine_k })
        }
        "HNSW_SQ" => {
            only(
                params,
                "HNSW_SQ",
                &["M", "efConstruction", "ef", "refine", "refine_k"],
            )?;
            let (m, ef_construction, ef) = vecdb::index::HNSW_DEFAULT;
            let (refine, refine_k) = refine_params(params)?;
            Ok(IndexSpec::HnswSq {
                m: usize_param(params, "M", m)?,
                ef_construction: usize_param(params, "efConstruction", ef_construction)?,
                ef: usize_param(params, "ef", ef)?,
                refine,
                refine_k,
            })
        }
        "IVF_SQ8" => {
            only(
                params,
                "IVF_SQ8",
                &["nlist", "nprobe", "refine", "refine_k"],
            )?;
            let (nlist, nprobe) = vecdb::index::IVF_DEFAULT;
            let (refine, refine_k) = refine_params(params)?;
            Ok(IndexSpec::IvfSq8 {
                nlist: usize_param(params, "nlist", nlist)?,
                nprobe: usize_param(params, "nprobe", nprobe)?,
                refine,
                refine_k,
            })
        }
        "FLAT_RABITQ" => {
            only(params, "FLAT_RABITQ", &["refine"])?;
            Ok(IndexSpec::FlatRabitq {
                refine: bool_param(params, "refine", true)?,
            })
        }
        "IVF_RABITQ" => {
            only(params, "IVF_RABITQ", &["nlist", "nprobe", "refine"])?;
            let (nlist, nprobe) = vecdb::index::IVF_DEFAULT;
            Ok(IndexSpec::IvfRabitq {
                nlist: usize_param(params, "nlist", nlist)?,
                nprobe: usize_param(params, "nprobe", nprobe)?,
                refine: bool_param(params, "refine", true)?,
            })
        }
        "LSH" => {
            only(params, "LSH", &["tables", "bits", "probes", "bucket_width"])?;
            let IndexSpec::Lsh {
                tables,
                bits,
                probes,
                bucket_width,
            } = IndexSpec::default_lsh()
            else {
                unreachable!("default_lsh returns an LSH spec")
            };
            Ok(IndexSpec::Lsh {
                tables: usize_param(params, "tables", tables)?,
                bits: usize_param(params, "bits", bits)?,
                probes: usize_param(params, "probes", probes)?,
                bucket_width: f32_param(params, "bucket_width", bucket_width)?,
            })
        }
        _ => Err(AppError::param(
            "index_type",
            format!("{index_type:?} is not one of {}", INDEX_NAMES.join(", ")),
        )),
    }
}

/// The spec's parameters under their Milvus-style names.
pub fn index_to_params(index: &IndexSpec) -> Map<String, Value> {
    let value = match index {
        IndexSpec::Flat => serde_json::json!({}),
        IndexSpec::Hnsw {
            m,
            ef_construction,
            ef,
        } => {
            serde_json::json!({ "M": m, "efConstruction": ef_construction, "ef": ef })
        }
        IndexSpec::Ivf { nlist, nprobe } => serde_json::json!({ "nlist": nlist, "nprobe": nprobe }),
        IndexSpec::Lsh {
            tables,
            bits,
            probes,
            bucket_width,
        } => serde_json::json!({
            "tables": tables, "bits": bits, "probes": probes, "bucket_width": bucket_width
        }),
        IndexSpec::FlatSq8 { refine, refine_k } => {
            serde_json::json!({ "refine": refine, "refine_k": refine_k })
        }
        IndexSpec::HnswSq {
            m,
            ef_construction,
            ef,
            refine,
            refine_k,
        } => serde_json::json!({
            "M": m, "efConstruction": ef_construction, "ef": ef,
            "refine": refine, "refine_k": refine_k
        }),
        IndexSpec::IvfSq8 {
            nlist,
            nprobe,
            refine,
            refine_k,
        } => serde_json::json!({
            "nlist": nlist, "nprobe": nprobe, "refine": refine, "refine_k": refine_k
        }),
        IndexSpec::FlatRabitq { refine } => serde_json::json!({ "refine": refine }),
        IndexSpec::IvfRabitq {
            nlist,
            nprobe,
            refine,
        } => serde_json::json!({ "nlist": nlist, "nprobe": nprobe, "refine": refine }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_names_are_the_ones_parsed_and_shown() {
        for &name in METRIC_NAMES {
            assert_eq!(metric_name(metric_from_name(name).unwrap()), name);
        }
        for &name in INDEX_NAMES {
            let index = index_from_params(name, &Map::new()).unwrap();
            assert_eq!(index_name(&index), name);
        }
    }

    #[test]
    fn milvus_names_round_trip() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"M": 8, "efConstruction": 100}"#).unwrap();
        let spec = index_from_params("hnsw", &params).unwrap();
        assert!(matches!(
            spec,
            IndexSpec::Hnsw {
                m: 8,
                ef_construction: 100,
                ..
            }
        ));
        assert_eq!(index_to_params(&spec)["M"], 8);
        assert_eq!(index_name(&spec), "HNSW");
        assert_eq!(metric_from_name("ip").unwrap(), Metric::Ip);
        assert!(metric_from_name("hamming").is_err());
    }

    #[test]
    fn unknown_or_ill_typed_parameters_are_refused() {
        let typo: Map<String, Value> = serde_json::from_str(r#"{"efconstruction": 100}"#).unwrap();
        assert!(index_from_params("HNSW", &typo).is_err());
        let negative: Map<String, Value> = serde_json::from_str(r#"{"nlist": -1}"#).unwrap();
        assert!(index_from_params("IVF_FLAT", &negative).is_err());
        let any: Map<String, Value> = serde_json::from_str(r#"{"nlist": 4}"#).unwrap();
        assert!(index_from_params("FLAT", &any).is_err());
        assert!(index_from_params("DISKANN", &Map::new()).is_err());
    }

    #[test]
    fn quantised_kinds_use_milvus_names() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"M": 8, "refine_k": 2.5}"#).unwrap();
        let spec = index_from_params("hnsw_sq", &params).unwrap();
        assert!(matches!(
            spec,
            IndexSpec::HnswSq {
                m: 8,
                refine: true,
                refine_k,
                ..
            } if refine_k == 2.5
        ));
        assert_eq!(index_name(&spec), "HNSW_SQ");
        assert_eq!(
            index_from_params("HNSW_SQ", &index_to_params(&spec)).unwrap(),
            spec
        );
        let ivf = index_from_params("IVF_SQ8", &Map::new()).unwrap();
        assert_eq!(ivf, IndexSpec::default_ivf_sq8());
        assert_eq!(index_name(&ivf), "IVF_SQ8");
        let flat: Map<String, Value> = serde_json::from_str(r#"{"refine": false}"#).unwrap();
        assert!(matches!(
            index_from_params("FLAT_SQ8", &flat).unwrap(),
            IndexSpec::FlatSq8 { refine: false, .. }
        ));
        for bad in [
            r#"{"refine": 1}"#,
            r#"{"refine_k": "x"}"#,
            r#"{"sq_type": "SQ6"}"#,
        ] {
            let p: Map<String, Value> = serde_json::from_str(bad).unwrap();
            assert!(index_from_params("IVF_SQ8", &p).is_err(), "{bad}");
        }
        // RaBitQ's scans re-rank by the error bound: they take no refine_k.
        let ivf = index_from_params("ivf_rabitq", &Map::new()).unwrap();
        assert_eq!(ivf, IndexSpec::default_ivf_rabitq());
        assert_eq!(index_name(&ivf), "IVF_RABITQ");
        let k: Map<String, Value> = serde_json::from_str(r#"{"refine_k": 2.0}"#).unwrap();
        assert!(index_from_params("IVF_RABITQ", &k).is_err());
        assert!(index_from_params("FLAT_RABITQ", &k).is_err());
        let flat = index_from_params("FLAT_RABITQ", &Map::new()).unwrap();
        assert_eq!(
            index_from_params("FLAT_RABITQ", &index_to_params(&flat)).unwrap(),
            flat
        );
    }
}
