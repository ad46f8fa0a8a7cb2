//! The durable catalog of indexed files: what was indexed, from which bytes, under which id.
//!
//! It lives in `data_dir/catalog.redb` (redb: crash-safe, checksummed pages). Layout:
//!
//! | table                | key          | value                                        |
//! |----------------------|--------------|----------------------------------------------|
//! | `meta`               | `"magic"`    | `b"IMGSCATL"`                                |
//! | `meta`               | `"format_version"` | u32 little-endian, [`FORMAT_VERSION`]  |
//! | `meta`               | `"model@<collection>"` | model id that made the vectors (UTF-8) |
//! | `meta`               | `"next_id@<collection>"` | next point id, u64 little-endian    |
//! | `files@<collection>` | absolute path | crc32 (u32 LE) of the JSON, then the JSON [`FileRecord`] |
//! | `ids@<collection>`   | point id     | absolute path                                |
//! | `pending@<collection>` | point id   | path whose new point may be in the store but not yet here |
//!
//! Ids of new files are reserved in `pending` (one transaction) before their points are sent to
//! the store, and the records are written (another transaction) after the store acknowledged
//! them. A crash in between leaves ids in `pending` that no record owns; [`Catalog::orphans`]
//! lists them so the engine can delete those points from the store before the next run, which
//! makes an interrupted ingest resume without leaving stray vectors behind.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The catalog's tables, open in one write transaction.
struct WriteTables<'t> {
    files: redb::Table<'t, &'static str, &'static [u8]>,
    ids: redb::Table<'t, u64, &'static str>,
    pending: redb::Table<'t, u64, &'static str>,
}

const MAGIC: &[u8] = b"IMGSCATL";
/// Version of the catalog layout above; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// What the catalog knows about one indexed file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub id: u64,
    pub path: String,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (change detection needs sub-second).
    pub mtime_ns: i64,
    /// blake3 of the file's bytes, hex.
    pub hash: String,
    pub width: u32,
    pub height: u32,
    pub taken: Option<String>,
    /// Auto-tags from the model's classifier head, best first: (name, score).
    pub tags: Vec<(String, f32)>,
}

/// The catalog of one collection inside `catalog.redb`.
pub struct Catalog {
    db: Database,
    path: PathBuf,
    files: String,
    ids: String,
    pending: String,
    model_key: String,
    next_key: String,
}

impl Catalog {
    /// Opens or creates the catalog file and checks its magic number and format version.
    pub fn open(path: &Path, collection: &str) -> Result<Catalog, EngineError> {
        let err = |e: String| EngineError::Catalog {
            path: path.to_path_buf(),
            reason: e,
        };
        let db = Database::create(path).map_err(|e| err(e.to_string()))?;
        let cat = Catalog {
            db,
            path: path.to_path_buf(),
            files: format!("files@{collection}"),
            ids: format!("ids@{collection}"),
            pending: format!("pending@{collection}"),
            model_key: format!("model@{collection}"),
            next_key: format!("next_id@{collection}"),
        };
        cat.init()?;
        Ok(cat)
    }

