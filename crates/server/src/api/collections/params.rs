//! Translation between Milvus-style names (`metric_type`, `index_type`, `params`) and vecdb's
//! [`Metric`] and [`IndexSpec`].
//!
//! Parameters the chosen index does not have are refused with a clear error rather than
//! ignored, so a typo such as `efconstruction` never silently falls back to a default.

use crate::error::AppError;
use serde_json::{Map, Value};
use vecdb::{HnswParams, IvfParams, LshParams, RefineParams};
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
    "HNSW_RABITQ",
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
        IndexSpec::Hnsw(_) => "HNSW",
        IndexSpec::Ivf(_) => "IVF_FLAT",
        IndexSpec::Lsh(_) => "LSH",
        IndexSpec::FlatSq8(_) => "FLAT_SQ8",
        IndexSpec::HnswSq { .. } => "HNSW_SQ",
        IndexSpec::IvfSq8 { .. } => "IVF_SQ8",
        IndexSpec::FlatRabitq { .. } => "FLAT_RABITQ",
        IndexSpec::IvfRabitq { .. } => "IVF_RABITQ",
        IndexSpec::HnswRabitq(_) => "HNSW_RABITQ",
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

/// The parameter names of each group, as Milvus spells them.
const HNSW_KEYS: [&str; 3] = ["M", "efConstruction", "ef"];
const IVF_KEYS: [&str; 2] = ["nlist", "nprobe"];
const LSH_KEYS: [&str; 4] = ["tables", "bits", "probes", "bucket_width"];
const REFINE_KEYS: [&str; 2] = ["refine", "refine_k"];

/// HNSW's parameters, with vecdb's defaults for those left out.
fn hnsw_params(params: &Map<String, Value>) -> Result<HnswParams, AppError> {
    let d = HnswParams::default();
    Ok(HnswParams {
        m: usize_param(params, "M", d.m)?,
        ef_construction: usize_param(params, "efConstruction", d.ef_construction)?,
        ef: usize_param(params, "ef", d.ef)?,
    })
}

/// IVF's parameters, with vecdb's defaults for those left out.
fn ivf_params(params: &Map<String, Value>) -> Result<IvfParams, AppError> {
    let d = IvfParams::default();
    Ok(IvfParams {
        nlist: usize_param(params, "nlist", d.nlist)?,
        nprobe: usize_param(params, "nprobe", d.nprobe)?,
    })
}

/// LSH's parameters, with vecdb's defaults for those left out.
fn lsh_params(params: &Map<String, Value>) -> Result<LshParams, AppError> {
    let d = LshParams::default();
    Ok(LshParams {
        tables: usize_param(params, "tables", d.tables)?,
        bits: usize_param(params, "bits", d.bits)?,
        probes: usize_param(params, "probes", d.probes)?,
        bucket_width: f32_param(params, "bucket_width", d.bucket_width)?,
    })
}

/// The re-ranking of SQ8 codes, with vecdb's defaults for what is left out.
fn refine_params(params: &Map<String, Value>) -> Result<RefineParams, AppError> {
    let d = RefineParams::default();
    Ok(RefineParams {
        refine: bool_param(params, "refine", d.refine)?,
        refine_k: f32_param(params, "refine_k", d.refine_k)?,
    })
}

/// Builds the index spec from `index_type` and its `params`, with vecdb's defaults for
/// parameters left out.
pub fn index_from_params(
    index_type: &str,
    params: &Map<String, Value>,
) -> Result<IndexSpec, AppError> {
    let name = index_type.to_ascii_uppercase();
    let allowed: Vec<&str> = match name.as_str() {
        "FLAT" => vec![],
        "HNSW" => HNSW_KEYS.to_vec(),
        "IVF_FLAT" | "IVF" => IVF_KEYS.to_vec(),
        "LSH" => LSH_KEYS.to_vec(),
        "FLAT_SQ8" => REFINE_KEYS.to_vec(),
        "HNSW_SQ" => [&HNSW_KEYS[..], &REFINE_KEYS].concat(),
        "IVF_SQ8" => [&IVF_KEYS[..], &REFINE_KEYS].concat(),
        "FLAT_RABITQ" => vec!["refine"],
        "IVF_RABITQ" => [&IVF_KEYS[..], &["refine"]].concat(),
        "HNSW_RABITQ" => HNSW_KEYS.to_vec(),
        _ => {
            return Err(AppError::param(
                "index_type",
                format!("{index_type:?} is not one of {}", INDEX_NAMES.join(", ")),
            ))
        }
    };
    let shown = if name == "IVF" { "IVF_FLAT" } else { &name };
    only(params, shown, &allowed)?;
    let refine = || bool_param(params, "refine", RefineParams::default().refine);
    Ok(match name.as_str() {
        "FLAT" => IndexSpec::Flat,
        "HNSW" => IndexSpec::Hnsw(hnsw_params(params)?),
        "IVF_FLAT" | "IVF" => IndexSpec::Ivf(ivf_params(params)?),
        "LSH" => IndexSpec::Lsh(lsh_params(params)?),
        "FLAT_SQ8" => IndexSpec::FlatSq8(refine_params(params)?),
        "HNSW_SQ" => IndexSpec::HnswSq {
            hnsw: hnsw_params(params)?,
            rerank: refine_params(params)?,
        },
        "IVF_SQ8" => IndexSpec::IvfSq8 {
            ivf: ivf_params(params)?,
            rerank: refine_params(params)?,
        },
        "FLAT_RABITQ" => IndexSpec::FlatRabitq { refine: refine()? },
        "IVF_RABITQ" => IndexSpec::IvfRabitq {
            ivf: ivf_params(params)?,
            refine: refine()?,
        },
        "HNSW_RABITQ" => IndexSpec::HnswRabitq(hnsw_params(params)?),
        _ => unreachable!("every name accepted above is built here"),
    })
}

