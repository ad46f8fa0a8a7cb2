//! The durable point store: one redb file per collection, the source of truth for its points.
//!
//! Tables:
//! - `meta` (`&str -> &[u8]`): `config` holds the collection config as JSON wrapped with a format
//!   version (`{"format_version":1,"config":{...}}`); `generation` holds a `u64` (little endian)
//!   incremented by every committed write, which ties derived index snapshots to a point set.
//! - `points` (`u64 -> &[u8]`): one record per point, encoded by [`encode_record`].
//!
//! Durability contract: every method that writes commits one redb transaction with
//! `Durability::Immediate`, so when it returns `Ok` the change survives a process kill or power
//! loss (redb fsyncs before returning and checksums its pages); when it returns `Err` nothing
//! of that call is visible. redb's own page checksums protect the records, so records carry only a
//! version byte.

use std::path::{Path, PathBuf};

use redb::{Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::CollectionConfig;
use crate::error::VecDbError;
use crate::Point;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const POINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("points");

/// Version of the `config` entry's wrapper; bump when the stored config changes shape.
pub const CONFIG_FORMAT_VERSION: u32 = 1;
/// Version byte at the start of each point record.
pub const RECORD_VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct StoredConfig {
    format_version: u32,
    config: CollectionConfig,
}

/// One change in a write batch.
pub(crate) enum Change<'a> {
    Put {
        id: u64,
        vector: &'a [f32],
        metadata: &'a Value,
    },
    Delete(u64),
}

/// A collection's redb file.
pub(crate) struct PointStore {
    db: redb::Database,
    path: PathBuf,
}

