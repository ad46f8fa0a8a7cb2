//! One validated configuration, layered: the file (`imgsearch.toml` in the data directory, or
//! `--config FILE`), then the environment (`IMGSEARCH_*`), then command-line flags. Each layer
//! overrides the one before key by key. Invalid values are rejected with a message naming the
//! key, its source and what to do; nothing is silently capped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use vecdb::{HnswParams, IvfParams, RefineParams};

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
    pub refine_k: Option<f32>,
    pub max_pixels: Option<u64>,
    pub max_file_bytes: Option<u64>,
    pub bind: Option<String>,
    pub token: Option<String>,
    pub allow_host: Option<Vec<String>>,
    pub cors_origin: Option<Vec<String>>,
    pub index_roots: Option<Vec<PathBuf>>,
    pub libraries: Option<Vec<PathBuf>>,
    pub rescan_secs: Option<u64>,
    pub max_upload_bytes: Option<u64>,
    pub max_k: Option<u64>,
    pub max_ids: Option<u64>,
    pub max_queries: Option<u64>,
    pub max_results: Option<u64>,
    pub max_response_floats: Option<u64>,
    pub max_filter_bytes: Option<u64>,
    pub max_filter_nodes: Option<u64>,
    pub decode_slots: Option<u64>,
    pub decode_wait_ms: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub max_connections: Option<u64>,
}

/// One `serve` limit: its key, help text, value in a configuration layer, and where the value
/// goes in the server's settings. Each is a whole number of at least 1 (except `decode_slots`,
/// where 0 means automatic).
struct ServerLimit {
    key: &'static str,
    help: &'static str,
    get: fn(&RawConfig) -> Option<u64>,
    set: fn(&mut server::ServerConfig, u64),
}

/// Declares [`SERVER_LIMITS`] naming each key once: it is the name of the field in
/// [`RawConfig`] and in the server's settings, so the key, the value read and the value set
/// cannot disagree.
macro_rules! server_limits {
    ($($key:ident: $help:literal,)*) => {
        const SERVER_LIMITS: &[ServerLimit] = &[$(ServerLimit {
            key: stringify!($key),
            help: $help,
            get: |c| c.$key,
            // The settings hold sizes as `usize` and durations as `u64`.
            set: |c, v| c.$key = v as _,
        }),*];
    };
}

server_limits! {
    max_upload_bytes: "serve: largest request body, in bytes [33554432]",
    max_k: "serve: largest k / limit of one search [1000]",
    max_ids: "serve: largest number of ids in one vector get / delete [1000]",
    max_queries: "serve: largest number of query vectors in one vector search [1024]",
    max_results: "serve: largest query vectors x limit of one vector search [10000]",
    max_response_floats: "serve: largest ids x dimension of one vector get [4000000]",
    max_filter_bytes: "serve: largest filter given as text, in bytes [65536]",
    max_filter_nodes: "serve: largest filter, in operators plus `in` values [10000]",
    decode_slots: "serve: image decodes / embeddings at once, 0 = from cores and memory [0]",
    decode_wait_ms: "serve: wait for a decode slot before answering 503 [10000]",
    header_timeout_secs: "serve: time a client has to send its request headers [10]",
    request_timeout_secs: "serve: time one request may take before 408 [120]",
    max_connections: "serve: connections served at once [256]",
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
        "hnsw | flat | ivf | lsh | hnsw_sq | ivf_sq8 | flat_sq8 | ivf_rabitq | flat_rabitq | \
         hnsw_rabitq, for a new collection [hnsw]",
    ),
    ("hnsw_m", "HNSW links per node [16]"),
    ("hnsw_ef_construction", "HNSW build beam [200]"),
    ("hnsw_ef", "HNSW search beam [64]"),
    ("ivf_nlist", "IVF lists [256]"),
    ("ivf_nprobe", "IVF lists searched [16]"),
    (
        "refine_k",
        "hnsw_sq | ivf_sq8 | flat_sq8: candidates re-ranked exactly, as a multiple of k [4]",
    ),
    ("max_pixels", "largest image decoded, in pixels [100000000]"),
    ("max_file_bytes", "largest file read, in bytes [67108864]"),
    ("bind", "address `serve` listens on [127.0.0.1:8080]"),
    (
        "token",
        "serve: token every API request must carry (Authorization: Bearer); required beyond loopback",
    ),
    (
        "allow_host",
        "serve: host names accepted in the Host header besides addresses and localhost [none]",
    ),
    (
        "cors_origin",
        "serve: origins whose pages may call the API (CORS) [none]",
    ),
    (
        "index_roots",
        "serve: folders indexing jobs may read; empty = any the server can read [none]",
    ),
    (
        "libraries",
        "serve: folders kept in sync: watched and rescanned (also serve --watch DIR) [none]",
    ),
    (
        "rescan_secs",
        "serve: seconds between two full rescans of the libraries [3600]",
    ),
];