/// The spec's parameters under their Milvus-style names.
pub fn index_to_params(index: &IndexSpec) -> Map<String, Value> {
    let mut map = Map::new();
    let mut put = |key: &str, value: Value| {
        map.insert(key.to_string(), value);
    };
    let (hnsw, ivf, rerank, refine) = match *index {
        IndexSpec::Flat => (None, None, None, None),
        IndexSpec::Hnsw(h) => (Some(h), None, None, None),
        IndexSpec::Ivf(i) => (None, Some(i), None, None),
        IndexSpec::Lsh(l) => {
            put("tables", l.tables.into());
            put("bits", l.bits.into());
            put("probes", l.probes.into());
            put("bucket_width", l.bucket_width.into());
            (None, None, None, None)
        }
        IndexSpec::FlatSq8(r) => (None, None, Some(r), None),
        IndexSpec::HnswSq { hnsw, rerank } => (Some(hnsw), None, Some(rerank), None),
        IndexSpec::IvfSq8 { ivf, rerank } => (None, Some(ivf), Some(rerank), None),
        IndexSpec::FlatRabitq { refine } => (None, None, None, Some(refine)),
        IndexSpec::IvfRabitq { ivf, refine } => (None, Some(ivf), None, Some(refine)),
        IndexSpec::HnswRabitq(h) => (Some(h), None, None, None),
    };
    if let Some(h) = hnsw {
        put("M", h.m.into());
        put("efConstruction", h.ef_construction.into());
        put("ef", h.ef.into());
    }
    if let Some(i) = ivf {
        put("nlist", i.nlist.into());
        put("nprobe", i.nprobe.into());
    }
    if let Some(r) = rerank {
        put("refine", r.refine.into());
        put("refine_k", r.refine_k.into());
    }
    if let Some(refine) = refine {
        put("refine", refine.into());
    }
    map
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
            // Every parameter shown is one the kind takes back, with the same value.
            assert_eq!(
                index_from_params(name, &index_to_params(&index)).unwrap(),
                index,
                "{name}"
            );
        }
    }

    #[test]
    fn milvus_names_round_trip() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"M": 8, "efConstruction": 100}"#).unwrap();
        let spec = index_from_params("hnsw", &params).unwrap();
        assert!(matches!(
            spec,
            IndexSpec::Hnsw(HnswParams {
                m: 8,
                ef_construction: 100,
                ..
            })
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
            IndexSpec::HnswSq { hnsw, rerank }
                if hnsw.m == 8 && rerank.refine && rerank.refine_k == 2.5
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
            IndexSpec::FlatSq8(RefineParams { refine: false, .. })
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
        // HNSW on RaBitQ bounds keeps exact distances: it takes neither refine nor refine_k.
        let refine: Map<String, Value> = serde_json::from_str(r#"{"refine": true}"#).unwrap();
        assert!(index_from_params("HNSW_RABITQ", &k).is_err());
        assert!(index_from_params("HNSW_RABITQ", &refine).is_err());
        let m: Map<String, Value> = serde_json::from_str(r#"{"M": 24}"#).unwrap();
        let hnsw = index_from_params("hnsw_rabitq", &m).unwrap();
        assert!(matches!(hnsw, IndexSpec::HnswRabitq(h) if h.m == 24));
        assert_eq!(index_name(&hnsw), "HNSW_RABITQ");
        let flat = index_from_params("FLAT_RABITQ", &Map::new()).unwrap();
        assert_eq!(
            index_from_params("FLAT_RABITQ", &index_to_params(&flat)).unwrap(),
            flat
        );
    }
}
