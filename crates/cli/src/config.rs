//! One validated configuration, layered: the file (`imgsearch.toml` in the data directory, or
//! `--config FILE`), then the environment (`IMGSEARCH_*`), then command-line flags. Each layer
//! overrides the one before key by key. Invalid values are rejected with a message naming the
//! key, its source and what to do; nothing is silently capped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vecdb::{IndexSpec, Metric};

/// A configuration problem (exit code 3).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Every configuration key; the same names in the file, as `IMGSEARCH_<KEY>` in the environment
/// (upper case) and as `--<key>` flags (dashes for underscores) where a flag exists.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub model: Option<PathBuf>,
    pub collection: Option<String>,
    pub runtime: Option<String>,
    pub threads: Option<usize>,
    pub ort_library: Option<PathBuf>,
    pub metric: Option<String>,
    pub index: Option<String>,
    pub hnsw_m: Option<usize>,
    pub hnsw_ef_construction: Option<usize>,
    pub hnsw_ef: Option<usize>,
    pub ivf_nlist: Option<usize>,
    pub ivf_nprobe: Option<usize>,
    pub max_pixels: Option<u64>,
    pub max_file_bytes: Option<u64>,
    pub bind: Option<String>,
}

/// The keys, for the help text and the README.
pub const KEYS: &[(&str, &str)] = &[
    (
        "data_dir",
        "folder for the database, catalog, thumbnails and uploads [the platform data dir]",
    ),
    (
        "store",
        "embedded:/path, a folder, or milvus://host:port[/db] [embedded in data_dir/db]",
    ),
    (
        "model",
        "model manifest.toml, or the folder holding it [the model built into the binary]",
    ),
    ("collection", "collection name [images]"),
    ("runtime", "tract | ort [tract]"),
    (
        "threads",
        "inference threads, 1 or more [the runtime's default]",
    ),
    ("ort_library", "path of libonnxruntime.so for runtime = ort"),
    ("metric", "cosine | ip | l2, for a new collection [cosine]"),
    (
        "index",
        "hnsw | flat | ivf | lsh, for a new collection [hnsw]",
    ),
    ("hnsw_m", "HNSW links per node [16]"),
    ("hnsw_ef_construction", "HNSW build beam [200]"),
    ("hnsw_ef", "HNSW search beam [64]"),
    ("ivf_nlist", "IVF lists [256]"),
    ("ivf_nprobe", "IVF lists searched [16]"),
    ("max_pixels", "largest image decoded, in pixels [100000000]"),
    ("max_file_bytes", "largest file read, in bytes [67108864]"),
    ("bind", "address `serve` listens on [127.0.0.1:8080]"),
];

