//! The default store: the embedded `vecdb` database in a local folder.

use std::collections::HashMap;
use std::path::Path;

use parking_lot::RwLock;
use vecdb::{Collection, CollectionConfig, Database, Hit, Point, SearchRequest, VecDbError};

use super::{StoreError, VectorStore};

/// A `vecdb::Database` behind the [`VectorStore`] trait.
///
/// Collection handles are cached because opening one by name on every call would repeat a lookup
/// the hot search path does not need; the cache is cleared for a name when it is dropped.
pub struct EmbeddedStore {
    db: Database,
    handles: RwLock<HashMap<String, Collection>>,
}

impl EmbeddedStore {
    /// Opens (creating if missing) the database in `dir`.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        Ok(EmbeddedStore {
            db: Database::open(dir)?,
            handles: RwLock::new(HashMap::new()),
        })
    }

    /// The underlying database, for callers that need vecdb features the trait does not expose.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn collection(&self, name: &str) -> Result<Collection, StoreError> {
        if let Some(c) = self.handles.read().get(name) {
            return Ok(c.clone());
        }
        let c = self.db.collection(name).map_err(map_unknown)?;
        self.handles.write().insert(name.to_string(), c.clone());
        Ok(c)
    }
}

/// The trait reports a missing collection the same way for every implementation.
fn map_unknown(e: VecDbError) -> StoreError {
    match e {
        VecDbError::UnknownCollection { name } => StoreError::UnknownCollection { name },
        other => StoreError::VecDb(other),
    }
}

impl VectorStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn create_collection(&self, config: &CollectionConfig) -> Result<(), StoreError> {
        let c = self.db.create_collection(config.clone())?;
        self.handles.write().insert(config.name.clone(), c);
        Ok(())
    }

    fn list_collections(&self) -> Result<Vec<CollectionConfig>, StoreError> {
        Ok(self.db.list_collections()?)
    }

    fn collection_info(&self, name: &str) -> Result<Option<CollectionConfig>, StoreError> {
        match self.collection(name) {
            Ok(c) => Ok(Some(c.config().clone())),
            Err(StoreError::UnknownCollection { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn drop_collection(&self, name: &str) -> Result<(), StoreError> {
        self.handles.write().remove(name);
        self.db.drop_collection(name).map_err(map_unknown)
    }

    fn upsert(&self, name: &str, points: &[Point]) -> Result<(), StoreError> {
        Ok(self.collection(name)?.upsert(points)?)
    }

    fn delete(&self, name: &str, ids: &[u64]) -> Result<(), StoreError> {
        self.collection(name)?.delete(ids)?;
        Ok(())
    }

    fn get(&self, name: &str, ids: &[u64]) -> Result<Vec<Point>, StoreError> {
        Ok(self.collection(name)?.get(ids)?)
    }

    fn count(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.collection(name)?.count() as u64)
    }

    fn search(
        &self,
        name: &str,
        query: &[f32],
        req: &SearchRequest,
    ) -> Result<Vec<Hit>, StoreError> {
        Ok(self.collection(name)?.search(query, req)?)
    }

    fn scan(&self, name: &str, after: Option<u64>, limit: usize) -> Result<Vec<Point>, StoreError> {
        Ok(self.collection(name)?.scan(after, limit)?)
    }

    fn storage_stats(&self, name: &str) -> Result<Option<vecdb::CollectionStats>, StoreError> {
        Ok(Some(self.collection(name)?.stats()?))
    }

    fn save(&self) -> Result<(), StoreError> {
        let open: Vec<Collection> = self.handles.read().values().cloned().collect();
        for c in open {
            c.save_index()?;
        }
        Ok(())
    }
}
