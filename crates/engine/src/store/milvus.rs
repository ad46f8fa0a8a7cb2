//! The Milvus store: [`VectorStore`] over the official Rust SDK (`milvus-sdk-rust`, gRPC), for
//! deployments that outgrow one machine. See `docs/milvus.md` for running it and for what
//! differs from the embedded store.
//!
//! The trait is synchronous, so the store owns a small multi-threaded tokio runtime (two
//! workers) and waits on it. It may be called from any thread, including from inside another
//! runtime's task (the HTTP server): there the future runs on the store's runtime and only the
//! calling thread waits, instead of `block_on` panicking.
//!
//! Layout: `url` parses store URLs, `expr` turns filters into Milvus expressions, `schema` maps
//! configs, parameters and points onto Milvus' types, and `ops` performs the calls with retries.

mod expr;
mod ops;
mod schema;
mod url;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use milvus::v2::prelude as sdk;
use parking_lot::RwLock;
use vecdb::{CollectionConfig, Hit, Point, SearchRequest, VecDbError};

use self::ops::Ops;
pub use self::schema::MAX_ID;
pub use self::url::MilvusUrl;
use super::{StoreError, VectorStore};

/// Reads are split so that one response stays well under the SDK's 4 MiB message limit.
const READ_BYTES: usize = 2 << 20;
/// Inserts are split at this many bytes as well as at the URL's `batch` rows.
const WRITE_BYTES: usize = 8 << 20;
/// Ids per delete call (the ids travel inside the expression text).
const DELETE_CHUNK: usize = 1000;
/// Up to this k, searches return metadata directly; above, it is fetched in pages afterwards.
const INLINE_METADATA_K: usize = 1000;

/// A [`VectorStore`] on a Milvus server (standalone, cluster or Milvus Lite).
pub struct MilvusStore {
    ops: Ops,
    url: MilvusUrl,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// Configs of collections seen, so writes need no describe call each; entries are dropped
    /// when Milvus reports the collection gone.
    configs: RwLock<HashMap<String, CollectionConfig>>,
}

impl std::fmt::Debug for MilvusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MilvusStore")
            .field("url", &self.url)
            .finish()
    }
}

impl MilvusStore {
    /// Connects to `milvus://host:port[/db]?user=..&password=..` (see [`MilvusUrl`]) and checks
    /// that the server answers requests; any failure is `Unreachable` naming the URL (without
    /// secrets), or `InvalidUrl` for a malformed URL.
    pub fn connect(url: &str) -> Result<MilvusStore, StoreError> {
        let parsed = MilvusUrl::parse(url)?;
        let unreachable = |reason: String| StoreError::Unreachable {
            url: parsed.redacted(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("milvus-client")
            .enable_all()
            .build()
            .map_err(|e| unreachable(format!("cannot start the client runtime: {e}")))?;
        let config = connect_config(&parsed);
        let client = wait_on(&runtime, async move { sdk::ClientV2::new(&config).await })
            .map_err(|e| unreachable(format!("no Milvus server answers: {e}")))?;
        let ops = Ops {
            client,
            url: parsed.redacted(),
            flush: parsed.flush,
            endpoint: parsed.endpoint(),
            user: parsed.user.clone(),
            password: parsed.password.clone(),
        };
        let probe = ops.clone();
        wait_on(&runtime, async move { probe.list().await }).map_err(|e| {
            unreachable(format!(
                "connected, but the server refused to list collections (wrong database or \
                 credentials?): {e}"
            ))
        })?;
        tracing::info!(url = %parsed.redacted(), "connected to Milvus");
        Ok(MilvusStore {
            ops,
            url: parsed,
            runtime: Some(runtime),
            configs: RwLock::new(HashMap::new()),
        })
    }

    /// The URL this store talks to, without secrets.
    pub fn url(&self) -> String {
        self.url.redacted()
    }

    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        wait_on(
            self.runtime.as_ref().expect("runtime lives until drop"),
            fut,
        )
    }

    /// The config of an existing collection, from the cache or the server.
    fn config(&self, name: &str) -> Result<CollectionConfig, StoreError> {
        if let Some(c) = self.configs.read().get(name) {
            return Ok(c.clone());
        }
        if vecdb::config::validate_name(name).is_err() {
            return Err(StoreError::UnknownCollection { name: name.into() });
        }
        let (ops, owned) = (self.ops.clone(), name.to_string());
        match self.run(async move { ops.describe(&owned).await })? {
            Some(c) => {
                self.configs.write().insert(name.to_string(), c.clone());
                Ok(c)
            }
            None => Err(StoreError::UnknownCollection { name: name.into() }),
        }
    }

    /// Forgets a cached config when the server says the collection is gone.
    fn forget_if_gone<T>(&self, name: &str, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if matches!(r, Err(StoreError::UnknownCollection { .. })) {
            self.configs.write().remove(name);
        }
        r
    }

    /// Rows per query so that a response stays under [`READ_BYTES`].
    fn rows_per_read(dim: usize) -> usize {
        (READ_BYTES / (dim * 4 + 2048)).clamp(16, 1024)
    }

    /// Points by id in pages, in the order Milvus returns them.
    fn fetch(&self, name: &str, dim: usize, ids: &[i64]) -> Result<Vec<Point>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(Self::rows_per_read(dim)) {
            let (ops, owned) = (self.ops.clone(), name.to_string());
            let filter = schema::id_list_filter(chunk);
            let page =
                self.run(async move { ops.query_points(&owned, filter, None, false).await })?;
            out.extend(page);
        }
        Ok(out)
    }