impl RawConfig {
    /// Keys set in `other` override this layer's.
    pub fn merge(mut self, other: RawConfig) -> RawConfig {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            data_dir,
            store,
            model,
            collection,
            runtime,
            threads,
            ort_library,
            metric,
            index,
            hnsw_m,
            hnsw_ef_construction,
            hnsw_ef,
            ivf_nlist,
            ivf_nprobe,
            max_pixels,
            max_file_bytes,
            bind
        );
        self
    }

    /// Reads the file layer; a missing default file is fine, a missing `--config` file is not.
    pub fn from_file(path: &Path, required: bool) -> Result<RawConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(RawConfig::default())
            }
            Err(e) => {
                return Err(ConfigError(format!(
                    "cannot read config file {}: {e}",
                    path.display()
                )))
            }
        };
        toml::from_str(&text).map_err(|e| {
            ConfigError(format!(
                "config file {}: {e}\nvalid keys: {}",
                path.display(),
                KEYS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Reads the environment layer from `IMGSEARCH_<KEY>` variables.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<RawConfig, ConfigError> {
        let var =
            |key: &str| get(&format!("IMGSEARCH_{}", key.to_uppercase())).filter(|v| !v.is_empty());
        let num = |key: &str| -> Result<Option<u64>, ConfigError> {
            var(key)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        ConfigError(format!(
                            "IMGSEARCH_{} = {v:?} is not a whole number; set it to one or unset it",
                            key.to_uppercase()
                        ))
                    })
                })
                .transpose()
        };
        let size = |key: &str| num(key).map(|o| o.map(|v| v as usize));
        Ok(RawConfig {
            data_dir: var("data_dir").map(PathBuf::from),
            store: var("store"),
            model: var("model").map(PathBuf::from),
            collection: var("collection"),
            runtime: var("runtime"),
            threads: size("threads")?,
            ort_library: var("ort_library").map(PathBuf::from),
            metric: var("metric"),
            index: var("index"),
            hnsw_m: size("hnsw_m")?,
            hnsw_ef_construction: size("hnsw_ef_construction")?,
            hnsw_ef: size("hnsw_ef")?,
            ivf_nlist: size("ivf_nlist")?,
            ivf_nprobe: size("ivf_nprobe")?,
            max_pixels: num("max_pixels")?,
            max_file_bytes: num("max_file_bytes")?,
            bind: var("bind"),
        })
    }

    /// Validates every key and builds the engine configuration and the bind address.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        // The index keys are read by reference before the fields below are moved out.
        let mut engine = engine::EngineConfig {
            index: index_spec(&self)?,
            ..engine::EngineConfig::default()
        };
        if let Some(d) = self.data_dir {
            engine.data_dir = d;
        }
        if let Some(s) = self.store {
            if s.trim().is_empty() {
                return Err(ConfigError(
                    "store is empty; give a folder, embedded:/path or milvus://host:port".into(),
                ));
            }
            engine.store_url = Some(s);
        }
        engine.model = match self.model {
            Some(m) => embed::ModelSource::Manifest(manifest_file(m)),
            None => default_model(),
        };
        if let Some(c) = self.collection {
            check_collection(&c)?;
            engine.collection = c;
        }
        engine.runtime = runtime(self.runtime.as_deref(), self.threads, self.ort_library)?;
        engine.metric = match self.metric.as_deref().map(str::to_lowercase).as_deref() {
            None | Some("cosine") => Metric::Cosine,
            Some("ip") => Metric::Ip,
            Some("l2") => Metric::L2,
            Some(other) => {
                return Err(ConfigError(format!(
                    "metric {other:?} is not one of cosine, ip, l2"
                )))
            }
        };
        if let Some(p) = self.max_pixels {
            positive("max_pixels", p)?;
            engine.limits.max_pixels = p;
        }
        if let Some(b) = self.max_file_bytes {
            positive("max_file_bytes", b)?;
            engine.limits.max_file_bytes = b;
        }
        let bind_text = self.bind.unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            ConfigError(format!(
                "bind {bind_text:?} is not an address like 127.0.0.1:8080"
            ))
        })?;
        Ok(Settings {
            engine,
            bind,
            places: Places::default(),
        })
    }
}

/// The validated result.
#[derive(Clone, Debug)]
pub struct Settings {
    pub engine: engine::EngineConfig,
    pub bind: SocketAddr,
    /// Where the data directory and configuration came from, for `imgsearch status`.
    pub places: Places,
}

/// Where the configuration was looked for and found.
#[derive(Clone, Debug, Default)]
pub struct Places {
    /// Every configuration file looked at, in order, and whether it exists.
    pub config_files: Vec<(PathBuf, bool)>,
    /// What chose the data directory (a flag, the environment, a file, the platform default).
    pub data_dir_from: &'static str,
}

/// The model used when none is configured: the one compiled into the binary, or without the
/// `bundled-model` feature the source tree's (see `embed::default_manifest_path`).
pub fn default_model() -> embed::ModelSource {
    #[cfg(feature = "bundled-model")]
    return embed::ModelSource::Embedded(&crate::bundled::MODEL);
    #[cfg(not(feature = "bundled-model"))]
    return embed::ModelSource::Manifest(embed::default_manifest_path());
}

/// A configured model path: the manifest itself, or a folder holding `manifest.toml` (what
/// `imgsearch models --export DIR` writes).
fn manifest_file(path: PathBuf) -> PathBuf {
    if path.is_dir() {
        path.join("manifest.toml")
    } else {
        path
    }
}

fn positive(key: &str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(ConfigError(format!("{key} must be at least 1")));
    }
    Ok(())
}

fn check_collection(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(ConfigError(format!(
            "collection {name:?} must be 1-64 characters of letters, digits, '_' or '-'"
        )));
    }
    Ok(())
}

fn runtime(
    kind: Option<&str>,
    threads: Option<usize>,
    ort: Option<PathBuf>,
) -> Result<embed::RuntimeConfig, ConfigError> {
    let mut rt = embed::RuntimeConfig::default();
    match kind.map(str::to_lowercase).as_deref() {
        None | Some("tract") => rt.kind = embed::RuntimeKind::Tract,
        Some("ort") => rt.kind = embed::RuntimeKind::Ort,
        Some(other) => {
            return Err(ConfigError(format!(
                "runtime {other:?} is not one of tract, ort"
            )))
        }
    }
    if let Some(t) = threads {
        positive("threads", t as u64)?;
        rt.threads = t;
    }
    if ort.is_some() {
        rt.ort_library = ort;
    }
    Ok(rt)
}