/// Every key: the general ones, then the `serve` limits.
pub fn all_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYS.iter()
        .copied()
        .chain(SERVER_LIMITS.iter().map(|l| (l.key, l.help)))
}

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
            refine_k,
            max_pixels,
            max_file_bytes,
            bind,
            token,
            allow_host,
            cors_origin,
            index_roots,
            libraries,
            rescan_secs,
            max_upload_bytes,
            max_k,
            max_ids,
            max_queries,
            max_results,
            max_response_floats,
            max_filter_bytes,
            max_filter_nodes,
            decode_slots,
            decode_wait_ms,
            header_timeout_secs,
            request_timeout_secs,
            max_connections
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
                all_keys().map(|k| k.0).collect::<Vec<_>>().join(", ")
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
        // Lists are comma-separated in the environment.
        let list = |key: &str| {
            var(key).map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
        };
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
            refine_k: var("refine_k")
                .map(|v| {
                    v.trim().parse::<f32>().map_err(|_| {
                        ConfigError(format!(
                            "IMGSEARCH_REFINE_K = {v:?} is not a number; set it to one or unset it"
                        ))
                    })
                })
                .transpose()?,
            max_pixels: num("max_pixels")?,
            max_file_bytes: num("max_file_bytes")?,
            bind: var("bind"),
            token: var("token"),
            allow_host: list("allow_host"),
            cors_origin: list("cors_origin"),
            index_roots: list("index_roots").map(|v| v.into_iter().map(PathBuf::from).collect()),
            libraries: list("libraries").map(|v| v.into_iter().map(PathBuf::from).collect()),
            rescan_secs: num("rescan_secs")?,
            max_upload_bytes: num("max_upload_bytes")?,
            max_k: num("max_k")?,
            max_ids: num("max_ids")?,
            max_queries: num("max_queries")?,
            max_results: num("max_results")?,
            max_response_floats: num("max_response_floats")?,
            max_filter_bytes: num("max_filter_bytes")?,
            max_filter_nodes: num("max_filter_nodes")?,
            decode_slots: num("decode_slots")?,
            decode_wait_ms: num("decode_wait_ms")?,
            header_timeout_secs: num("header_timeout_secs")?,
            request_timeout_secs: num("request_timeout_secs")?,
            max_connections: num("max_connections")?,
        })
    }

    /// Validates every key and builds the engine configuration and the bind address.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let mut server = server::ServerConfig::default();
        for limit in SERVER_LIMITS {
            if let Some(v) = (limit.get)(&self) {
                if limit.key != "decode_slots" {
                    positive(limit.key, v)?;
                }
                (limit.set)(&mut server, v);
            }
        }
        if let Some(t) = &self.token {
            check_token(t)?;
            server.token = Some(t.clone());
        }
        for name in self.allow_host.iter().flatten() {
            if !server::host_allowed(name, None, std::slice::from_ref(name)) {
                return Err(ConfigError(format!(
                    "allow_host {name:?} is not a host name with an optional :port"
                )));
            }
        }
        server.allow_hosts = self.allow_host.clone().unwrap_or_default();
        for origin in self.cors_origin.iter().flatten() {
            let rest = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains('/')) {
                return Err(ConfigError(format!(
                    "cors_origin {origin:?} is not an origin like https://app.example:8443"
                )));
            }
        }
        server.cors_origins = self.cors_origin.clone().unwrap_or_default();
        for (key, list) in [
            ("index_roots", &self.index_roots),
            ("libraries", &self.libraries),
        ] {
            for path in list.iter().flatten() {
                if !path.is_absolute() {
                    return Err(ConfigError(format!(
                        "{key} {} is not an absolute path",
                        path.display()
                    )));
                }
            }
        }
        server.index_roots = self.index_roots.clone().unwrap_or_default();
        server.libraries = self.libraries.clone().unwrap_or_default();
        if let Some(secs) = self.rescan_secs {
            positive("rescan_secs", secs)?;
            server.rescan_secs = secs;
        }
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
            server,
        })
    }
}