    fn search_inner(
        &self,
        name: &str,
        query: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<Hit>, StoreError> {
        let config = self.config(name)?;
        let params = schema::search_params(&config, query, req)?;
        let filter = req.filter.as_ref().map(expr::translate).transpose()?;
        let inline = req.k <= INLINE_METADATA_K;
        let (ops, owned, q, k) = (self.ops.clone(), name.to_string(), query.to_vec(), req.k);
        let raw =
            self.run(async move { ops.search(&owned, q, k, filter, params, inline).await })?;
        let mut hits: Vec<Hit> = raw
            .into_iter()
            .map(|(id, raw_score, metadata)| Hit {
                id,
                score: schema::to_score(config.metric, raw_score),
                metadata: metadata.unwrap_or(serde_json::Value::Null),
            })
            .filter(|h| schema::within_threshold(config.metric, h.score, req.threshold))
            .collect();
        if !inline && !hits.is_empty() {
            let ids: Vec<i64> = hits.iter().map(|h| h.id as i64).collect();
            let found: HashMap<u64, serde_json::Value> = self
                .fetch(name, 0, &ids)?
                .into_iter()
                .map(|p| (p.id, p.metadata))
                .collect();
            // A point deleted between the two calls has no metadata any more: drop its hit.
            hits.retain_mut(|h| match found.get(&h.id) {
                Some(m) => {
                    h.metadata = m.clone();
                    true
                }
                None => false,
            });
        }
        Ok(hits)
    }

    fn upsert_inner(&self, name: &str, points: &[Point]) -> Result<(), StoreError> {
        let config = self.config(name)?;
        schema::check_points(&config, points)?;
        let mut start = 0;
        while start < points.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < points.len() && end - start < self.url.batch {
                bytes += schema::wire_size(&points[end]);
                if end > start && bytes > WRITE_BYTES {
                    break;
                }
                end += 1;
            }
            let (ops, owned, batch) = (
                self.ops.clone(),
                name.to_string(),
                points[start..end].to_vec(),
            );
            self.run(async move { ops.upsert(&owned, &batch).await })?;
            start = end;
        }
        Ok(())
    }

    fn scan_inner(
        &self,
        name: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Point>, StoreError> {
        let config = self.config(name)?;
        let mut cursor = match after {
            // Ids above MAX_ID cannot be stored, so nothing follows them.
            Some(a) if a >= schema::MAX_ID => return Ok(Vec::new()),
            other => other,
        };
        let page_rows = Self::rows_per_read(config.dim);
        let mut out = Vec::with_capacity(limit.min(page_rows));
        while out.len() < limit {
            let want = (limit - out.len()).min(page_rows);
            let filter = match cursor {
                Some(a) => format!("{} > {a}", schema::ID),
                None => expr::ALWAYS.to_string(),
            };
            let (ops, owned) = (self.ops.clone(), name.to_string());
            let mut page =
                self.run(async move { ops.query_points(&owned, filter, Some(want), true).await })?;
            page.sort_unstable_by_key(|p| p.id);
            page.truncate(want);
            let got = page.len();
            cursor = page.last().map(|p| p.id).or(cursor);
            out.extend(page);
            if got < want {
                break;
            }
        }
        Ok(out)
    }
}

impl Drop for MilvusStore {
    fn drop(&mut self) {
        // A runtime dropped inside another runtime's task would panic; shutting down in the
        // background is safe everywhere.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn connect_config(url: &MilvusUrl) -> sdk::ConnectConfig {
    // The SDK's own retries stay short; `ops` adds bounded retries around whole operations.
    let retry = sdk::RetryConfig::new()
        .max_attempts(3)
        .initial_backoff(Duration::from_millis(100))
        .max_backoff(Duration::from_secs(1))
        .max_retry_timeout(Duration::from_secs(10));
    let mut c = sdk::ConnectConfig::new()
        .uri(url.endpoint())
        .connect_timeout(Duration::from_secs(url.connect_timeout_s))
        .rpc_timeout(Duration::from_secs(120))
        .retry(retry)
        .telemetry(sdk::TelemetryConfig::new().enabled(false))
        .secure(url.tls);
    if let Some(db) = &url.database {
        c = c.database(db.clone());
    }
    if let Some(token) = &url.token {
        c = c.token(token.clone());
    } else if let Some(user) = &url.user {
        c = c
            .username(user.clone())
            .password(url.password.clone().unwrap_or_default());
    }
    c
}

/// Runs a future to completion on `rt` from synchronous code. Inside another runtime's task
/// `block_on` would panic, so there the future is spawned on `rt` and this thread waits.
fn wait_on<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl Future<Output = T> + Send + 'static,
) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(fut);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        // The receiver only goes away if the caller's thread died; nothing to report then.
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .unwrap_or_else(|_| panic!("a Milvus client task panicked"))
}