    fn err(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::Catalog {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn files_def(&self) -> TableDefinition<'_, &'static str, &'static [u8]> {
        TableDefinition::new(&self.files)
    }
    fn ids_def(&self) -> TableDefinition<'_, u64, &'static str> {
        TableDefinition::new(&self.ids)
    }
    fn pending_def(&self) -> TableDefinition<'_, u64, &'static str> {
        TableDefinition::new(&self.pending)
    }

    /// Writes the header on a new file, validates it on an existing one, and creates the tables
    /// so that read transactions never meet a missing table.
    fn init(&self) -> Result<(), EngineError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let magic = meta
                .get("magic")
                .map_err(|e| self.err(e))?
                .map(|g| g.value().to_vec());
            match magic {
                None => {
                    meta.insert("magic", MAGIC).map_err(|e| self.err(e))?;
                    let v = FORMAT_VERSION.to_le_bytes();
                    meta.insert("format_version", v.as_slice())
                        .map_err(|e| self.err(e))?;
                }
                Some(m) if m != MAGIC => {
                    return Err(self.err("not an imgsearch catalog (bad magic)"))
                }
                Some(_) => {
                    let v = meta.get("format_version").map_err(|e| self.err(e))?;
                    let v = v.map(|g| g.value().to_vec()).unwrap_or_default();
                    let found = u32::from_le_bytes(v.try_into().unwrap_or([0xff; 4]));
                    if found != FORMAT_VERSION {
                        return Err(self.err(format!(
                            "format version {found}, this build reads version {FORMAT_VERSION}"
                        )));
                    }
                }
            }
            txn.open_table(self.files_def()).map_err(|e| self.err(e))?;
            txn.open_table(self.ids_def()).map_err(|e| self.err(e))?;
            txn.open_table(self.pending_def())
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn encode(&self, rec: &FileRecord) -> Result<Vec<u8>, EngineError> {
        let json = serde_json::to_vec(rec).map_err(|e| self.err(e))?;
        let mut out = crc32fast::hash(&json).to_le_bytes().to_vec();
        out.extend_from_slice(&json);
        Ok(out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<FileRecord, EngineError> {
        if bytes.len() < 4 {
            return Err(self.err("truncated file record"));
        }
        let (crc, json) = bytes.split_at(4);
        let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(json) != want {
            return Err(self.err("file record checksum mismatch"));
        }
        serde_json::from_slice(json).map_err(|e| self.err(format!("bad file record: {e}")))
    }

    /// The model id recorded for this collection, if any vectors were written.
    pub fn model(&self) -> Result<Option<String>, EngineError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let v = meta.get(self.model_key.as_str()).map_err(|e| self.err(e))?;
        Ok(v.map(|g| String::from_utf8_lossy(g.value()).into_owned()))
    }

    /// Records the model id and the next free id (used when the collection is first set up).
    pub fn set_model(&self, model: &str, next_id: u64) -> Result<(), EngineError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(self.model_key.as_str(), model.as_bytes())
                .map_err(|e| self.err(e))?;
            let next = next_id.to_le_bytes();
            meta.insert(self.next_key.as_str(), next.as_slice())
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Reserves `paths.len()` fresh ids, recording them as pending (see the module docs).
    pub fn reserve_ids(&self, paths: &[&str]) -> Result<Vec<u64>, EngineError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let ids = {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let next = meta.get(self.next_key.as_str()).map_err(|e| self.err(e))?;
            let next = next
                .map(|g| g.value().to_vec())
                .and_then(|v| v.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(1);
            let ids: Vec<u64> = (next..next + paths.len() as u64).collect();
            let after = (next + paths.len() as u64).to_le_bytes();
            meta.insert(self.next_key.as_str(), after.as_slice())
                .map_err(|e| self.err(e))?;
            let mut pending = txn
                .open_table(self.pending_def())
                .map_err(|e| self.err(e))?;
            for (id, p) in ids.iter().zip(paths) {
                pending.insert(*id, *p).map_err(|e| self.err(e))?;
            }
            ids
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// Runs `f` on the three tables in one write transaction and commits it.
    fn write(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = WriteTables {
                files: txn.open_table(self.files_def()).map_err(|e| self.err(e))?,
                ids: txn.open_table(self.ids_def()).map_err(|e| self.err(e))?,
                pending: txn
                    .open_table(self.pending_def())
                    .map_err(|e| self.err(e))?,
            };
            f(&mut t)?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Writes (or replaces) records and clears their pending reservations, in one transaction.
    pub fn put(&self, records: &[FileRecord]) -> Result<(), EngineError> {
        self.write(|t| {
            for rec in records {
                let bytes = self.encode(rec)?;
                t.files
                    .insert(rec.path.as_str(), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
                t.ids
                    .insert(rec.id, rec.path.as_str())
                    .map_err(|e| self.err(e))?;
                t.pending.remove(rec.id).map_err(|e| self.err(e))?;
            }
            Ok(())
        })
    }

    /// Removes records by id (and any pending reservation of those ids).
    pub fn remove(&self, remove_ids: &[u64]) -> Result<(), EngineError> {
        self.write(|t| {
            for id in remove_ids {
                let path = t.ids.remove(*id).map_err(|e| self.err(e))?;
                if let Some(path) = path {
                    t.files.remove(path.value()).map_err(|e| self.err(e))?;
                }
                t.pending.remove(*id).map_err(|e| self.err(e))?;
            }
            Ok(())
        })
    }

    /// Reserved ids that no record owns: left by an interrupted ingest.
    pub fn orphans(&self) -> Result<Vec<u64>, EngineError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let pending = txn
            .open_table(self.pending_def())
            .map_err(|e| self.err(e))?;
        let ids = txn.open_table(self.ids_def()).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in pending.iter().map_err(|e| self.err(e))? {
            let (id, _) = entry.map_err(|e| self.err(e))?;
            if ids.get(id.value()).map_err(|e| self.err(e))?.is_none() {
                out.push(id.value());
            }
        }
        Ok(out)
    }

    /// Forgets pending reservations once their points are gone from the store.
    pub fn clear_pending(&self, clear: &[u64]) -> Result<(), EngineError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut pending = txn
                .open_table(self.pending_def())
                .map_err(|e| self.err(e))?;
            for id in clear {
                pending.remove(*id).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The record of a file, by absolute path.
    pub fn by_path(&self, path: &str) -> Result<Option<FileRecord>, EngineError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let files = txn.open_table(self.files_def()).map_err(|e| self.err(e))?;
        let v = files.get(path).map_err(|e| self.err(e))?;
        v.map(|g| self.decode(g.value())).transpose()
    }

    /// The record of a file, by point id.
    pub fn by_id(&self, id: u64) -> Result<Option<FileRecord>, EngineError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let ids = txn.open_table(self.ids_def()).map_err(|e| self.err(e))?;
        let files = txn.open_table(self.files_def()).map_err(|e| self.err(e))?;
        let Some(path) = ids.get(id).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let v = files.get(path.value()).map_err(|e| self.err(e))?;
        v.map(|g| self.decode(g.value())).transpose()
    }

    /// Calls `f` on every record, in path order, from one consistent snapshot.
    pub fn for_each(&self, f: &mut dyn FnMut(FileRecord)) -> Result<(), EngineError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let files = txn.open_table(self.files_def()).map_err(|e| self.err(e))?;
        for entry in files.iter().map_err(|e| self.err(e))? {
            let (_, v) = entry.map_err(|e| self.err(e))?;
            f(self.decode(v.value())?);
        }
        Ok(())
    }

    /// Number of indexed files.
    pub fn len(&self) -> Result<u64, EngineError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let files = txn.open_table(self.files_def()).map_err(|e| self.err(e))?;
        files.len().map_err(|e| self.err(e))
    }

    /// Whether no file is indexed.
    pub fn is_empty(&self) -> Result<bool, EngineError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, path: &str) -> FileRecord {
        FileRecord {
            id,
            path: path.into(),
            size: 10,
            mtime_ns: 5,
            hash: "ab".into(),
            width: 2,
            height: 3,
            taken: None,
            tags: vec![("daisy".into(), 0.9)],
        }
    }

    #[test]
    fn records_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.redb");
        {
            let cat = Catalog::open(&path, "images").unwrap();
            assert_eq!(cat.model().unwrap(), None);
            cat.set_model("m@1", 1).unwrap();
            let ids = cat.reserve_ids(&["/a.jpg", "/b.jpg"]).unwrap();
            assert_eq!(ids, vec![1, 2]);
            cat.put(&[rec(1, "/a.jpg")]).unwrap();
            // Id 2 was reserved but never written: an orphan of an interrupted batch.
            assert_eq!(cat.orphans().unwrap(), vec![2]);
        }
        let cat = Catalog::open(&path, "images").unwrap();
        assert_eq!(cat.model().unwrap().as_deref(), Some("m@1"));
        assert_eq!(cat.by_path("/a.jpg").unwrap(), Some(rec(1, "/a.jpg")));
        assert_eq!(cat.by_id(1).unwrap(), Some(rec(1, "/a.jpg")));
        assert_eq!(
            cat.reserve_ids(&["/c.jpg"]).unwrap(),
            vec![3],
            "ids never reused"
        );
        cat.clear_pending(&[2, 3]).unwrap();
        assert!(cat.orphans().unwrap().is_empty());
        cat.remove(&[1]).unwrap();
        assert_eq!(cat.by_path("/a.jpg").unwrap(), None);
        assert!(cat.is_empty().unwrap());
        // Another collection in the same file is independent (one handle per file at a time).
        drop(cat);
        let other = Catalog::open(&path, "other").unwrap();
        assert_eq!(other.model().unwrap(), None);
    }

    #[test]
    fn rejects_foreign_or_newer_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.redb");
        drop(Catalog::open(&path, "images").unwrap());
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("format_version", 99u32.to_le_bytes().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let e = Catalog::open(&path, "images")
            .err()
            .expect("newer version rejected");
        assert!(e.to_string().contains("format version 99"), "{e}");
        std::fs::write(&path, b"not a database at all").unwrap();
        assert!(Catalog::open(&path, "images").is_err());
    }
}