fn index_spec(c: &RawConfig) -> Result<IndexSpec, ConfigError> {
    for (key, v) in [
        ("hnsw_m", c.hnsw_m),
        ("hnsw_ef_construction", c.hnsw_ef_construction),
        ("hnsw_ef", c.hnsw_ef),
        ("ivf_nlist", c.ivf_nlist),
        ("ivf_nprobe", c.ivf_nprobe),
    ] {
        if let Some(v) = v {
            positive(key, v as u64)?;
        }
    }
    let spec = match c.index.as_deref().map(str::to_lowercase).as_deref() {
        None | Some("hnsw") => match IndexSpec::default_hnsw() {
            IndexSpec::Hnsw {
                m,
                ef_construction,
                ef,
            } => IndexSpec::Hnsw {
                m: c.hnsw_m.unwrap_or(m),
                ef_construction: c.hnsw_ef_construction.unwrap_or(ef_construction),
                ef: c.hnsw_ef.unwrap_or(ef),
            },
            other => other,
        },
        Some("flat") => IndexSpec::Flat,
        Some("ivf") => match IndexSpec::default_ivf() {
            IndexSpec::Ivf { nlist, nprobe } => IndexSpec::Ivf {
                nlist: c.ivf_nlist.unwrap_or(nlist),
                nprobe: c.ivf_nprobe.unwrap_or(nprobe),
            },
            other => other,
        },
        Some("lsh") => IndexSpec::default_lsh(),
        Some(other) => {
            return Err(ConfigError(format!(
                "index {other:?} is not one of hnsw, flat, ivf, lsh"
            )))
        }
    };
    if let IndexSpec::Ivf { nlist, nprobe } = spec {
        if nprobe > nlist {
            return Err(ConfigError(format!(
                "ivf_nprobe ({nprobe}) must not exceed ivf_nlist ({nlist})"
            )));
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
    }

    #[test]
    fn layers_override_in_order() {
        let file: RawConfig =
            toml::from_str("collection = \"a\"\nmetric = \"l2\"\nhnsw_ef = 40").unwrap();
        let envl = RawConfig::from_env(&env(&[
            ("IMGSEARCH_COLLECTION", "b"),
            ("IMGSEARCH_HNSW_EF", "50"),
        ]))
        .unwrap();
        let flags = RawConfig {
            collection: Some("c".into()),
            ..RawConfig::default()
        };
        let s = file
            .clone()
            .merge(envl.clone())
            .merge(flags)
            .validate()
            .unwrap();
        assert_eq!(s.engine.collection, "c");
        assert_eq!(s.engine.metric, Metric::L2);
        let s = file.merge(envl).validate().unwrap();
        assert_eq!(s.engine.collection, "b");
        assert!(matches!(s.engine.index, IndexSpec::Hnsw { ef: 50, .. }));
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn rejects_bad_values_with_a_reason() {
        let bad = |raw: RawConfig| raw.validate().unwrap_err().0;
        assert!(bad(RawConfig {
            metric: Some("manhattan".into()),
            ..Default::default()
        })
        .contains("cosine, ip, l2"));
        assert!(bad(RawConfig {
            threads: Some(0),
            ..Default::default()
        })
        .contains("threads"));
        assert!(bad(RawConfig {
            bind: Some("localhost".into()),
            ..Default::default()
        })
        .contains("127.0.0.1:8080"));
        assert!(bad(RawConfig {
            collection: Some("a/b".into()),
            ..Default::default()
        })
        .contains("letters"));
        let ivf = RawConfig {
            index: Some("ivf".into()),
            ivf_nlist: Some(4),
            ivf_nprobe: Some(8),
            ..Default::default()
        };
        assert!(bad(ivf).contains("ivf_nprobe"));
        let e = RawConfig::from_env(&env(&[("IMGSEARCH_THREADS", "many")]))
            .unwrap_err()
            .0;
        assert!(e.contains("IMGSEARCH_THREADS"), "{e}");
        assert!(
            toml::from_str::<RawConfig>("colection = \"x\"").is_err(),
            "unknown keys rejected"
        );
    }
}