impl VectorStore for MilvusStore {
    fn kind(&self) -> &'static str {
        "milvus"
    }

    fn create_collection(&self, config: &CollectionConfig) -> Result<(), StoreError> {
        schema::validate_config(config)?;
        let (ops, owned) = (self.ops.clone(), config.clone());
        self.run(async move {
            if ops.exists(&owned.name).await? {
                return Err(VecDbError::CollectionExists { name: owned.name }.into());
            }
            ops.create(&owned).await
        })?;
        self.configs
            .write()
            .insert(config.name.clone(), config.clone());
        Ok(())
    }

    fn list_collections(&self) -> Result<Vec<CollectionConfig>, StoreError> {
        let ops = self.ops.clone();
        self.run(async move { ops.list().await })
    }

    fn collection_info(&self, name: &str) -> Result<Option<CollectionConfig>, StoreError> {
        match self.config(name) {
            Ok(c) => Ok(Some(c)),
            Err(StoreError::UnknownCollection { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn drop_collection(&self, name: &str) -> Result<(), StoreError> {
        self.configs.write().remove(name);
        // Only imgsearch's collections may be dropped through this store.
        self.config(name)?;
        let (ops, owned) = (self.ops.clone(), name.to_string());
        let r = self.run(async move { ops.drop(&owned).await });
        self.configs.write().remove(name);
        r
    }

    fn upsert(&self, name: &str, points: &[Point]) -> Result<(), StoreError> {
        let r = self.upsert_inner(name, points);
        self.forget_if_gone(name, r)
    }

    fn delete(&self, name: &str, ids: &[u64]) -> Result<(), StoreError> {
        let r = (|| {
            self.config(name)?;
            let mut ids: Vec<i64> = ids.iter().filter_map(|&i| i64::try_from(i).ok()).collect();
            ids.sort_unstable();
            ids.dedup();
            for chunk in ids.chunks(DELETE_CHUNK) {
                let (ops, owned, chunk) = (self.ops.clone(), name.to_string(), chunk.to_vec());
                self.run(async move { ops.delete(&owned, &chunk).await })?;
            }
            Ok(())
        })();
        self.forget_if_gone(name, r)
    }

    fn get(&self, name: &str, ids: &[u64]) -> Result<Vec<Point>, StoreError> {
        let r = (|| {
            let config = self.config(name)?;
            let mut wanted: Vec<i64> = ids.iter().filter_map(|&i| i64::try_from(i).ok()).collect();
            wanted.sort_unstable();
            wanted.dedup();
            let mut found: HashMap<u64, Point> = self
                .fetch(name, config.dim, &wanted)?
                .into_iter()
                .map(|p| (p.id, p))
                .collect();
            // In the order asked, each id once, missing ones skipped.
            Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
        })();
        self.forget_if_gone(name, r)
    }

    fn count(&self, name: &str) -> Result<u64, StoreError> {
        let r = self.config(name).and_then(|_| {
            let (ops, owned) = (self.ops.clone(), name.to_string());
            self.run(async move { ops.count(&owned).await })
        });
        self.forget_if_gone(name, r)
    }

    fn search(
        &self,
        name: &str,
        query: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<Hit>, StoreError> {
        let r = self.search_inner(name, query, req);
        self.forget_if_gone(name, r)
    }

    fn scan(&self, name: &str, after: Option<u64>, limit: usize) -> Result<Vec<Point>, StoreError> {
        let r = self.scan_inner(name, after, limit);
        self.forget_if_gone(name, r)
    }
}
