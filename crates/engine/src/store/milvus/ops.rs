//! The asynchronous operations against a Milvus server, with retries and error mapping.
//!
//! Every read uses Strong consistency, so a read sees every write Milvus acknowledged before it
//! (which is what makes `upsert` followed by `search` behave like the embedded store). Reads on
//! a collection that is not loaded load it first and try again once.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use milvus::v2::prelude as sdk;
use vecdb::{CollectionConfig, Point};

use super::expr::METADATA;
use super::schema::{self, ID, VECTOR};
use crate::store::StoreError;

/// Attempts for one operation when the failure is transient (connection refused or reset, a
/// timeout, a server that is not ready): the first try plus three retries, waiting 250 ms,
/// 500 ms and 1 s, so an operation gives up after about two seconds of back-off.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How long a load may take before the store gives up; building an HNSW index over a large
/// collection happens during the load.
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Where failures are reported and how the server is reached; cheap to clone into futures.
#[derive(Clone)]
pub(crate) struct Ops {
    pub client: sdk::ClientV2,
    /// The redacted URL, for error messages.
    pub url: String,
    pub flush: bool,
    /// `http://host:port` and credentials, for the v1 client used where the v2 one cannot
    /// read a server's answer (see [`Ops::list`]).
    pub endpoint: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// How an SDK error is treated.
#[derive(Debug, PartialEq)]
enum Kind {
    Transient,
    Unreachable,
    NotFound,
    NotLoaded,
    Other,
}

fn classify(e: &sdk::Error) -> Kind {
    match e {
        sdk::Error::Grpc(status) => {
            // The gRPC codes of a peer that is down, restarting or overloaded.
            let code = format!("{:?}", status.code());
            if matches!(
                code.as_str(),
                "Unavailable" | "DeadlineExceeded" | "ResourceExhausted" | "Aborted"
            ) {
                Kind::Transient
            } else {
                Kind::Other
            }
        }
        sdk::Error::Timeout(_) => Kind::Transient,
        // The SDK already retried on its own; retrying again would only multiply the wait.
        sdk::Error::RetryExhausted { .. } => Kind::Unreachable,
        sdk::Error::Server(s) => {
            let reason = s.reason().to_ascii_lowercase();
            if s.code() == 100
                || reason.contains("collection not found")
                || reason.contains("can't find collection")
                || (reason.contains("collection") && reason.contains("not exist"))
            {
                Kind::NotFound
            } else if s.code() == 101 || reason.contains("not loaded") {
                Kind::NotLoaded
            } else {
                Kind::Other
            }
        }
        _ => Kind::Other,
    }
}

/// [`Ops::retry`] with a chosen first wait (tests use a short one).
async fn retry_with<T, F, Fut>(what: &str, first: Duration, op: F) -> Result<T, sdk::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, sdk::Error>>,
{
    let mut wait = first;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < ATTEMPTS && classify(&e) == Kind::Transient => {
                tracing::warn!(%e, attempt, "Milvus {what} failed; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

impl Ops {
    /// Maps an SDK error to the store's error; `collection` names the collection concerned.
    pub fn error(&self, e: sdk::Error, collection: &str) -> StoreError {
        match classify(&e) {
            Kind::NotFound if !collection.is_empty() => StoreError::UnknownCollection {
                name: collection.to_string(),
            },
            Kind::Transient | Kind::Unreachable => StoreError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            },
            _ => StoreError::Rejected {
                reason: format!("Milvus at {}: {e}", self.url),
            },
        }
    }

    /// Runs `op` until it succeeds, fails for a non-transient reason, or runs out of attempts.
    /// Every operation here is safe to repeat: upserts and deletes are by id.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, sdk::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sdk::Error>>,
    {
        retry_with(what, FIRST_BACKOFF, op).await
    }

    /// Runs a read; when Milvus says the collection is not loaded, loads it and reads again.
    async fn read<T, F, Fut>(&self, name: &str, what: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sdk::Error>>,
    {
        match self.retry(what, &op).await {
            Err(e) if classify(&e) == Kind::NotLoaded => {
                tracing::info!(collection = name, "loading Milvus collection before {what}");
                self.load(name).await?;
                self.retry(what, &op).await.map_err(|e| self.error(e, name))
            }
            other => other.map_err(|e| self.error(e, name)),
        }
    }

    pub async fn exists(&self, name: &str) -> Result<bool, StoreError> {
        let req = sdk::HasCollectionRequest::builder()
            .collection_name(name)
            .build()
            .map_err(|e| self.error(e, name))?;
        self.retry("has_collection", || self.client.has_collection(req.clone()))
            .await
            .map(|r| r.exists())
            .map_err(|e| self.error(e, name))
    }

    /// The imgsearch config of a collection; `None` when it does not exist.
    pub async fn describe(&self, name: &str) -> Result<Option<CollectionConfig>, StoreError> {
        let req = sdk::DescribeCollectionRequest::builder()
            .collection_name(name)
            .build()
            .map_err(|e| self.error(e, name))?;
        let resp = match self
            .retry("describe_collection", || {
                self.client.describe_collection(req.clone())
            })
            .await
        {
            Ok(r) => r,
            Err(e) if classify(&e) == Kind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e, name)),
        };
        match schema::decode_config(name, resp.description().get_properties())? {
            Some(c) => Ok(Some(c)),
            None => Err(StoreError::Rejected {
                reason: format!(
                    "Milvus collection {name} was not created by imgsearch (it has no {} \
                     property); use another name",
                    schema::CONFIG_PROPERTY
                ),
            }),
        }
    }

    pub async fn list(&self) -> Result<Vec<CollectionConfig>, StoreError> {
        let req = sdk::ListCollectionsRequest::builder()
            .build()
            .map_err(|e| self.error(e, ""))?;
        let listed = self
            .retry("list_collections", || {
                self.client.list_collections(req.clone())
            })
            .await;
        let names = match listed {
            Ok(r) => r.collection_names().to_vec(),
            // Milvus Lite answers without collection ids, which the v2 client refuses as
            // malformed; the v1 client reads the names alone.
            Err(sdk::Error::MalformedResponse(_)) => self.list_names_v1().await?,
            Err(e) => return Err(self.error(e, "")),
        };
        let mut out = Vec::new();
        for name in names {
            // Collections of other applications share the server; they are not listed.
            match self.describe(&name).await {
                Ok(Some(c)) => out.push(c),
                Ok(None) | Err(StoreError::Rejected { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn list_names_v1(&self) -> Result<Vec<String>, StoreError> {
        let fail = |reason: String| StoreError::Rejected {
            reason: format!("Milvus at {}: {reason}", self.url),
        };
        let mut b = milvus::client::ClientBuilder::new(self.endpoint.clone());
        if let Some(u) = &self.user {
            b = b
                .username(u)
                .password(self.password.as_deref().unwrap_or_default());
        }
        let client = b.build().await.map_err(|e| fail(e.to_string()))?;
        client
            .list_collections()
            .await
            .map_err(|e| fail(e.to_string()))
    }

    /// Creates the collection, its index, and loads it; on a failure after the collection was
    /// created it is dropped again, so that create is all or nothing.
    pub async fn create(&self, config: &CollectionConfig) -> Result<(), StoreError> {
        let name = config.name.as_str();
        let index = schema::index_param(config)?;
        let req = sdk::CreateCollectionRequest::builder()
            .collection_name(name)
            .schema(schema::schema(config))
            .consistency_level(sdk::ConsistencyLevel::Strong)
            .properties(HashMap::from([(
                schema::CONFIG_PROPERTY.to_string(),
                schema::encode_config(config),
            )]))
            .build()
            .map_err(|e| self.error(e, name))?;
        self.retry("create_collection", || {
            self.client.create_collection(req.clone())
        })
        .await
        .map_err(|e| self.error(e, name))?;
        let finish = async {
            // Not synchronous: the SDK's wait for the index polls through AllocTimestamp, which
            // Milvus Lite does not implement. Loading below waits for the index anyway, since a
            // collection only reports Loaded once its index serves searches.
            let req = sdk::CreateIndexRequest::builder()
                .collection_name(name)
                .index_param(index)
                .sync(false)
                .build()
                .map_err(|e| self.error(e, name))?;
            self.retry("create_index", || self.client.create_index(req.clone()))
                .await
                .map_err(|e| self.error(e, name))?;
            self.load(name).await
        };
        if let Err(e) = finish.await {
            if let Err(cleanup) = self.drop(name).await {
                tracing::warn!(%cleanup, "could not drop half-created Milvus collection {name}");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Loads the collection and waits until Milvus reports it loaded.
    ///
    /// The request itself is asynchronous and the wait polls `GetLoadState`, because the SDK's
    /// own synchronous wait polls `GetLoadingProgress` in a way Milvus Lite answers with
    /// Unimplemented; `GetLoadState` is served by Lite and by the standalone server alike.
    pub async fn load(&self, name: &str) -> Result<(), StoreError> {
        let req = sdk::LoadCollectionRequest::builder()
            .collection_name(name)
            .sync(false)
            .build()
            .map_err(|e| self.error(e, name))?;
        self.retry("load_collection", || {
            self.client.load_collection(req.clone())
        })
        .await
        .map_err(|e| self.error(e, name))?;
        let state_req = sdk::GetLoadStateRequest::builder()
            .collection_name(name)
            .build()
            .map_err(|e| self.error(e, name))?;
        let deadline = std::time::Instant::now() + LOAD_TIMEOUT;
        let mut pause = Duration::from_millis(20);
        loop {
            let state = self
                .retry("get_load_state", || {
                    self.client.get_load_state(state_req.clone())
                })
                .await
                .map_err(|e| self.error(e, name))?
                .state();
            match state {
                sdk::LoadState::Loaded => return Ok(()),
                sdk::LoadState::NotExist => {
                    return Err(StoreError::UnknownCollection {
                        name: name.to_string(),
                    })
                }
                _ if std::time::Instant::now() >= deadline => {
                    return Err(StoreError::Unreachable {
                        url: self.url.clone(),
                        reason: format!(
                            "collection {name} was not loaded after {}s (state {state:?})",
                            LOAD_TIMEOUT.as_secs()
                        ),
                    })
                }
                _ => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    pub async fn drop(&self, name: &str) -> Result<(), StoreError> {
        let req = sdk::DropCollectionRequest::builder()
            .collection_name(name)
            .build()
            .map_err(|e| self.error(e, name))?;
        self.retry("drop_collection", || {
            self.client.drop_collection(req.clone())
        })
        .await
        .map_err(|e| self.error(e, name))
    }

    /// One upsert call; Ok once Milvus acknowledged it (and flushed it when asked to).
    pub async fn upsert(&self, name: &str, points: &[Point]) -> Result<(), StoreError> {
        let insert = sdk::InsertRequest::builder()
            .collection_name(name)
            .columns(schema::columns(points))
            .build()
            .map_err(|e| self.error(e, name))?;
        let req = sdk::UpsertRequest::builder()
            .insert(insert)
            .build()
            .map_err(|e| self.error(e, name))?;
        let resp = self
            .retry("upsert", || self.client.upsert(req.clone()))
            .await
            .map_err(|e| self.error(e, name))?;
        if resp.upsert_count() != points.len() as i64 {
            return Err(StoreError::Rejected {
                reason: format!(
                    "Milvus acknowledged {} of {} upserted rows",
                    resp.upsert_count(),
                    points.len()
                ),
            });
        }
        self.maybe_flush(name).await
    }

    pub async fn delete(&self, name: &str, ids: &[i64]) -> Result<(), StoreError> {
        let req = sdk::DeleteRequest::builder()
            .collection_name(name)
            .filter(schema::id_list_filter(ids))
            .build()
            .map_err(|e| self.error(e, name))?;
        self.retry("delete", || self.client.delete(req.clone()))
            .await
            .map_err(|e| self.error(e, name))?;
        self.maybe_flush(name).await
    }

    async fn maybe_flush(&self, name: &str) -> Result<(), StoreError> {
        if !self.flush {
            return Ok(());
        }
        let req = sdk::FlushRequest::builder()
            .collection_names([name])
            .build()
            .map_err(|e| self.error(e, name))?;
        self.retry("flush", || self.client.flush(req.clone()))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e, name))
    }

    /// A query returning points (`id`, `vector`, `metadata`).
    pub async fn query_points(
        &self,
        name: &str,
        filter: String,
        limit: Option<usize>,
        ascending_ids: bool,
    ) -> Result<Vec<Point>, StoreError> {
        let mut b = sdk::QueryRequest::builder()
            .collection_name(name)
            .filter(filter)
            .output_fields([ID, VECTOR, METADATA])
            .consistency_level(sdk::ConsistencyLevel::Strong);
        if let Some(limit) = limit {
            b = b.limit(limit as i64);
        }
        if ascending_ids {
            // Iterator mode makes Milvus return the smallest matching primary keys in order,
            // which is what paging by `id > last` needs (plain limited queries return any rows).
            b = b.extra_params(HashMap::from([("iterator".into(), "true".into())]));
        }
        let req = b.build().map_err(|e| self.error(e, name))?;
        let resp = self
            .read(name, "query", || self.client.query(req.clone()))
            .await?;
        schema::points_from_columns(resp.results().get_output_fields())
    }

    pub async fn count(&self, name: &str) -> Result<u64, StoreError> {
        let req = sdk::QueryRequest::builder()
            .collection_name(name)
            .filter("")
            .output_fields(["count(*)"])
            .consistency_level(sdk::ConsistencyLevel::Strong)
            .build()
            .map_err(|e| self.error(e, name))?;
        let resp = self
            .read(name, "count", || self.client.query(req.clone()))
            .await?;
        for f in resp.results().get_output_fields() {
            if let sdk::FieldData::Int64 { values, .. } = f {
                if let Some(&n) = values.first() {
                    return Ok(n.max(0) as u64);
                }
            }
        }
        Err(StoreError::Rejected {
            reason: format!("Milvus at {} returned no count(*)", self.url),
        })
    }

    /// A search for one query vector; returns `(id, raw score, metadata)` in Milvus' order.
    pub async fn search(
        &self,
        name: &str,
        query: Vec<f32>,
        k: usize,
        filter: Option<String>,
        params: HashMap<String, String>,
        with_metadata: bool,
    ) -> Result<Vec<(u64, f32, Option<serde_json::Value>)>, StoreError> {
        let mut b = sdk::SearchRequest::builder()
            .collection_name(name)
            .vector_field(VECTOR)
            .vectors(sdk::SearchVectors::Float(vec![query]))
            .limit(k as i64)
            .extra_params(params)
            .consistency_level(sdk::ConsistencyLevel::Strong);
        if let Some(f) = filter {
            b = b.filter(f);
        }
        if with_metadata {
            b = b.output_fields([METADATA]);
        }
        let req = b.build().map_err(|e| self.error(e, name))?;
        let resp = self
            .read(name, "search", || self.client.search(req.clone()))
            .await?;
        let Some(result) = resp.results().get_results().first() else {
            return Ok(Vec::new());
        };
        let ids = match result.get_ids() {
            sdk::Ids::Int64(v) => v.clone(),
            _ => {
                return Err(StoreError::Rejected {
                    reason: format!("collection {name} has string ids; it is not imgsearch's"),
                })
            }
        };
        let scores = result.get_scores();
        let metadata = result.get_output_fields().iter().find_map(|f| match f {
            sdk::FieldData::Json { name, values } if name == METADATA => Some(values),
            _ => None,
        });
        if scores.len() != ids.len() || metadata.is_some_and(|m| m.len() != ids.len()) {
            return Err(StoreError::Rejected {
                reason: "Milvus returned search columns of different lengths".into(),
            });
        }
        Ok(ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id as u64, scores[i], metadata.map(|m| m[i].clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn transient_failures_are_retried_a_bounded_number_of_times() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = run(retry_with("test", Duration::from_millis(1), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(sdk::Error::Timeout("slow".into())) }
        }));
        assert!(matches!(out, Err(sdk::Error::Timeout(_))));
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }

    #[test]
    fn a_transient_failure_then_success_succeeds() {
        let calls = AtomicU32::new(0);
        let out = run(retry_with("test", Duration::from_millis(1), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(sdk::Error::Timeout("slow".into()))
                } else {
                    Ok(n)
                }
            }
        }));
        assert_eq!(out.unwrap(), 2);
    }

    #[test]
    fn other_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = run(retry_with("test", Duration::from_millis(1), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(sdk::Error::Unexpected("bad request".into())) }
        }));
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
