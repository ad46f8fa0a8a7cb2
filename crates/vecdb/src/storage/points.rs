//! The durable point store: one redb file per collection, the source of truth for its points.
//!
//! Tables:
//! - `meta` (`&str -> &[u8]`): `config` holds the collection config as JSON wrapped with a format
//!   version (`{"format_version":2,"config":{...}}`); `generation` holds a `u64` (little endian)
//!   incremented by every committed write, and `uid` a random `u64` drawn when the collection
//!   was created (or converted to format 2); together they tie derived index snapshots to one
//!   point set without reading the points.
//! - `points` (`u64 -> &[u8]`): one record per point, encoded by [`encode_record`]: the slot of
//!   the vector file holding the point's vector, that vector's CRC-32, the vector as inserted
//!   when it differs from the slot's (cosine collections store normalised vectors in slots),
//!   and the metadata. Format 1 records held the vector itself ([`decode_record_v1`], read
//!   only by the migration).
//!
//! Durability contract: every method that writes commits one redb transaction with
//! `Durability::Immediate`, so when it returns `Ok` the change survives a process kill or power
//! loss (redb fsyncs before returning and checksums its pages); when it returns `Err` nothing
//! of that call is visible. redb's own page checksums protect the records, so records carry only a
//! version byte.

use std::path::{Path, PathBuf};

use common::le::{Reader, Writer};
use redb::{Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::CollectionConfig;
use crate::error::VecDbError;
use crate::Point;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const POINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("points");

/// Version of the collection format, stored in the `config` entry's wrapper: 1 kept vectors in
/// the point records, 2 keeps them in the vector file. Bump when the files change shape.
pub const CONFIG_FORMAT_VERSION: u32 = 2;
/// Version byte at the start of each point record (1 in format 1, 2 in format 2).
pub const RECORD_VERSION: u8 = 2;
const RECORD_VERSION_1: u8 = 1;

#[derive(Serialize, Deserialize)]
struct StoredConfig {
    format_version: u32,
    config: CollectionConfig,
}

/// One change in a write batch.
pub(crate) enum Change<'a> {
    Put {
        id: u64,
        /// Slot of the vector file holding the vector the index uses.
        slot: u32,
        /// CRC-32 of that slot's bytes.
        crc: u32,
        /// The vector as inserted, when it differs from the slot's (cosine).
        raw: Option<&'a [f32]>,
        metadata: &'a Value,
    },
    Delete(u64),
}