impl PointStore {
    /// Creates a new store at `path` holding `config` and no points, in one durable commit.
    pub(crate) fn create(path: &Path, config: &CollectionConfig) -> Result<Self, VecDbError> {
        let db = redb::Database::create(path)?;
        let stored = StoredConfig {
            format_version: CONFIG_FORMAT_VERSION,
            config: config.clone(),
        };
        let json = serde_json::to_vec(&stored).expect("config serialises");
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::Immediate);
        {
            let mut meta = tx.open_table(META)?;
            meta.insert("config", json.as_slice())?;
            meta.insert("generation", 0u64.to_le_bytes().as_slice())?;
            tx.open_table(POINTS)?;
        }
        tx.commit()?;
        Ok(PointStore {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing store and returns it with its config.
    pub(crate) fn open(path: &Path) -> Result<(Self, CollectionConfig), VecDbError> {
        let db = redb::Database::open(path)?;
        let store = PointStore {
            db,
            path: path.to_path_buf(),
        };
        let config = store.read_config()?;
        Ok((store, config))
    }

    /// Reads just the config of a store that is not open, closing the file afterwards.
    pub(crate) fn read_config_of(path: &Path) -> Result<CollectionConfig, VecDbError> {
        Ok(PointStore::open(path)?.1)
    }

    fn corrupt(&self, reason: impl Into<String>) -> VecDbError {
        VecDbError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn read_config(&self) -> Result<CollectionConfig, VecDbError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let raw = meta
            .get("config")?
            .ok_or_else(|| self.corrupt("no config entry"))?;
        let version: serde_json::Value = serde_json::from_slice(raw.value())
            .map_err(|e| self.corrupt(format!("config is not JSON: {e}")))?;
        let found = version
            .get("format_version")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.corrupt("config has no format_version"))?;
        if found > u64::from(CONFIG_FORMAT_VERSION) {
            return Err(VecDbError::UnsupportedVersion {
                path: self.path.clone(),
                found: found as u32,
                supported: CONFIG_FORMAT_VERSION,
            });
        }
        let stored: StoredConfig = serde_json::from_value(version)
            .map_err(|e| self.corrupt(format!("config does not decode: {e}")))?;
        Ok(stored.config)
    }

    /// The generation counter: how many write batches have been committed.
    pub(crate) fn generation(&self) -> Result<u64, VecDbError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let raw = meta
            .get("generation")?
            .ok_or_else(|| self.corrupt("no generation entry"))?;
        let bytes: [u8; 8] = raw
            .value()
            .try_into()
            .map_err(|_| self.corrupt("generation is not 8 bytes"))?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Applies `changes` in one durable transaction and bumps the generation; returns the new
    /// generation. Deleting a missing id is not an error.
    pub(crate) fn write(&self, changes: &[Change<'_>]) -> Result<u64, VecDbError> {
        let generation = self.generation()? + 1;
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate);
        {
            let mut points = tx.open_table(POINTS)?;
            let mut buf = Vec::new();
            for change in changes {
                match change {
                    Change::Put {
                        id,
                        vector,
                        metadata,
                    } => {
                        encode_record(vector, metadata, &mut buf);
                        points.insert(*id, buf.as_slice())?;
                    }
                    Change::Delete(id) => {
                        points.remove(*id)?;
                    }
                }
            }
            let mut meta = tx.open_table(META)?;
            meta.insert("generation", generation.to_le_bytes().as_slice())?;
        }
        tx.commit()?;
        Ok(generation)
    }

    /// The points with the given ids, in the order asked, skipping missing ids.
    pub(crate) fn get(&self, ids: &[u64]) -> Result<Vec<Point>, VecDbError> {
        let tx = self.db.begin_read()?;
        let points = tx.open_table(POINTS)?;
        let mut out = Vec::new();
        for &id in ids {
            if let Some(raw) = points.get(id)? {
                out.push(self.decode(id, raw.value())?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` points with ids greater than `after`, ascending.
    pub(crate) fn scan(&self, after: Option<u64>, limit: usize) -> Result<Vec<Point>, VecDbError> {
        let start = match after {
            None => 0,
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(a) => a + 1,
        };
        let tx = self.db.begin_read()?;
        let points = tx.open_table(POINTS)?;
        let mut out = Vec::new();
        for entry in points.range(start..)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = entry?;
            out.push(self.decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Calls `f` on every point in ascending id order, from one consistent read transaction, and
    /// returns the generation that transaction saw.
    pub(crate) fn for_each(
        &self,
        mut f: impl FnMut(Point) -> Result<(), VecDbError>,
    ) -> Result<u64, VecDbError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        let raw = meta
            .get("generation")?
            .ok_or_else(|| self.corrupt("no generation entry"))?;
        let bytes: [u8; 8] = raw
            .value()
            .try_into()
            .map_err(|_| self.corrupt("generation is not 8 bytes"))?;
        let points = tx.open_table(POINTS)?;
        for entry in points.iter()? {
            let (k, v) = entry?;
            f(self.decode(k.value(), v.value())?)?;
        }
        Ok(u64::from_le_bytes(bytes))
    }

    fn decode(&self, id: u64, raw: &[u8]) -> Result<Point, VecDbError> {
        decode_record(id, raw).map_err(|reason| self.corrupt(format!("point {id}: {reason}")))
    }
}

/// Encodes a point record: `[version u8][dim u32 LE][dim x f32 LE][metadata JSON]`.
pub(crate) fn encode_record(vector: &[f32], metadata: &Value, buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(RECORD_VERSION);
    buf.extend_from_slice(&(vector.len() as u32).to_le_bytes());
    for x in vector {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    serde_json::to_writer(&mut *buf, metadata).expect("JSON values serialise");
}

/// Decodes a record written by [`encode_record`].
pub(crate) fn decode_record(id: u64, raw: &[u8]) -> Result<Point, String> {
    let (&version, rest) = raw.split_first().ok_or("empty record")?;
    if version != RECORD_VERSION {
        return Err(format!("unknown record version {version}"));
    }
    if rest.len() < 4 {
        return Err("record too short".into());
    }
    let dim = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let body = &rest[4..];
    if body.len() < dim * 4 {
        return Err("record shorter than its vector".into());
    }
    let vector = body[..dim * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let metadata =
        serde_json::from_slice(&body[dim * 4..]).map_err(|e| format!("metadata: {e}"))?;
    Ok(Point {
        id,
        vector,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_round_trip_and_rejects_garbage() {
        let mut buf = Vec::new();
        encode_record(&[1.0, -2.5], &json!({"a":[1,2]}), &mut buf);
        let p = decode_record(7, &buf).unwrap();
        assert_eq!(p.vector, vec![1.0, -2.5]);
        assert_eq!(p.metadata, json!({"a":[1,2]}));
        assert!(decode_record(7, &buf[..6]).is_err());
        assert!(decode_record(7, &[]).is_err());
        let mut bad = buf.clone();
        bad[0] = 9;
        assert!(decode_record(7, &bad).is_err());
    }
}
