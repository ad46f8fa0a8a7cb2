//! Translation between Milvus-style names (`metric_type`, `index_type`, `params`) and vecdb's
//! [`Metric`] and [`IndexSpec`].
//!
//! Parameters the chosen index does not have are refused with a clear error rather than
//! ignored, so a typo such as `efconstruction` never silently falls back to a default.

use crate::error::AppError;
use serde_json::{Map, Value};
use vecdb::{IndexSpec, Metric};

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
    }
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
            format!("{index_type:?} is not one of FLAT, HNSW, IVF_FLAT, LSH"),
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
}