/// A decoded format-2 point record.
pub(crate) struct Stored {
    pub id: u64,
    pub slot: u32,
    pub crc: u32,
    pub raw: Option<Vec<f32>>,
    pub metadata: Value,
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
            meta.insert("uid", new_uid().to_le_bytes().as_slice())?;
            tx.open_table(POINTS)?;
        }
        tx.commit()?;
        Ok(PointStore {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing store and returns it with its config and format version (1 or 2; a
    /// newer one is refused with `UnsupportedVersion`).
    pub(crate) fn open(path: &Path) -> Result<(Self, CollectionConfig, u32), VecDbError> {
        let db = redb::Database::open(path)?;
        let store = PointStore {
            db,
            path: path.to_path_buf(),
        };
        let (config, version) = store.read_config()?;
        Ok((store, config, version))
    }

    /// Reads just the config of a store that is not open, closing the file afterwards.
    pub(crate) fn read_config_of(path: &Path) -> Result<CollectionConfig, VecDbError> {
        Ok(PointStore::open(path)?.1)
    }

    /// The path of the redb file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, reason: impl Into<String>) -> VecDbError {
        VecDbError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn read_config(&self) -> Result<(CollectionConfig, u32), VecDbError> {
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
        Ok((stored.config, found as u32))
    }

    /// The collection's random identity, drawn at creation (or conversion to format 2): a
    /// snapshot stamped with it and the current generation belongs to exactly these points.
    pub(crate) fn uid(&self) -> Result<u64, VecDbError> {
        let tx = self.db.begin_read()?;
        self.meta_u64(&tx.open_table(META)?, "uid")
    }

    /// Number of points, from redb's table header (no scan).
    pub(crate) fn len(&self) -> Result<u64, VecDbError> {
        use redb::ReadableTableMetadata;
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(POINTS)?.len()?)
    }

    /// The generation counter: how many write batches have been committed.
    pub(crate) fn generation(&self) -> Result<u64, VecDbError> {
        let tx = self.db.begin_read()?;
        self.meta_u64(&tx.open_table(META)?, "generation")
    }

    /// A `u64` entry of the `meta` table (`generation`, `uid`).
    fn meta_u64(
        &self,
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
        key: &str,
    ) -> Result<u64, VecDbError> {
        let raw = meta
            .get(key)?
            .ok_or_else(|| self.corrupt(format!("no {key} entry")))?;
        let bytes: [u8; 8] = raw
            .value()
            .try_into()
            .map_err(|_| self.corrupt(format!("{key} is not 8 bytes")))?;
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
            let mut w = Writer::default();
            for change in changes {
                match change {
                    Change::Put {
                        id,
                        slot,
                        crc,
                        raw,
                        metadata,
                    } => {
                        encode_record(*slot, *crc, *raw, metadata, &mut w);
                        points.insert(*id, w.buf.as_slice())?;
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

    /// The records with the given ids, in the order asked, skipping missing ids.
    pub(crate) fn get(&self, ids: &[u64]) -> Result<Vec<Stored>, VecDbError> {
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

    /// Up to `limit` records with ids greater than `after`, ascending.
    pub(crate) fn scan(&self, after: Option<u64>, limit: usize) -> Result<Vec<Stored>, VecDbError> {
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

    /// Calls `f` on every record in ascending id order, from one consistent read transaction,
    /// and returns the generation that transaction saw.
    pub(crate) fn for_each(
        &self,
        mut f: impl FnMut(Stored) -> Result<(), VecDbError>,
    ) -> Result<u64, VecDbError> {
        self.for_each_raw(|id, raw| f(self.decode(id, raw)?))
    }

    /// Calls `f` on every point's id and metadata, without decoding (or allocating) vectors:
    /// what the metadata cache of filtered searches is loaded from.
    pub(crate) fn for_each_metadata(
        &self,
        mut f: impl FnMut(u64, Value) -> Result<(), VecDbError>,
    ) -> Result<u64, VecDbError> {
        self.for_each_raw(|id, raw| {
            let m = decode_metadata(raw)
                .map_err(|reason| self.corrupt(format!("point {id}: {reason}")))?;
            f(id, m)
        })
    }

    /// The metadata of the given ids (`None` for missing ids), without decoding vectors.
    pub(crate) fn get_metadata(&self, ids: &[u64]) -> Result<Vec<Option<Value>>, VecDbError> {
        let tx = self.db.begin_read()?;
        let points = tx.open_table(POINTS)?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            out.push(match points.get(id)? {
                Some(raw) => Some(
                    decode_metadata(raw.value())
                        .map_err(|reason| self.corrupt(format!("point {id}: {reason}")))?,
                ),
                None => None,
            });
        }
        Ok(out)
    }

    /// Calls `f` on every format-1 point (the migration's input).
    pub(crate) fn for_each_v1(
        &self,
        mut f: impl FnMut(Point) -> Result<(), VecDbError>,
    ) -> Result<u64, VecDbError> {
        self.for_each_raw(|id, raw| {
            f(decode_record_v1(id, raw)
                .map_err(|reason| self.corrupt(format!("point {id}: {reason}")))?)
        })
    }

    fn for_each_raw(
        &self,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), VecDbError>,
    ) -> Result<u64, VecDbError> {
        let tx = self.db.begin_read()?;
        let generation = self.meta_u64(&tx.open_table(META)?, "generation")?;
        let points = tx.open_table(POINTS)?;
        for entry in points.iter()? {
            let (k, v) = entry?;
            f(k.value(), v.value())?;
        }
        Ok(generation)
    }

    /// Replaces every record and the config in one durable transaction (the migration from
    /// format 1): `records` are (id, slot, crc, raw vector if any, metadata). Returns the new
    /// generation.
    pub(crate) fn rewrite_all(
        &self,
        config: &CollectionConfig,
        records: &[Change<'_>],
    ) -> Result<u64, VecDbError> {
        let generation = self.generation()? + 1;
        let stored = StoredConfig {
            format_version: CONFIG_FORMAT_VERSION,
            config: config.clone(),
        };
        let json = serde_json::to_vec(&stored).expect("config serialises");
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate);
        tx.delete_table(POINTS)?;
        {
            let mut points = tx.open_table(POINTS)?;
            let mut w = Writer::default();
            for change in records {
                if let Change::Put {
                    id,
                    slot,
                    crc,
                    raw,
                    metadata,
                } = change
                {
                    encode_record(*slot, *crc, *raw, metadata, &mut w);
                    points.insert(*id, w.buf.as_slice())?;
                }
            }
            let mut meta = tx.open_table(META)?;
            meta.insert("config", json.as_slice())?;
            meta.insert("generation", generation.to_le_bytes().as_slice())?;
            meta.insert("uid", new_uid().to_le_bytes().as_slice())?;
        }
        tx.commit()?;
        Ok(generation)
    }

    fn decode(&self, id: u64, raw: &[u8]) -> Result<Stored, VecDbError> {
        decode_record(id, raw).map_err(|reason| self.corrupt(format!("point {id}: {reason}")))
    }
}

/// A random collection identity.
fn new_uid() -> u64 {
    rand::random()
}

/// Encodes a format-2 point record into `w` (cleared first): `[version u8 = 2][slot u32]
/// [crc u32][has_raw u8]`, then if `has_raw` is 1 `[dim u32][dim x f32]`, then the metadata
/// JSON (all little endian, in the `common::le` codec).
pub(crate) fn encode_record(
    slot: u32,
    crc: u32,
    raw: Option<&[f32]>,
    metadata: &Value,
    w: &mut Writer,
) {
    w.buf.clear();
    w.u8(RECORD_VERSION);
    w.u32(slot);
    w.u32(crc);
    match raw {
        None => w.u8(0),
        Some(v) => {
            w.u8(1);
            write_vector(w, v);
        }
    }
    write_metadata(w, metadata);
}

/// A format-2 record split into its fields, the vector left as bytes: reading only the metadata
/// then decodes (and allocates) no vector.
struct Fields<'a> {
    slot: u32,
    crc: u32,
    raw: Option<&'a [u8]>,
    metadata: &'a [u8],
}

/// Splits a record written by [`encode_record`].
fn split_record(raw: &[u8]) -> Result<Fields<'_>, String> {
    let mut r = Reader::new(raw);
    let version = r.u8().map_err(|_| "empty record")?;
    if version != RECORD_VERSION {
        return Err(format!("unknown record version {version}"));
    }
    let too_short = |_| "record too short".to_string();
    let slot = r.u32().map_err(too_short)?;
    let crc = r.u32().map_err(too_short)?;
    let raw = match r.u8().map_err(too_short)? {
        0 => None,
        1 => Some(read_vector(&mut r)?),
        other => return Err(format!("bad vector flag {other}")),
    };
    Ok(Fields {
        slot,
        crc,
        raw,
        metadata: rest(r),
    })
}

/// Decodes a record written by [`encode_record`].
pub(crate) fn decode_record(id: u64, raw: &[u8]) -> Result<Stored, String> {
    let fields = split_record(raw)?;
    Ok(Stored {
        id,
        slot: fields.slot,
        crc: fields.crc,
        raw: fields.raw.map(floats),
        metadata: read_metadata(fields.metadata)?,
    })
}

/// Only the metadata of a format-2 record (the vector, if any, is skipped, not decoded).
pub(crate) fn decode_metadata(raw: &[u8]) -> Result<Value, String> {
    read_metadata(split_record(raw)?.metadata)
}

/// `[dim u32]` then `dim x f32`, written by [`write_vector`]: the floats' bytes.
fn read_vector<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], String> {
    let dim = r.u32().map_err(|_| "record too short")? as usize;
    dim.checked_mul(4)
        .and_then(|n| r.take(n).ok())
        .ok_or_else(|| "record shorter than its vector".to_string())
}

/// A vector's dimension and floats.
fn write_vector(w: &mut Writer, v: &[f32]) {
    w.u32(v.len() as u32);
    w.f32s_exact(v);
}

/// The floats of bytes returned by [`read_vector`].
fn floats(bytes: &[u8]) -> Vec<f32> {
    Reader::new(bytes)
        .f32s_exact(bytes.len() / 4)
        .expect("read_vector returns whole floats")
}

/// The metadata JSON, the rest of a record.
fn write_metadata(w: &mut Writer, metadata: &Value) {
    serde_json::to_writer(&mut w.buf, metadata).expect("JSON values serialise");
}

fn read_metadata(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("metadata: {e}"))
}

/// The bytes `r` has not read yet.
fn rest(mut r: Reader<'_>) -> &[u8] {
    let n = r.remaining();
    r.take(n).expect("the remaining bytes are there")
}

/// Encodes a format-1 record, `[version u8 = 1][dim u32 LE][dim x f32 LE][metadata JSON]`
/// (tests of the migration write these).
#[cfg(test)]
pub(crate) fn encode_record_v1(vector: &[f32], metadata: &Value, w: &mut Writer) {
    w.buf.clear();
    w.u8(RECORD_VERSION_1);
    write_vector(w, vector);
    write_metadata(w, metadata);
}

/// Decodes a format-1 record.
pub(crate) fn decode_record_v1(id: u64, raw: &[u8]) -> Result<Point, String> {
    let mut r = Reader::new(raw);
    let version = r.u8().map_err(|_| "empty record")?;
    if version != RECORD_VERSION_1 {
        return Err(format!(
            "unknown record version {version} in a format 1 collection"
        ));
    }
    let vector = floats(read_vector(&mut r)?);
    Ok(Point {
        id,
        vector,
        metadata: read_metadata(rest(r))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bytes of the records on disk (format 2, and format 1 read by the migration), as the
    /// hand-written encoder of both formats produced them: a change of the encoder must keep
    /// them.
    #[test]
    fn records_keep_their_bytes() {
        let mut w = Writer::default();
        encode_record(
            3,
            0xdead_beef,
            Some(&[1.0, -2.5]),
            &json!({"a":[1,2]}),
            &mut w,
        );
        let format2: &[&[u8]] = &[
            &[2],                                  // version
            &[3, 0, 0, 0],                         // slot
            &[0xef, 0xbe, 0xad, 0xde],             // crc
            &[1],                                  // has a raw vector
            &[2, 0, 0, 0],                         // its dimension
            &[0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0], // 1.0, -2.5
            br#"{"a":[1,2]}"#,
        ];
        assert_eq!(w.buf, format2.concat());
        encode_record(4, 1, None, &json!({}), &mut w);
        assert_eq!(w.buf, [&[2, 4, 0, 0, 0, 1, 0, 0, 0, 0][..], b"{}"].concat());
        encode_record_v1(&[0.5], &json!({"b":1}), &mut w);
        let format1: &[&[u8]] = &[&[1], &[1, 0, 0, 0], &[0, 0, 0, 0x3f], br#"{"b":1}"#];
        assert_eq!(w.buf, format1.concat());
    }

    /// What a record cut short at each length is reported as.
    #[test]
    fn truncated_records_say_where_they_end() {
        let mut w = Writer::default();
        encode_record(3, 99, Some(&[1.0, -2.5]), &json!({"a":[1,2]}), &mut w);
        assert_eq!(w.buf.len(), 33);
        for cut in 0..w.buf.len() {
            let want = match cut {
                0 => "empty record",
                1..=13 => "record too short",
                14..=21 => "record shorter than its vector",
                _ => "metadata: ",
            };
            let got = decode_record(1, &w.buf[..cut]).err().unwrap();
            assert!(got.starts_with(want), "cut at {cut}: {got}");
            assert_eq!(decode_metadata(&w.buf[..cut]).unwrap_err(), got);
        }
        let mut bad = w.buf.clone();
        bad[9] = 7;
        assert_eq!(decode_record(1, &bad).err().unwrap(), "bad vector flag 7");
        bad[0] = 9;
        assert_eq!(
            decode_record(1, &bad).err().unwrap(),
            "unknown record version 9"
        );
        let v1 = decode_record_v1(1, &w.buf).err().unwrap();
        assert_eq!(v1, "unknown record version 2 in a format 1 collection");
        encode_record_v1(&[0.5, 1.5], &json!({}), &mut w);
        for (cut, want) in [
            (3, "record too short"),
            (8, "record shorter than its vector"),
        ] {
            assert_eq!(decode_record_v1(1, &w.buf[..cut]).err().unwrap(), want);
        }
    }

    #[test]
    fn record_round_trip_and_rejects_garbage() {
        let mut w = Writer::default();
        encode_record(3, 99, Some(&[1.0, -2.5]), &json!({"a":[1,2]}), &mut w);
        let p = decode_record(7, &w.buf).unwrap();
        assert_eq!((p.slot, p.crc), (3, 99));
        assert_eq!(p.raw, Some(vec![1.0, -2.5]));
        assert_eq!(p.metadata, json!({"a":[1,2]}));
        assert!(decode_record(7, &w.buf[..12]).is_err());
        assert!(decode_record(7, &[]).is_err());
        let mut bad = w.buf.clone();
        bad[0] = 9;
        assert!(decode_record(7, &bad).is_err());
        encode_record(4, 1, None, &json!({}), &mut w);
        let p = decode_record(8, &w.buf).unwrap();
        assert_eq!((p.slot, p.raw), (4, None));
        assert_eq!(decode_metadata(&w.buf).unwrap(), json!({}));
        encode_record(3, 99, Some(&[1.0, -2.5]), &json!({"a":[1,2]}), &mut w);
        assert_eq!(decode_metadata(&w.buf).unwrap(), json!({"a":[1,2]}));
        assert!(decode_metadata(&w.buf[..12]).is_err());
        encode_record_v1(&[0.5], &json!({"b":1}), &mut w);
        assert_eq!(decode_record_v1(1, &w.buf).unwrap().vector, vec![0.5]);
        assert!(decode_record(1, &w.buf).is_err());
    }
}
