//! Raw collections of vectors beside the image index: the use cases behind the Milvus-shaped
//! vector API, so that the server only maps errors and shapes JSON.
//!
//! Everything goes through the engine's store, so it works the same on the embedded store and
//! on Milvus. The collection that holds the image index may be read here but not written:
//! points written behind the engine's back would disagree with its catalog.

use vecdb::{CollectionConfig, Hit, Metric, Point, SearchRequest, VecDbError};

use crate::store::StoreError;
use crate::{Engine, EngineError};

/// A collection's settings and size, as the vector API lists them.
#[derive(Debug, Clone)]
pub struct CollectionInfo {
    pub config: CollectionConfig,
    pub count: u64,
    /// True for the collection that holds the image index (read-only here).
    pub images: bool,
}

/// The raw collections of an engine; see [`Engine::collections`].
pub struct Collections<'a> {
    engine: &'a Engine,
}

impl Engine {
    /// The raw collections facade (the HTTP vector API's use cases).
    pub fn collections(&self) -> Collections<'_> {
        Collections { engine: self }
    }
}

impl Collections<'_> {
    fn describe(&self, config: CollectionConfig) -> Result<CollectionInfo, EngineError> {
        let count = self.engine.store.count(&config.name)?;
        let images = self.engine.collection.name == config.name;
        Ok(CollectionInfo {
            config,
            count,
            images,
        })
    }

    /// The configuration of an existing collection; a bad name is refused before any store
    /// work, whichever store is behind.
    pub fn config(&self, name: &str) -> Result<CollectionConfig, EngineError> {
        vecdb::config::validate_name(name).map_err(StoreError::from)?;
        self.engine.store.collection_info(name)?.ok_or_else(|| {
            StoreError::UnknownCollection {
                name: name.to_string(),
            }
            .into()
        })
    }

    /// An existing collection that this facade may write.
    fn writable(&self, name: &str) -> Result<CollectionConfig, EngineError> {
        let config = self.config(name)?;
        if self.engine.collection.name == name {
            return Err(EngineError::ReadOnlyCollection {
                name: name.to_string(),
            });
        }
        Ok(config)
    }

    /// Creates a collection after checking its name, dimension and index parameters.
    pub fn create(&self, config: CollectionConfig) -> Result<CollectionInfo, EngineError> {
        config.validate().map_err(StoreError::from)?;
        self.engine.store.create_collection(&config)?;
        self.describe(config)
    }

    /// Every collection, the image index's included.
    pub fn list(&self) -> Result<Vec<CollectionInfo>, EngineError> {
        let configs = self.engine.store.list_collections()?;
        configs.into_iter().map(|c| self.describe(c)).collect()
    }

    /// One collection.
    pub fn info(&self, name: &str) -> Result<CollectionInfo, EngineError> {
        let config = self.config(name)?;
        self.describe(config)
    }

    /// Drops a collection and its points.
    pub fn drop(&self, name: &str) -> Result<(), EngineError> {
        self.writable(name)?;
        Ok(self.engine.store.drop_collection(name)?)
    }

    /// Adds or replaces points, all or nothing.
    pub fn upsert(&self, name: &str, points: &[Point]) -> Result<(), EngineError> {
        let config = self.writable(name)?;
        check_dims(&config, points.iter().map(|p| p.vector.len()))?;
        Ok(self.engine.store.upsert(name, points)?)
    }

    /// The nearest points to each query. A caller may restate the collection's metric (as
    /// Milvus clients do) but not change it: the index was built for one metric.
    pub fn search(
        &self,
        name: &str,
        queries: &[Vec<f32>],
        req: &SearchRequest,
        metric: Option<Metric>,
    ) -> Result<Vec<Vec<Hit>>, EngineError> {
        let config = self.config(name)?;
        if let Some(asked) = metric.filter(|m| *m != config.metric) {
            return Err(StoreError::from(VecDbError::InvalidParameter {
                name: "metric_type".into(),
                reason: format!("the collection uses {:?}, not {asked:?}", config.metric),
            })
            .into());
        }
        check_dims(&config, queries.iter().map(Vec::len))?;
        queries
            .iter()
            .map(|q| Ok(self.engine.store.search(name, q, req)?))
            .collect()
    }

    /// Deletes points by id; returns how many of them existed.
    pub fn delete(&self, name: &str, ids: &[u64]) -> Result<usize, EngineError> {
        self.writable(name)?;
        // The store's delete does not say how many ids it found, so count them first.
        let present = self.engine.store.get(name, ids)?.len();
        self.engine.store.delete(name, ids)?;
        Ok(present)
    }

    /// Points by id; unknown ids are skipped.
    pub fn get(&self, name: &str, ids: &[u64]) -> Result<Vec<Point>, EngineError> {
        self.config(name)?;
        Ok(self.engine.store.get(name, ids)?)
    }
}

/// Refuses the first vector whose length is not the collection's dimension, before any store
/// work.
fn check_dims(
    config: &CollectionConfig,
    lens: impl IntoIterator<Item = usize>,
) -> Result<(), EngineError> {
    match lens.into_iter().find(|&n| n != config.dim) {
        Some(got) => Err(StoreError::from(VecDbError::WrongDimension {
            expected: config.dim,
            got,
        })
        .into()),
        None => Ok(()),
    }
}
