//! The database: a directory with one sub-directory per collection.
//!
//! Layout: `<dir>/<name>/points.redb` (source of truth for points and their slots),
//! `<dir>/<name>/vectors.bin` (the vectors, memory-mapped) and `<dir>/<name>/index.snap`
//! (derived).
//! One redb file per collection keeps collections independent: a drop is a directory removal,
//! a writer in one collection never waits for another's commit, and damage to one file touches
//! one collection only.
//!
//! Creation and removal are atomic through renames: a collection is built in
//! `<dir>/.creating-<name>` and renamed into place; a drop renames it to `<dir>/.dropping-<name>`
//! before deleting it. Leftover hidden directories from a crash are removed on open. Collection
//! names cannot start with a dot, so hidden directories never collide with them.
//!
//! Open collections are cached: `collection(name)` returns handles to one shared state, since a
//! redb file can be open only once per process.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use crate::collection::{Collection, POINTS_FILE, VECTORS_FILE};
use crate::config::{validate_name, CollectionConfig};
use crate::error::VecDbError;
use crate::storage::points::PointStore;
use crate::storage::snapshot::sync_dir;
use crate::storage::vectors::VectorFile;

const CREATING_PREFIX: &str = ".creating-";
const DROPPING_PREFIX: &str = ".dropping-";

/// An embedded vector database rooted at a directory. `Send + Sync`.
#[derive(Debug)]
pub struct Database {
    dir: PathBuf,
    open: Mutex<HashMap<String, Collection>>,
}

impl Database {
    /// Opens (creating it if missing) the database directory and cleans up after interrupted
    /// creates and drops. Collections are opened lazily by [`Database::collection`].
    pub fn open(dir: &Path) -> Result<Database, VecDbError> {
        fs::create_dir_all(dir).map_err(|e| VecDbError::io(dir, e))?;
        for entry in fs::read_dir(dir).map_err(|e| VecDbError::io(dir, e))? {
            let entry = entry.map_err(|e| VecDbError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(CREATING_PREFIX) || name.starts_with(DROPPING_PREFIX) {
                tracing::info!(dir = %entry.path().display(), "removing leftover work directory");
                fs::remove_dir_all(entry.path()).map_err(|e| VecDbError::io(entry.path(), e))?;
            }
        }
        Ok(Database {
            dir: dir.to_path_buf(),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates an empty collection. Durable when it returns `Ok`.
    pub fn create_collection(&self, config: CollectionConfig) -> Result<Collection, VecDbError> {
        config.validate()?;
        let mut open = self.open.lock();
        let final_dir = self.dir.join(&config.name);
        if open.contains_key(&config.name) || final_dir.exists() {
            return Err(VecDbError::CollectionExists { name: config.name });
        }
        let work = self.dir.join(format!("{CREATING_PREFIX}{}", config.name));
        if work.exists() {
            fs::remove_dir_all(&work).map_err(|e| VecDbError::io(&work, e))?;
        }
        fs::create_dir(&work).map_err(|e| VecDbError::io(&work, e))?;
        drop(PointStore::create(&work.join(POINTS_FILE), &config)?);
        drop(VectorFile::create(&work.join(VECTORS_FILE), config.dim)?);
        sync_dir(&work)?;
        fs::rename(&work, &final_dir).map_err(|e| VecDbError::io(&final_dir, e))?;
        sync_dir(&self.dir)?;
        let collection = Collection::open(&final_dir)?;
        open.insert(config.name.clone(), collection.clone());
        Ok(collection)
    }

    /// A handle to an existing collection, opening it on first use (which loads its points and
    /// restores or rebuilds its index).
    pub fn collection(&self, name: &str) -> Result<Collection, VecDbError> {
        validate_name(name).map_err(|_| unknown(name))?;
        let mut open = self.open.lock();
        if let Some(c) = open.get(name) {
            return Ok(c.clone());
        }
        let dir = self.dir.join(name);
        if !dir.join(POINTS_FILE).is_file() {
            return Err(unknown(name));
        }
        let collection = Collection::open(&dir)?;
        open.insert(name.to_string(), collection.clone());
        Ok(collection)
    }

    /// The configs of all collections, sorted by name.
    pub fn list_collections(&self) -> Result<Vec<CollectionConfig>, VecDbError> {
        let open = self.open.lock();
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| VecDbError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| VecDbError::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_err() || !entry.path().join(POINTS_FILE).is_file() {
                continue;
            }
            match open.get(&name) {
                Some(c) => out.push(c.config().clone()),
                None => out.push(PointStore::read_config_of(&entry.path().join(POINTS_FILE))?),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes a collection and its files. Handles still held elsewhere fail with
    /// `UnknownCollection` from then on. Durable when it returns `Ok`.
    pub fn drop_collection(&self, name: &str) -> Result<(), VecDbError> {
        validate_name(name).map_err(|_| unknown(name))?;
        let mut open = self.open.lock();
        let dir = self.dir.join(name);
        if !open.contains_key(name) && !dir.join(POINTS_FILE).is_file() {
            return Err(unknown(name));
        }
        if let Some(c) = open.remove(name) {
            // Wait for a running write to finish, then refuse all further calls.
            let _w = c.inner.writer.lock();
            c.inner.dropped.store(true, Ordering::Release);
        }
        let work = self.dir.join(format!("{DROPPING_PREFIX}{name}"));
        if work.exists() {
            fs::remove_dir_all(&work).map_err(|e| VecDbError::io(&work, e))?;
        }
        fs::rename(&dir, &work).map_err(|e| VecDbError::io(&dir, e))?;
        sync_dir(&self.dir)?;
        if let Err(e) = fs::remove_dir_all(&work) {
            // The rename already made the drop durable; the next open removes the rest.
            tracing::warn!(error = %e, dir = %work.display(), "could not remove dropped collection");
        }
        Ok(())
    }
}

fn unknown(name: &str) -> VecDbError {
    VecDbError::UnknownCollection {
        name: name.to_string(),
    }
}