/// A token goes into a header and a cookie, and must not be guessable: 16 to 256 printable
/// ASCII characters, without spaces, `;` or `,`.
pub fn check_token(token: &str) -> Result<(), ConfigError> {
    let ok = (16..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    if !ok {
        return Err(ConfigError(
            "token must be 16 to 256 printable ASCII characters without spaces, ';' or ','; \
             make one with `openssl rand -hex 24`"
                .into(),
        ));
    }
    Ok(())
}

/// The validated result.
#[derive(Clone, Debug)]
pub struct Settings {
    pub engine: engine::EngineConfig,
    pub bind: SocketAddr,
    /// Where the data directory and configuration came from, for `imgsearch status`.
    pub places: Places,
    /// The HTTP settings of `serve`: limits, token, allowed hosts and origins.
    pub server: server::ServerConfig,
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

/// Collection names follow the database's rule, so the CLI and the server accept the same ones.
fn check_collection(name: &str) -> Result<(), ConfigError> {
    vecdb::config::validate_name(name).map_err(|e| {
        ConfigError(format!(
            "collection {name:?}: {e}; use 1-64 characters of letters, digits, '_' or '-'"
        ))
    })
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
    // Each group of settings over vecdb's defaults, for whichever kind takes it.
    let (hd, id, rd) = (
        HnswParams::default(),
        IvfParams::default(),
        RefineParams::default(),
    );
    let hnsw = HnswParams {
        m: c.hnsw_m.unwrap_or(hd.m),
        ef_construction: c.hnsw_ef_construction.unwrap_or(hd.ef_construction),
        ef: c.hnsw_ef.unwrap_or(hd.ef),
    };
    let ivf = IvfParams {
        nlist: c.ivf_nlist.unwrap_or(id.nlist),
        nprobe: c.ivf_nprobe.unwrap_or(id.nprobe),
    };
    let rerank = RefineParams {
        refine: rd.refine,
        refine_k: c.refine_k.unwrap_or(rd.refine_k),
    };
    let spec = match c.index.as_deref().map(str::to_lowercase).as_deref() {
        None | Some("hnsw") => IndexSpec::Hnsw(hnsw),
        Some("flat") => IndexSpec::Flat,
        Some("ivf") => IndexSpec::Ivf(ivf),
        Some("lsh") => IndexSpec::default_lsh(),
        Some("hnsw_sq") => IndexSpec::HnswSq { hnsw, rerank },
        Some("ivf_sq8") => IndexSpec::IvfSq8 { ivf, rerank },
        Some("flat_sq8") => IndexSpec::FlatSq8(rerank),
        Some("ivf_rabitq") => IndexSpec::IvfRabitq {
            ivf,
            refine: rd.refine,
        },
        Some("flat_rabitq") => IndexSpec::FlatRabitq { refine: rd.refine },
        Some("hnsw_rabitq") => IndexSpec::HnswRabitq(hnsw),
        Some(other) => {
            return Err(ConfigError(format!(
                "index {other:?} is not one of hnsw, flat, ivf, lsh, hnsw_sq, ivf_sq8, flat_sq8, \
                 ivf_rabitq, flat_rabitq, hnsw_rabitq"
            )))
        }
    };
    if c.refine_k.is_some()
        && spec
            .quantized_parts()
            .is_some_and(|parts| parts.refine_k.is_none())
    {
        return Err(ConfigError(format!(
            "refine_k does not apply to index {}: {}",
            spec.kind_name(),
            vecdb::index::quant::REFINE_K_BY_BOUND
        )));
    }
    if let IndexSpec::Ivf(IvfParams { nlist, nprobe })
    | IndexSpec::IvfSq8 {
        ivf: IvfParams { nlist, nprobe },
        ..
    }
    | IndexSpec::IvfRabitq {
        ivf: IvfParams { nlist, nprobe },
        ..
    } = spec
    {
        if nprobe > nlist {
            return Err(ConfigError(format!(
                "ivf_nprobe ({nprobe}) must not exceed ivf_nlist ({nlist})"
            )));
        }
    }
    if let Some(refine_k) = spec.quantized_parts().and_then(|parts| parts.refine_k) {
        if !(refine_k.is_finite() && (1.0..=vecdb::index::quant::MAX_REFINE_K).contains(&refine_k))
        {
            return Err(ConfigError(format!(
                "refine_k must be a number in 1..={}, got {refine_k}",
                vecdb::index::quant::MAX_REFINE_K
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
        assert!(matches!(
            s.engine.index,
            IndexSpec::Hnsw(HnswParams { ef: 50, .. })
        ));
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
        let sq = RawConfig {
            index: Some("IVF_SQ8".into()),
            refine_k: Some(0.5),
            ..Default::default()
        };
        assert!(bad(sq).contains("refine_k"));
        let rabitq = RawConfig {
            index: Some("ivf_rabitq".into()),
            refine_k: Some(2.0),
            ..Default::default()
        };
        assert!(bad(rabitq).contains("error bound"));
        let s = RawConfig {
            index: Some("HNSW_RABITQ".into()),
            hnsw_m: Some(24),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(matches!(s.engine.index, IndexSpec::HnswRabitq(hnsw) if hnsw.m == 24));
        let s = RawConfig {
            index: Some("hnsw_sq".into()),
            hnsw_ef: Some(40),
            refine_k: Some(2.0),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(matches!(
            s.engine.index,
            IndexSpec::HnswSq { hnsw, rerank }
                if hnsw.ef == 40 && rerank.refine && rerank.refine_k == 2.0
        ));
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
