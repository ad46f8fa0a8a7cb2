//! Field indexes: what filtered searches evaluate instead of every point's metadata.
//!
//! Every value a filter can reach in a point's metadata is indexed under its dotted path, with
//! the semantics of [`crate::filter`]: arrays are fanned out at every level of the path, and a
//! final array offers both itself and each of its elements. Per path:
//!
//! - strings -> the slots holding them (hashed; `eq` and `in`), and strings that parse as dates
//!   also under their instant (ordered; `range` with date bounds);
//! - numbers -> slots, ordered by value (`eq`, `in`, `range`), `1` and `1.0` being one key;
//! - booleans and null -> slots;
//! - arrays and objects offered as whole values -> one set of slots per path. A filter that
//!   compares with an array or an object (rare) reads the JSON of just those slots.
//!
//! Slot sets are roaring bitmaps, or a single slot inline (most paths and hashes are unique to
//! one point). A filter is then set algebra: `and` intersects, `or` unites, `not` subtracts from
//! the indexed slots, so evaluating it touches no JSON of points it does not match.
//!
//! The index is derived data. Writes keep it up to date: a new slot is added with its metadata; a
//! metadata-only upsert removes the old values first; a deleted point's slot keeps its entries
//! until the slot is freed (searches accept live slots only), and slots freed by a rebuild are
//! purged before they can be reused. It is saved beside the index snapshot (`fields.snap`) and
//! rebuilt from the points when that file is missing, stale, corrupt or of another version.
//!
//! The file (format 2) is a small head in the common envelope (magic, version, the head's
//! length, a CRC-32 of the head only) holding the collection's uid and redb generation, the
//! indexed slots and a directory of the fields sorted by path (path, offset, length, CRC-32 of
//! the body), followed by the field bodies, contiguous, in directory order. Opening reads the
//! head only: every field starts on disk, and a filtered search first loads the bodies of the
//! paths its filter names ([`FieldIndex::unloaded`], [`FieldIndex::read_bodies`]), each read
//! with one positioned read and checked against its CRC. Writes never read a body: an update of
//! a field on disk waits in its list of pending updates, replayed in order when the body is
//! loaded or the file is saved. What is resident is thus the head, the loaded fields and the
//! pending updates, in proportion to the paths filters have named, not to the whole metadata.
//! Saving ([`FieldIndex::plan`], [`Plan::write_to`]) streams the file: loaded fields are
//! encoded, bodies of untouched fields on disk are copied as they are from the old file (through
//! its open handle, still valid after the new file is renamed over it), and a field with pending
//! updates is read, updated and encoded alone, then dropped; the head is written last.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::le::{Reader, Writer};
use roaring::RoaringBitmap;
use serde_json::Value;

use crate::error::VecDbError;
use crate::filter::{parse_instant, Bounds, CompiledFilter};

/// Returns the metadata of the given slots (live ones), for the filter leaves answered from
/// JSON.
pub(crate) type ReadSlots<'a> =
    dyn FnMut(&RoaringBitmap) -> Result<Vec<(u32, Value)>, VecDbError> + 'a;

/// Magic number of the field index file.
pub const FIELDS_MAGIC: [u8; 8] = *b"IMGVFLDS";
/// Current field index file format version.
pub const FIELDS_VERSION: u32 = 2;

/// The slots holding one value: one inline, or a bitmap.
#[derive(Clone, Debug, PartialEq)]
enum Postings {
    One(u32),
    Many(RoaringBitmap),
}

impl Postings {
    fn insert(&mut self, slot: u32) {
        match self {
            Postings::One(s) if *s == slot => {}
            Postings::One(s) => *self = Postings::Many(RoaringBitmap::from_iter([*s, slot])),
            Postings::Many(b) => {
                b.insert(slot);
            }
        }
    }

    /// Removes `slot`; returns whether the set is now empty.
    fn remove(&mut self, slot: u32) -> bool {
        match self {
            Postings::One(s) => *s == slot,
            Postings::Many(b) => {
                b.remove(slot);
                match b.len() {
                    0 => true,
                    1 => {
                        *self = Postings::One(b.min().expect("one element"));
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    /// Removes every slot of `gone`; returns whether the set is now empty.
    fn remove_all(&mut self, gone: &RoaringBitmap) -> bool {
        match self {
            Postings::One(s) => gone.contains(*s),
            Postings::Many(b) => {
                *b -= gone;
                match b.len() {
                    0 => true,
                    1 => {
                        *self = Postings::One(b.min().expect("one element"));
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    fn add_to(&self, out: &mut RoaringBitmap) {
        match self {
            Postings::One(s) => {
                out.insert(*s);
            }
            Postings::Many(b) => *out |= b,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Postings::One(_) => 0,
            Postings::Many(b) => b.serialized_size(),
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Postings::One(s) => {
                w.u8(0);
                w.u32(*s);
            }
            Postings::Many(b) => {
                w.u8(1);
                w.blob(&bitmap_bytes(b));
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Postings, String> {
        match r.u8()? {
            0 => Ok(Postings::One(r.u32()?)),
            1 => {
                let b = bitmap_from(r.blob()?)?;
                if b.len() < 2 {
                    return Err("a slot set of fewer than two slots is stored as a bitmap".into());
                }
                Ok(Postings::Many(b))
            }
            t => Err(format!("unknown slot set tag {t}")),
        }
    }
}

fn bitmap_bytes(b: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.serialized_size());
    b.serialize_into(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

fn bitmap_from(bytes: &[u8]) -> Result<RoaringBitmap, String> {
    // The envelope's checksum has passed, so this only meets bytes this build wrote; the checked
    // decoder still refuses a malformed bitmap rather than trusting it.
    RoaringBitmap::deserialize_from(bytes).map_err(|e| format!("slot bitmap: {e}"))
}

/// A number as an order-preserving key: `-0` is `0`, and JSON has no NaN.
fn number_key(x: f64) -> u64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// A range bound on numbers as a bound on their keys.
fn key_bound((x, inclusive): (f64, bool)) -> Bound<u64> {
    if inclusive {
        Bound::Included(number_key(x))
    } else {
        Bound::Excluded(number_key(x))
    }
}

/// The values indexed under one path.
#[derive(Clone, Debug, Default, PartialEq)]
struct Field {
    strings: HashMap<Box<str>, Postings>,
    numbers: BTreeMap<u64, Postings>,
    instants: BTreeMap<i128, Postings>,
    bools: [RoaringBitmap; 2],
    nulls: RoaringBitmap,
    /// Slots where an array or an object is offered as a whole value at this path.
    composite: RoaringBitmap,
}

impl Field {
    fn is_empty(&self) -> bool {
        self.strings.is_empty()
            && self.numbers.is_empty()
            && self.instants.is_empty()
            && self.bools.iter().all(RoaringBitmap::is_empty)
            && self.nulls.is_empty()
            && self.composite.is_empty()
    }

    /// Adds (`add`) or removes one offered value of `slot`.
    fn apply(&mut self, v: &Value, slot: u32, add: bool) {
        fn at<K: Ord>(map: &mut BTreeMap<K, Postings>, key: K, slot: u32, add: bool) {
            if add {
                map.entry(key)
                    .and_modify(|p| p.insert(slot))
                    .or_insert(Postings::One(slot));
            } else if let Some(p) = map.get_mut(&key) {
                if p.remove(slot) {
                    map.remove(&key);
                }
            }
        }
        fn set(b: &mut RoaringBitmap, slot: u32, add: bool) {
            if add {
                b.insert(slot);
            } else {
                b.remove(slot);
            }
        }
        match v {
            Value::String(s) => {
                if add {
                    match self.strings.get_mut(s.as_str()) {
                        Some(p) => p.insert(slot),
                        None => {
                            self.strings.insert(s.as_str().into(), Postings::One(slot));
                        }
                    }
                } else if let Some(p) = self.strings.get_mut(s.as_str()) {
                    if p.remove(slot) {
                        self.strings.remove(s.as_str());
                    }
                }
                if let Some(t) = parse_instant(s) {
                    at(&mut self.instants, t, slot, add);
                }
            }
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    at(&mut self.numbers, number_key(x), slot, add);
                }
            }
            Value::Bool(b) => set(&mut self.bools[usize::from(*b)], slot, add),
            Value::Null => set(&mut self.nulls, slot, add),
            Value::Array(_) | Value::Object(_) => set(&mut self.composite, slot, add),
        }
    }

    fn remove_all(&mut self, gone: &RoaringBitmap) {
        self.strings.retain(|_, p| !p.remove_all(gone));
        self.numbers.retain(|_, p| !p.remove_all(gone));
        self.instants.retain(|_, p| !p.remove_all(gone));
        for b in &mut self.bools {
            *b -= gone;
        }
        self.nulls -= gone;
        self.composite -= gone;
    }

    /// The slots offering a value equal to `v` (scalars only; composites are the caller's).
    fn scalar(&self, v: &Value, out: &mut RoaringBitmap) {
        match v {
            Value::String(s) => {
                if let Some(p) = self.strings.get(s.as_str()) {
                    p.add_to(out);
                }
            }
            Value::Number(n) => {
                if let Some(p) = n.as_f64().and_then(|x| self.numbers.get(&number_key(x))) {
                    p.add_to(out);
                }
            }
            Value::Bool(b) => *out |= &self.bools[usize::from(*b)],
            Value::Null => *out |= &self.nulls,
            Value::Array(_) | Value::Object(_) => {}
        }
    }

    fn range(&self, bounds: &Bounds) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        match *bounds {
            Bounds::Number { lo, hi } => {
                let lo = lo.map_or(Bound::Unbounded, key_bound);
                let hi = hi.map_or(Bound::Unbounded, key_bound);
                if bounds_nonempty(&lo, &hi) {
                    for p in self.numbers.range((lo, hi)).map(|(_, p)| p) {
                        p.add_to(&mut out);
                    }
                }
            }
            Bounds::Instant { lo, hi } => {
                let b = |b: Option<(i128, bool)>| match b {
                    None => Bound::Unbounded,
                    Some((t, true)) => Bound::Included(t),
                    Some((t, false)) => Bound::Excluded(t),
                };
                let (lo, hi) = (b(lo), b(hi));
                if bounds_nonempty(&lo, &hi) {
                    for p in self.instants.range((lo, hi)).map(|(_, p)| p) {
                        p.add_to(&mut out);
                    }
                }
            }
        }
        out
    }

    fn heap_bytes(&self) -> usize {
        // Hash entries: the boxed key (16), the postings (32), a control byte, at the map's
        // load factor; B-tree entries about the same per element.
        let strings: usize = self
            .strings
            .iter()
            .map(|(k, p)| k.len() + p.heap_bytes())
            .sum::<usize>()
            + self.strings.capacity() * 49;
        let numbers: usize = self
            .numbers
            .values()
            .map(Postings::heap_bytes)
            .sum::<usize>()
            + self.numbers.len() * 48;
        let instants: usize = self
            .instants
            .values()
            .map(Postings::heap_bytes)
            .sum::<usize>()
            + self.instants.len() * 56;
        let sets: usize = self
            .bools
            .iter()
            .chain([&self.nulls, &self.composite])
            .map(RoaringBitmap::serialized_size)
            .sum();
        strings + numbers + instants + sets
    }

    fn encode(&self, w: &mut Writer) {
        w.u64(self.strings.len() as u64);
        // Sorted, so that equal indexes write equal files.
        let mut strings: Vec<_> = self.strings.iter().collect();
        strings.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (s, p) in strings {
            w.str(s);
            p.encode(w);
        }
        w.u64(self.numbers.len() as u64);
        for (k, p) in &self.numbers {
            w.u64(*k);
            p.encode(w);
        }
        w.u64(self.instants.len() as u64);
        for (t, p) in &self.instants {
            w.bytes(&t.to_le_bytes());
            p.encode(w);
        }
        for b in self.bools.iter().chain([&self.nulls, &self.composite]) {
            w.blob(&bitmap_bytes(b));
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Field, String> {
        let mut f = Field::default();
        // Every entry takes at least 5 bytes (a length or key, a tag, a slot), which bounds the
        // counts by the file's size before anything is allocated.
        let n = r.len(5)?;
        f.strings.reserve(n);
        for _ in 0..n {
            let s = r.str()?;
            let p = Postings::decode(r)?;
            if f.strings.insert(s.into(), p).is_some() {
                return Err("a string is listed twice".into());
            }
        }
        let n = r.len(13)?;
        for _ in 0..n {
            let k = r.u64()?;
            f.numbers.insert(k, Postings::decode(r)?);
        }
        let n = r.len(21)?;
        for _ in 0..n {
            let t = i128::from_le_bytes(r.take(16)?.try_into().expect("16 bytes"));
            f.instants.insert(t, Postings::decode(r)?);
        }
        for b in f.bools.iter_mut().chain([&mut f.nulls, &mut f.composite]) {
            *b = bitmap_from(r.blob()?)?;
        }
        Ok(f)
    }
}

fn bounds_nonempty<T: Ord>(lo: &Bound<T>, hi: &Bound<T>) -> bool {
    // `BTreeMap::range` panics on an empty or inverted range; such a filter matches nothing.
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a < b,
        _ => true,
    }
}

/// Where one field's body lies in the field index file: an entry of the head's directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyRef {
    offset: u64,
    len: u64,
    crc: u32,
}

/// The open field index file that on-disk fields read their bodies from, shared by all of
/// them. Saving renames a new file over the path; this handle keeps reading the old file (its
/// inode lives on while it is open) until [`FieldIndex::rebase`] points the fields at the new one.
#[derive(Debug)]
pub(crate) struct FieldsFile {
    file: File,
    path: PathBuf,
}

impl FieldsFile {
    /// Opens the file at `path` for positioned reads.
    pub(crate) fn open(path: &Path) -> Result<Arc<FieldsFile>, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Arc::new(FieldsFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn len(&self) -> Result<u64, String> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), String> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// The bytes of one body, as stored (not checked).
    fn body(&self, body: BodyRef) -> Result<Vec<u8>, String> {
        let len = usize::try_from(body.len)
            .map_err(|_| format!("a field body of {} bytes cannot be read", body.len))?;
        let mut buf = vec![0; len];
        self.read_at(&mut buf, body.offset)?;
        Ok(buf)
    }
}

/// An update of a field whose body is still on disk, replayed in order when it is loaded.
#[derive(Clone, Debug)]
enum Pending {
    /// `value` offered at the field's path by `slot`, added or removed. Arrays and objects are
    /// kept as an empty array, since [`Field::apply`] only records that a composite was offered.
    Offer { value: Value, slot: u32, add: bool },
    /// The slots forgotten by [`FieldIndex::purge`]: one bitmap shared by every on-disk field.
    Purge(Arc<RoaringBitmap>),
}

/// A field whose body is still in the file, with the updates made since it was opened.
#[derive(Clone, Debug)]
struct OnDisk {
    body: BodyRef,
    file: Arc<FieldsFile>,
    pending: Vec<Pending>,
}

impl OnDisk {
    /// Reads the body, checks it against its checksum, decodes it and replays the pending
    /// updates: the field as it would be had it been loaded all along.
    fn load(&self, path: &str) -> Result<Field, String> {
        let bytes = self.checked_body(path)?;
        let mut r = Reader::new(&bytes);
        let mut field = Field::decode(&mut r)
            .and_then(|f| {
                r.finish()?;
                Ok(f)
            })
            .map_err(|e| format!("{}: field {path:?}: {e}", self.file.path.display()))?;
        replay(&mut field, &self.pending);
        Ok(field)
    }

    /// Writes to `w` the body [`Self::load`] would give, encoded, without decoding it: the
    /// stored entries are read one at a time, in their sorted order, and merged with the
    /// pending updates sorted the same way. Saving after writes thus holds the body's bytes
    /// and the new ones, not the decoded field (several times larger for paths with a value
    /// per photo: at a million photos, ~260 MiB for the unique paths and hashes).
    fn merge_into(&self, path: &str, w: &mut Writer) -> Result<(), String> {
        let bytes = self.checked_body(path)?;
        let mut r = Reader::new(&bytes);
        merge_body(&mut r, &self.pending, w)
            .and_then(|()| Ok(r.finish()?))
            .map_err(|e| format!("{}: field {path:?}: {e}", self.file.path.display()))
    }

    /// The body's bytes, checked against its checksum.
    fn checked_body(&self, path: &str) -> Result<Vec<u8>, String> {
        let bytes = self.file.body(self.body)?;
        let crc = crc32fast::hash(&bytes);
        if crc != self.body.crc {
            return Err(format!(
                "{}: the body of field {path:?} does not match its checksum \
                 (stored {:#010x}, computed {crc:#010x})",
                self.file.path.display(),
                self.body.crc
            ));
        }
        Ok(bytes)
    }

    fn heap_bytes(&self) -> usize {
        // The purge bitmaps are shared by every on-disk field, so only their handles count.
        self.pending.capacity() * std::mem::size_of::<Pending>()
            + self
                .pending
                .iter()
                .map(|p| match p {
                    Pending::Offer {
                        value: Value::String(s),
                        ..
                    } => s.capacity(),
                    _ => 0,
                })
                .sum::<usize>()
    }
}

/// One pending update of a key: its position among the pending updates, the slot, added or not.
type KeyUpdate = (usize, u32, bool);

/// Applies to one key's slot set (`None`: empty) its own updates and every purge, in the order
/// they were made, as [`replay`] would.
fn merge_key(
    mut set: Option<Postings>,
    updates: &[KeyUpdate],
    purges: &[(usize, &RoaringBitmap)],
) -> Option<Postings> {
    let (mut u, mut g) = (updates.iter().peekable(), purges.iter().peekable());
    loop {
        let purge_first = match (u.peek(), g.peek()) {
            (None, None) => return set,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(b)) => b.0 < a.0,
        };
        if purge_first {
            let (_, gone) = g.next().expect("peeked");
            if set.as_mut().is_some_and(|p| p.remove_all(gone)) {
                set = None;
            }
        } else {
            let &(_, slot, add) = u.next().expect("peeked");
            match (&mut set, add) {
                (Some(p), true) => p.insert(slot),
                (None, true) => set = Some(Postings::One(slot)),
                (Some(p), false) => {
                    if p.remove(slot) {
                        set = None;
                    }
                }
                (None, false) => {}
            }
        }
    }
}

/// Merges one sorted section of a body (a count, then key and slot set per entry, keys
/// strictly ascending) with the updates of its keys, writing the merged section.
fn merge_section<K: Ord>(
    r: &mut Reader<'_>,
    w: &mut Writer,
    min_entry: usize,
    read_key: impl Fn(&mut Reader<'_>) -> Result<K, String>,
    write_key: impl Fn(&mut Writer, &K),
    updates: BTreeMap<K, Vec<KeyUpdate>>,
    purges: &[(usize, &RoaringBitmap)],
) -> Result<(), String> {
    let n = r.len(min_entry)?;
    let count_at = w.buf.len();
    w.u64(0);
    let mut count = 0u64;
    let mut emit = |w: &mut Writer, key: &K, set: Option<Postings>| {
        if let Some(p) = set {
            write_key(w, key);
            p.encode(w);
            count += 1;
        }
    };
    let mut updates = updates.into_iter().peekable();
    let mut last: Option<K> = None;
    for _ in 0..n {
        let key = read_key(r)?;
        let set = Postings::decode(r)?;
        if last.as_ref().is_some_and(|l| *l >= key) {
            return Err("keys are not in ascending order".into());
        }
        while let Some((k, ups)) = updates.next_if(|(k, _)| *k < key) {
            emit(w, &k, merge_key(None, &ups, purges));
        }
        let ups = updates.next_if(|(k, _)| *k == key).map(|(_, u)| u);
        emit(
            w,
            &key,
            merge_key(Some(set), ups.as_deref().unwrap_or(&[]), purges),
        );
        last = Some(key);
    }
    for (k, ups) in updates {
        emit(w, &k, merge_key(None, &ups, purges));
    }
    w.buf[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
    Ok(())
}

/// Reads one encoded [`Field`] from `r` and writes it to `w` with `pending` applied, as
/// decoding, [`replay`] and [`Field::encode`] would, entry by entry.
fn merge_body(r: &mut Reader<'_>, pending: &[Pending], w: &mut Writer) -> Result<(), String> {
    let mut strings: BTreeMap<String, Vec<KeyUpdate>> = BTreeMap::new();
    let mut numbers: BTreeMap<u64, Vec<KeyUpdate>> = BTreeMap::new();
    let mut instants: BTreeMap<i128, Vec<KeyUpdate>> = BTreeMap::new();
    let mut purges = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        match p {
            Pending::Offer { value, slot, add } => {
                let up = (i, *slot, *add);
                match value {
                    Value::String(s) => {
                        strings.entry(s.clone()).or_default().push(up);
                        if let Some(t) = parse_instant(s) {
                            instants.entry(t).or_default().push(up);
                        }
                    }
                    Value::Number(n) => {
                        if let Some(x) = n.as_f64() {
                            numbers.entry(number_key(x)).or_default().push(up);
                        }
                    }
                    _ => {}
                }
            }
            Pending::Purge(gone) => purges.push((i, gone.as_ref())),
        }
    }
    merge_section(r, w, 5, |r| Ok(r.str()?), |w, s| w.str(s), strings, &purges)?;
    merge_section(
        r,
        w,
        13,
        |r| Ok(r.u64()?),
        |w, k| w.u64(*k),
        numbers,
        &purges,
    )?;
    merge_section(
        r,
        w,
        21,
        |r| {
            Ok(i128::from_le_bytes(
                r.take(16)?.try_into().expect("16 bytes"),
            ))
        },
        |w, t| w.bytes(&t.to_le_bytes()),
        instants,
        &purges,
    )?;
    // The sets of booleans, nulls and composites are bitmaps, small whatever the number of
    // values: decoded, updated in order, encoded.
    let mut sets = Field::default();
    for b in sets
        .bools
        .iter_mut()
        .chain([&mut sets.nulls, &mut sets.composite])
    {
        *b = bitmap_from(r.blob()?)?;
    }
    for p in pending {
        match p {
            Pending::Offer {
                value: v @ (Value::Bool(_) | Value::Null | Value::Array(_) | Value::Object(_)),
                slot,
                add,
            } => sets.apply(v, *slot, *add),
            Pending::Offer { .. } => {}
            Pending::Purge(gone) => sets.remove_all(gone),
        }
    }
    for b in sets.bools.iter().chain([&sets.nulls, &sets.composite]) {
        w.blob(&bitmap_bytes(b));
    }
    Ok(())
}

fn replay(field: &mut Field, pending: &[Pending]) {
    for p in pending {
        match p {
            Pending::Offer { value, slot, add } => field.apply(value, *slot, *add),
            Pending::Purge(gone) => field.remove_all(gone),
        }
    }
}

/// What `v` offers at the path it is reached at: itself, and a final array each element too.
fn offered(v: &Value) -> impl Iterator<Item = &Value> {
    let items: &[Value] = match v {
        Value::Array(items) => items,
        _ => &[],
    };
    std::iter::once(v).chain(items)
}

/// One path's index: in memory, or its body still in the file.
#[derive(Clone, Debug)]
enum Entry {
    Loaded(Field),
    OnDisk(OnDisk),
}

/// Bodies read by [`FieldIndex::read_bodies`], to be installed by [`FieldIndex::install`]:
/// per path, the field, the body it was read from and how many pending updates it includes.
pub(crate) struct LoadedBodies(Vec<(Box<str>, Field, BodyRef, usize)>);

/// Where one body of a [`Plan`] comes from.
enum Source {
    /// Encoded from a field in memory.
    Bytes(Vec<u8>),
    /// Copied as it is from the file a field on disk reads.
    Copy(Arc<FieldsFile>, BodyRef),
    /// A field on disk with pending updates: read, updated and encoded while the file is
    /// written, one at a time, so that no more than one such field is in memory at once.
    Update(OnDisk),
}

/// A field index file to write ([`FieldIndex::plan`]): the stamp, the indexed slots and the
/// fields in path order, each with where its body comes from.
pub(crate) struct Plan {
    uid: u64,
    generation: u64,
    indexed: Vec<u8>,
    fields: Vec<(Box<str>, Source)>,
}

/// Where each body lies in a file written by [`Plan::write_to`], for [`FieldIndex::rebase`].
pub(crate) struct Directory(HashMap<Box<str>, BodyRef>);

impl Plan {
    /// Bytes of the head: directory entries are fixed-size apart from the path, so it is known
    /// before any body is, and the bodies can be written first, the head last, in its place.
    fn head_len(&self) -> usize {
        common::envelope::OVERHEAD
            + 8
            + 8
            + 8
            + self.indexed.len()
            + 8
            + self
                .fields
                .iter()
                .map(|(p, _)| 4 + p.len() + 8 + 8 + 4)
                .sum::<usize>()
    }

    /// Writes the file to `out`, from its start: room for the head, every body (those on disk
    /// copied in pieces of at most [`COPY_CHUNK`] bytes, those with pending updates encoded one
    /// at a time), then the head. Saving thus holds in memory the loaded fields and at most one
    /// updated field, never the whole file. A field its pending updates emptied is written
    /// empty (loading drops it). Fails when a body on disk cannot be read or decoded.
    pub(crate) fn write_to<W: std::io::Write + std::io::Seek>(
        &self,
        out: &mut W,
    ) -> Result<Directory, String> {
        let io = |e: std::io::Error| e.to_string();
        let head_len = self.head_len();
        out.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        out.write_all(&vec![0; head_len]).map_err(io)?;
        let mut directory = Vec::with_capacity(self.fields.len());
        let mut offset = head_len as u64;
        let mut buf = Vec::new();
        for (path, source) in &self.fields {
            let (len, crc) = match source {
                Source::Bytes(bytes) => {
                    out.write_all(bytes).map_err(io)?;
                    (bytes.len() as u64, crc32fast::hash(bytes))
                }
                Source::Copy(file, body) => {
                    let mut at = body.offset;
                    let end = body.offset + body.len;
                    while at < end {
                        let n = (end - at).min(COPY_CHUNK as u64) as usize;
                        buf.resize(n, 0);
                        file.read_at(&mut buf, at)?;
                        out.write_all(&buf).map_err(io)?;
                        at += n as u64;
                    }
                    (body.len, body.crc)
                }
                Source::Update(d) => {
                    let mut w = Writer::with_capacity(0);
                    d.merge_into(path, &mut w)?;
                    out.write_all(&w.buf).map_err(io)?;
                    (w.buf.len() as u64, crc32fast::hash(&w.buf))
                }
            };
            directory.push((path, BodyRef { offset, len, crc }));
            offset += len;
        }
        let mut w = common::envelope::begin(&FIELDS_MAGIC, FIELDS_VERSION, head_len);
        w.u64(self.uid);
        w.u64(self.generation);
        w.blob(&self.indexed);
        w.u64(directory.len() as u64);
        for (path, body) in &directory {
            w.str(path);
            w.u64(body.offset);
            w.u64(body.len);
            w.u32(body.crc);
        }
        let head = common::envelope::seal(w);
        assert_eq!(head.len(), head_len, "the head is as long as computed");
        out.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        out.write_all(&head).map_err(io)?;
        out.flush().map_err(io)?;
        Ok(Directory(
            directory.into_iter().map(|(p, b)| (p.clone(), b)).collect(),
        ))
    }
}

/// Largest piece of a body on disk that saving copies at once.
const COPY_CHUNK: usize = 1 << 20;

/// The field indexes of one collection.
#[derive(Clone, Debug, Default)]
pub(crate) struct FieldIndex {
    fields: HashMap<Box<str>, Entry>,
    /// Every slot indexed (live or dead), what `not` subtracts from.
    indexed: RoaringBitmap,
}

impl FieldIndex {
    /// Indexes `metadata` as the content of `slot`.
    pub(crate) fn add(&mut self, slot: u32, metadata: &Value) {
        self.indexed.insert(slot);
        self.walk(metadata, slot, true);
    }

    /// Removes `metadata`, the current content of `slot`, from the index (a metadata update).
    pub(crate) fn remove(&mut self, slot: u32, metadata: &Value) {
        self.walk(metadata, slot, false);
        self.indexed.remove(slot);
    }

    /// Forgets the freed slots entirely (their metadata is no longer known), before reuse.
    pub(crate) fn purge(&mut self, gone: &RoaringBitmap) {
        if gone.is_empty() {
            return;
        }
        self.indexed -= gone;
        let mut shared: Option<Arc<RoaringBitmap>> = None;
        self.fields.retain(|_, entry| match entry {
            Entry::Loaded(f) => {
                f.remove_all(gone);
                !f.is_empty()
            }
            Entry::OnDisk(d) => {
                let gone = shared.get_or_insert_with(|| Arc::new(gone.clone()));
                d.pending.push(Pending::Purge(Arc::clone(gone)));
                true
            }
        });
    }

    fn walk(&mut self, metadata: &Value, slot: u32, add: bool) {
        let mut path = String::new();
        self.descend(&mut path, metadata, slot, add);
    }

    /// Visits the values a path extending `path` reaches below `v`: object members by key,
    /// arrays fanned out (the path does not name their positions).
    fn descend(&mut self, path: &mut String, v: &Value, slot: u32, add: bool) {
        match v {
            Value::Object(map) => {
                for (key, child) in map {
                    // Filter paths split on dots and refuse empty segments, so such keys can
                    // never be named: nothing below them is reachable.
                    if key.is_empty() || key.contains('.') {
                        continue;
                    }
                    let len = path.len();
                    if len > 0 {
                        path.push('.');
                    }
                    path.push_str(key);
                    self.reached(path, child, slot, add);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.descend(path, item, slot, add);
                }
            }
            _ => {}
        }
    }

    /// `v` is reached at `path`: it is offered there (a final array also element by element),
    /// and paths below it reach into it. A field whose body is on disk is not read: the update
    /// waits in its pending list until the body is loaded or the file is saved.
    fn reached(&mut self, path: &mut String, v: &Value, slot: u32, add: bool) {
        match self.fields.get_mut(path.as_str()) {
            Some(Entry::Loaded(field)) => {
                for x in offered(v) {
                    field.apply(x, slot, add);
                }
                if !add && field.is_empty() {
                    self.fields.remove(path.as_str());
                }
            }
            Some(Entry::OnDisk(d)) => {
                for x in offered(v) {
                    let value = match x {
                        Value::Array(_) | Value::Object(_) => Value::Array(Vec::new()),
                        scalar => scalar.clone(),
                    };
                    d.pending.push(Pending::Offer { value, slot, add });
                }
            }
            None if add => {
                let mut field = Field::default();
                for x in offered(v) {
                    field.apply(x, slot, add);
                }
                self.fields
                    .insert(path.as_str().into(), Entry::Loaded(field));
            }
            None => {}
        }
        self.descend(path, v, slot, add);
    }

    /// The paths `filter` names whose bodies are still on disk, each once, sorted.
    pub(crate) fn unloaded(&self, filter: &CompiledFilter) -> Vec<String> {
        fn collect(ix: &FieldIndex, filter: &CompiledFilter, out: &mut Vec<String>) {
            match filter {
                CompiledFilter::Eq { path, .. }
                | CompiledFilter::In { path, .. }
                | CompiledFilter::Range { path, .. } => {
                    let path = path.join(".");
                    if matches!(ix.fields.get(path.as_str()), Some(Entry::OnDisk(_))) {
                        out.push(path);
                    }
                }
                CompiledFilter::And(items) | CompiledFilter::Or(items) => {
                    for item in items {
                        collect(ix, item, out);
                    }
                }
                CompiledFilter::Not(inner) => collect(ix, inner, out),
            }
        }
        let mut out = Vec::new();
        collect(self, filter, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Reads, checks and decodes the bodies of those of `paths` still on disk, with their
    /// pending updates replayed. It takes `&self`, so that the reading and decoding can run
    /// under a read lock, beside searches; [`FieldIndex::install`] then takes them in. Fails
    /// with the reason on the first body that cannot be read, fails its checksum or does not
    /// decode.
    pub(crate) fn read_bodies(&self, paths: &[String]) -> Result<LoadedBodies, String> {
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            if let Some(Entry::OnDisk(d)) = self.fields.get(path.as_str()) {
                out.push((path.as_str().into(), d.load(path)?, d.body, d.pending.len()));
            }
        }
        Ok(LoadedBodies(out))
    }

    /// Takes in bodies read by [`FieldIndex::read_bodies`] from this index. Updates that
    /// arrived in between (none do while the caller holds the writer lock throughout) are
    /// replayed on top; a field loaded, dropped or pointed at another file in between (none
    /// is, under that lock either) is left as it is now. A field its updates left empty is
    /// dropped, as a loaded one would be.
    pub(crate) fn install(&mut self, bodies: LoadedBodies) {
        for (path, mut field, body, replayed) in bodies.0 {
            let Some(entry) = self.fields.get_mut(&path) else {
                continue;
            };
            let Entry::OnDisk(d) = entry else {
                continue;
            };
            if d.body != body || d.pending.len() < replayed {
                continue;
            }
            replay(&mut field, &d.pending[replayed..]);
            if field.is_empty() {
                self.fields.remove(&path);
            } else {
                *entry = Entry::Loaded(field);
            }
        }
    }

    /// Loads the bodies of `paths` still on disk ([`FieldIndex::read_bodies`], then
    /// [`FieldIndex::install`]); the collection does the two steps under different locks.
    #[cfg(test)]
    pub(crate) fn load(&mut self, paths: &[String]) -> Result<(), String> {
        let bodies = self.read_bodies(paths)?;
        self.install(bodies);
        Ok(())
    }

    /// The indexed slots matching `filter` (dead slots included: the caller keeps live ones).
    /// `read` returns the metadata of the given slots, for the rare leaf that compares with an
    /// array or an object and so must look at the JSON of the slots offering one. The fields
    /// the filter names must be loaded ([`FieldIndex::unloaded`] lists those that are not):
    /// one still on disk is an internal error, never read as empty.
    pub(crate) fn matching(
        &self,
        filter: &CompiledFilter,
        read: &mut ReadSlots<'_>,
    ) -> Result<RoaringBitmap, VecDbError> {
        Ok(match filter {
            CompiledFilter::Eq { path, value } => {
                let Some(field) = self.field(path)? else {
                    return Ok(RoaringBitmap::new());
                };
                let mut out = RoaringBitmap::new();
                field.scalar(value, &mut out);
                if matches!(value, Value::Array(_) | Value::Object(_)) {
                    out |= by_json(&field.composite, filter, read)?;
                }
                out
            }
            CompiledFilter::In { path, values } => {
                let Some(field) = self.field(path)? else {
                    return Ok(RoaringBitmap::new());
                };
                let mut out = RoaringBitmap::new();
                for v in values.scalars() {
                    field.scalar(&v, &mut out);
                }
                if values.has_composite() {
                    out |= by_json(&field.composite, filter, read)?;
                }
                out
            }
            CompiledFilter::Range { path, bounds } => self
                .field(path)?
                .map_or_else(RoaringBitmap::new, |f| f.range(bounds)),
            CompiledFilter::And(items) => {
                let mut acc: Option<RoaringBitmap> = None;
                for item in items {
                    let m = self.matching(item, read)?;
                    acc = Some(match acc {
                        None => m,
                        Some(a) => a & m,
                    });
                    if acc.as_ref().is_some_and(RoaringBitmap::is_empty) {
                        break;
                    }
                }
                acc.unwrap_or_else(|| self.indexed.clone())
            }
            CompiledFilter::Or(items) => {
                let mut acc = RoaringBitmap::new();
                for item in items {
                    acc |= self.matching(item, read)?;
                }
                acc
            }
            CompiledFilter::Not(inner) => &self.indexed - self.matching(inner, read)?,
        })
    }

    /// The loaded field at `path`, `None` when nothing is indexed there.
    fn field(&self, path: &[String]) -> Result<Option<&Field>, VecDbError> {
        let path = path.join(".");
        match self.fields.get(path.as_str()) {
            None => Ok(None),
            Some(Entry::Loaded(f)) => Ok(Some(f)),
            Some(Entry::OnDisk(d)) => Err(VecDbError::Corrupt {
                path: d.file.path.clone(),
                reason: format!(
                    "internal error: field {path:?} was evaluated while its body was still on \
                     disk (bodies are loaded before a filter is evaluated)"
                ),
            }),
        }
    }

    /// Every slot indexed.
    pub(crate) fn indexed(&self) -> &RoaringBitmap {
        &self.indexed
    }

    /// Fields whose bodies are in memory.
    #[cfg(test)]
    pub(crate) fn loaded_count(&self) -> usize {
        self.fields
            .values()
            .filter(|e| matches!(e, Entry::Loaded(_)))
            .count()
    }

    /// Approximate heap bytes: the loaded fields, the pending updates of the others and the
    /// directory; bodies still on disk take none.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(k, e)| {
                k.len()
                    + 64
                    + match e {
                        Entry::Loaded(f) => f.heap_bytes(),
                        Entry::OnDisk(d) => d.heap_bytes(),
                    }
            })
            .sum::<usize>()
            + self.indexed.serialized_size()
    }

    /// The field index file (format 2) of this index, stamped with the point set it reflects,
    /// to be written by [`Plan::write_to`]. Loaded fields are encoded now; a field on disk
    /// without pending updates will be copied as it is (its bytes and checksum), one with
    /// pending updates read, updated and encoded while the file is written; both stay on disk
    /// here ([`FieldIndex::rebase`] then points them at the written file). The plan owns what
    /// it reads from (handles to the old file), so it can be written without the state lock.
    pub(crate) fn plan(&self, uid: u64, generation: u64) -> Plan {
        let mut paths: Vec<&Box<str>> = self.fields.keys().collect();
        paths.sort_unstable();
        let fields = paths
            .into_iter()
            .map(|path| {
                let source = match &self.fields[path] {
                    Entry::OnDisk(d) if d.pending.is_empty() => {
                        Source::Copy(Arc::clone(&d.file), d.body)
                    }
                    Entry::OnDisk(d) => Source::Update(d.clone()),
                    Entry::Loaded(f) => {
                        let mut w = Writer::with_capacity(f.heap_bytes());
                        f.encode(&mut w);
                        Source::Bytes(w.buf)
                    }
                };
                (path.clone(), source)
            })
            .collect();
        Plan {
            uid,
            generation,
            indexed: bitmap_bytes(&self.indexed),
            fields,
        }
    }

    /// The field index file's bytes, in memory (tests; the collection streams [`Plan`]s).
    #[cfg(test)]
    pub(crate) fn encode(&self, uid: u64, generation: u64) -> (Vec<u8>, Directory) {
        let mut out = std::io::Cursor::new(Vec::new());
        let directory = self.plan(uid, generation).write_to(&mut out).unwrap();
        (out.into_inner(), directory)
    }

    /// Points the fields still on disk at `file`, just written from this index's plan with
    /// `directory` (nothing changed in between): their pending updates are in it now, and the
    /// old file can go once nothing reads it.
    pub(crate) fn rebase(&mut self, file: &Arc<FieldsFile>, directory: &Directory) {
        for (path, entry) in &mut self.fields {
            if let (Entry::OnDisk(d), Some(&body)) = (&mut *entry, directory.0.get(path)) {
                *d = OnDisk {
                    body,
                    file: Arc::clone(file),
                    pending: Vec::new(),
                };
            }
        }
    }

    /// Opens a field index file: reads and checks its head only (magic, version, length,
    /// checksum, a directory of contiguous bodies ending with the file) and returns the index,
    /// every field on disk, with its (uid, generation) stamp. A file of another version is
    /// refused before more than its first bytes are read.
    pub(crate) fn open(path: &Path) -> Result<(FieldIndex, u64, u64), String> {
        let file = FieldsFile::open(path)?;
        let file_len = file.len()?;
        let head = read_head(&file, file_len)?;
        let opened = common::envelope::open(&head, &FIELDS_MAGIC, FIELDS_VERSION, FIELDS_VERSION)
            .map_err(|e| e.to_string())?;
        let mut r = Reader::new(opened.body);
        let uid = r.u64()?;
        let generation = r.u64()?;
        let indexed = bitmap_from(r.blob()?)?;
        // A directory entry takes at least 24 bytes (path length, offset, length, checksum).
        let n = r.len(24)?;
        let mut fields = HashMap::with_capacity(n);
        let mut end = head.len() as u64;
        let mut previous: Option<String> = None;
        for _ in 0..n {
            let path = r.str()?;
            let body = BodyRef {
                offset: r.u64()?,
                len: r.u64()?,
                crc: r.u32()?,
            };
            if previous.as_ref().is_some_and(|p| *p >= path) {
                return Err("the field directory is not sorted by path".into());
            }
            if body.offset != end {
                return Err(format!(
                    "the body of field {path:?} starts at {}, not where the previous one ends \
                     ({end})",
                    body.offset
                ));
            }
            end = end
                .checked_add(body.len)
                .filter(|&e| e <= file_len)
                .ok_or_else(|| {
                    format!("truncated: the body of field {path:?} ends beyond the file's {file_len} bytes")
                })?;
            fields.insert(
                path.as_str().into(),
                Entry::OnDisk(OnDisk {
                    body,
                    file: Arc::clone(&file),
                    pending: Vec::new(),
                }),
            );
            previous = Some(path);
        }
        r.finish()?;
        if end != file_len {
            return Err(format!(
                "the file has {file_len} bytes, its last field body ends at {end}"
            ));
        }
        Ok((FieldIndex { fields, indexed }, uid, generation))
    }
}

/// The head of a field index file, as long as its envelope's length field says. A version 1
/// file's envelope spans the whole file, so the version is checked on the first bytes, before
/// anything else is read; the caller checks the rest with [`common::envelope::open`].
fn read_head(file: &FieldsFile, file_len: u64) -> Result<Vec<u8>, String> {
    let header = common::envelope::HEADER_LEN;
    let mut head = vec![0; file_len.min(header as u64) as usize];
    file.read_at(&mut head, 0)?;
    if head.len() == header && head[..8] == FIELDS_MAGIC {
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if version != FIELDS_VERSION {
            return Err(common::envelope::EnvelopeError::UnsupportedVersion {
                found: version,
                oldest: FIELDS_VERSION,
                newest: FIELDS_VERSION,
            }
            .to_string());
        }
        let declared = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
        if declared > file_len {
            return Err(format!(
                "truncated: the head declares {declared} bytes, the file has {file_len}"
            ));
        }
        // A declared length shorter than the header is left to the envelope check to refuse.
        head.resize(declared as usize, 0);
        if head.len() > header {
            file.read_at(&mut head[header..], header as u64)?;
        }
    }
    Ok(head)
}

/// Two indexes are equal when they index the same slots and hold equal fields, all loaded (the
/// tests compare loaded forms; a field still on disk makes the indexes unequal).
#[cfg(test)]
impl PartialEq for FieldIndex {
    fn eq(&self, other: &FieldIndex) -> bool {
        let loaded = |ix: &FieldIndex| -> Option<HashMap<Box<str>, Field>> {
            ix.fields
                .iter()
                .map(|(k, e)| match e {
                    Entry::Loaded(f) => Some((k.clone(), f.clone())),
                    Entry::OnDisk(_) => None,
                })
                .collect()
        };
        self.indexed == other.indexed && loaded(self).is_some() && loaded(self) == loaded(other)
    }
}

/// The slots of `candidates` whose JSON matches the leaf `filter`.
fn by_json(
    candidates: &RoaringBitmap,
    filter: &CompiledFilter,
    read: &mut ReadSlots<'_>,
) -> Result<RoaringBitmap, VecDbError> {
    if candidates.is_empty() {
        return Ok(RoaringBitmap::new());
    }
    Ok(read(candidates)?
        .into_iter()
        .filter(|(_, m)| filter.matches(m))
        .map(|(s, _)| s)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;
    use proptest::prelude::*;
    use serde_json::json;

    /// A value from a small pool: shared strings, dates (also instants), numbers, booleans,
    /// null, a composite, and a string unique to `slot` (as photo paths are).
    fn pool_value(i: u8, slot: u32) -> Value {
        match i % 12 {
            0..=2 => json!(format!("s{}", i % 3)),
            3 | 4 => json!(format!("2024-01-0{}", i % 2 + 1)),
            5 => json!(i % 2),
            6 => json!(2.5),
            7 => json!(true),
            8 => json!(false),
            9 => Value::Null,
            10 => Value::Array(Vec::new()),
            _ => json!(format!("/photos/{slot}.jpg")),
        }
    }

    proptest! {
        /// Saving merges a body on disk with its pending updates without decoding it; the
        /// bytes must be those of decoding, replaying and encoding.
        #[test]
        fn merging_a_body_equals_decoding_replaying_and_encoding(
            initial in prop::collection::vec((any::<u8>(), 0u32..40, any::<bool>()), 0..120),
            later in prop::collection::vec((any::<u8>(), 0u32..40, any::<bool>(), 0u8..8), 0..120),
        ) {
            let mut field = Field::default();
            for &(v, slot, add) in &initial {
                // Mostly adds, so that the body has entries to remove.
                field.apply(&pool_value(v, slot), slot, add || v % 4 != 0);
            }
            let mut body = Writer::with_capacity(0);
            field.encode(&mut body);
            let pending: Vec<Pending> = later
                .iter()
                .map(|&(v, slot, add, purge)| {
                    if purge == 0 {
                        Pending::Purge(Arc::new(RoaringBitmap::from_iter(
                            (0..40).filter(|s| (s + u32::from(v)) % 7 == 0),
                        )))
                    } else {
                        Pending::Offer { value: pool_value(v, slot), slot, add }
                    }
                })
                .collect();
            let mut want_field = Field::decode(&mut Reader::new(&body.buf)).unwrap();
            replay(&mut want_field, &pending);
            let mut want = Writer::with_capacity(0);
            want_field.encode(&mut want);
            let mut got = Writer::with_capacity(0);
            let mut r = Reader::new(&body.buf);
            merge_body(&mut r, &pending, &mut got).unwrap();
            r.finish().unwrap();
            prop_assert_eq!(got.buf, want.buf);
        }
    }

    fn docs() -> Vec<Value> {
        vec![
            json!({"folder":"/a","tags":["rose","daisy"],"n":1,"taken":"2020-06-01T12:00:00+02:00","ok":true}),
            json!({"folder":"/b","tags":["daisy"],"n":2.5,"taken":"2021-01-01","exif":{"make":"X"},"ok":false}),
            json!({"folder":"/a","tags":[],"n":-0.0,"people":[{"name":"a"},{"name":"b"}],"v":[1,2]}),
            json!({"folder":null,"n":"3","nested":[[{"k":1}],[{"k":2}]],"a.b":1,"v":[[1,2],3]}),
            json!(null),
            json!({"n":1e300,"taken":"not a date","exif":{"make":["X","Y"]}}),
        ]
    }

    fn index(docs: &[Value]) -> FieldIndex {
        let mut ix = FieldIndex::default();
        for (s, d) in docs.iter().enumerate() {
            ix.add(s as u32, d);
        }
        ix
    }

    /// The index's answer and a scan of the JSON agree, including composite comparisons.
    fn check(ix: &mut FieldIndex, docs: &[Value], filter: &Value) {
        let docs: Vec<Option<Value>> = docs.iter().cloned().map(Some).collect();
        check_slots(ix, &docs, filter);
    }

    /// [`check`] where `None` marks a slot that is not indexed (purged): the scan skips it. The
    /// fields the filter names are loaded first, as a collection does.
    fn check_slots(ix: &mut FieldIndex, docs: &[Option<Value>], filter: &Value) {
        let compiled = Filter::from_json(filter).unwrap().compile().unwrap();
        let unloaded = ix.unloaded(&compiled);
        ix.load(&unloaded).unwrap();
        assert!(ix.unloaded(&compiled).is_empty());
        let mut read = |b: &RoaringBitmap| {
            Ok(b.iter()
                .filter_map(|s| docs[s as usize].clone().map(|d| (s, d)))
                .collect())
        };
        let got: Vec<u32> = ix.matching(&compiled, &mut read).unwrap().iter().collect();
        let want: Vec<u32> = (0..docs.len() as u32)
            .filter(|&s| {
                docs[s as usize]
                    .as_ref()
                    .is_some_and(|d| compiled.matches(d))
            })
            .collect();
        assert_eq!(got, want, "filter {filter}");
    }

    fn filters() -> Vec<Value> {
        vec![
            json!({"eq":{"field":"folder","value":"/a"}}),
            json!({"eq":{"field":"folder","value":null}}),
            json!({"eq":{"field":"tags","value":"daisy"}}),
            json!({"eq":{"field":"tags","value":[]}}),
            json!({"eq":{"field":"tags","value":["daisy"]}}),
            json!({"eq":{"field":"n","value":0}}),
            json!({"eq":{"field":"n","value":1.0}}),
            json!({"eq":{"field":"n","value":"3"}}),
            json!({"eq":{"field":"ok","value":false}}),
            json!({"eq":{"field":"exif.make","value":"Y"}}),
            json!({"eq":{"field":"people.name","value":"b"}}),
            json!({"eq":{"field":"nested.k","value":2}}),
            json!({"eq":{"field":"v","value":[1,2]}}),
            json!({"eq":{"field":"v","value":1}}),
            json!({"eq":{"field":"a.b","value":1}}),
            json!({"eq":{"field":"people","value":{"name":"a"}}}),
            json!({"in":{"field":"n","values":[1,2.5,"3",[9]]}}),
            json!({"in":{"field":"v","values":[3,[1,2]]}}),
            json!({"range":{"field":"n","gt":-1,"lte":2.5}}),
            json!({"range":{"field":"n","gte":0}}),
            json!({"range":{"field":"n","lt":0}}),
            json!({"range":{"field":"n","gt":5,"lt":1}}),
            json!({"range":{"field":"n","gt":1,"lt":1}}),
            json!({"range":{"field":"taken","gte":"2020-01-01","lt":"2021-01-01"}}),
            json!({"range":{"field":"taken","lte":"2021-01-01"}}),
            json!({"not":{"eq":{"field":"folder","value":"/a"}}}),
            json!({"and":[{"eq":{"field":"tags","value":"daisy"}},{"not":{"range":{"field":"n","gt":2}}}]}),
            json!({"or":[{"eq":{"field":"folder","value":"/b"}},{"eq":{"field":"ok","value":true}}]}),
            json!({"and":[]}),
            json!({"or":[]}),
            json!({"not":{"and":[]}}),
        ]
    }

    #[test]
    fn answers_equal_a_scan_of_the_metadata() {
        let docs = docs();
        let mut ix = index(&docs);
        for f in filters() {
            check(&mut ix, &docs, &f);
        }
    }

    #[test]
    fn removal_and_purge_leave_the_index_as_if_never_added() {
        let docs = docs();
        let mut ix = index(&docs);
        let mut fewer = FieldIndex::default();
        for (s, d) in docs.iter().enumerate() {
            if s != 1 && s != 3 {
                fewer.add(s as u32, d);
            }
        }
        let mut removed = ix.clone();
        removed.remove(1, &docs[1]);
        removed.remove(3, &docs[3]);
        assert_eq!(removed, fewer);
        ix.purge(&RoaringBitmap::from_iter([1u32, 3]));
        assert_eq!(ix, fewer);
    }

    /// Writes `ix` as a field index file in `dir` under `name` and opens it lazily.
    fn reopen(ix: &FieldIndex, dir: &Path, name: &str) -> FieldIndex {
        let path = dir.join(name);
        std::fs::write(&path, ix.encode(7, 42).0).unwrap();
        let (back, uid, generation) = FieldIndex::open(&path).unwrap();
        assert_eq!((uid, generation), (7, 42));
        assert_eq!(back.loaded_count(), 0, "opening loaded a body");
        back
    }

    fn load_all(ix: &mut FieldIndex) {
        let paths: Vec<String> = ix.fields.keys().map(|k| k.to_string()).collect();
        ix.load(&paths).unwrap();
        assert_eq!(ix.loaded_count(), ix.fields.len());
    }

    /// The head's length, from its envelope's length field.
    fn head_len(bytes: &[u8]) -> usize {
        u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize
    }

    #[test]
    fn file_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let ix = index(&docs());
        let mut back = reopen(&ix, dir.path(), "f.snap");
        assert!(back.heap_bytes() < ix.heap_bytes());
        load_all(&mut back);
        assert_eq!(back, ix);

        let bytes = std::fs::read(dir.path().join("f.snap")).unwrap();
        let head = head_len(&bytes);
        let path = dir.path().join("bad.snap");
        let open = |b: &[u8]| {
            std::fs::write(&path, b).unwrap();
            FieldIndex::open(&path)
        };
        // A damaged head is refused at open.
        for i in [0, 9, 13, 20, 30, head / 2, head - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(open(&bad).is_err(), "flip at {i} of the head accepted");
        }
        assert!(open(&bytes[..bytes.len() - 3]).is_err());
        assert!(open(&bytes[..head]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(open(&longer).is_err());
        // A damaged body passes the open and is refused by its field's load, the others load.
        let mut bad = bytes.clone();
        let at = head + (bytes.len() - head) / 2;
        bad[at] ^= 0x10;
        let (mut lazy, _, _) = open(&bad).unwrap();
        let paths: Vec<String> = lazy.fields.keys().map(|k| k.to_string()).collect();
        let failed: Vec<&String> = paths
            .iter()
            .filter(|p| lazy.load(std::slice::from_ref(p)).is_err())
            .collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        let reason = lazy.load(&paths).unwrap_err();
        assert!(reason.contains("checksum"), "{reason}");
        // Another version, older or newer, is refused with both numbers.
        for version in [1u32, 3] {
            let mut other = bytes.clone();
            other[8..12].copy_from_slice(&version.to_le_bytes());
            let reason = open(&other).unwrap_err();
            assert_eq!(
                reason,
                format!("format version {version}, this build reads version 2")
            );
        }
        let v1 = common::envelope::wrap(&FIELDS_MAGIC, 1, &[0; 64]);
        assert!(open(&v1).unwrap_err().contains("format version 1"));
    }

    /// Applies a set of updates to `ix`, indexed from `docs`; returns the documents as the slots
    /// now hold them (`None`: purged).
    fn update(ix: &mut FieldIndex, docs: &[Value]) -> Vec<Option<Value>> {
        let mut now: Vec<Option<Value>> = docs.iter().cloned().map(Some).collect();
        // A metadata update, a new slot with new values and new paths, a removal leaving a
        // field empty, and a purge.
        ix.remove(1, &docs[1]);
        let one = json!({"folder":"/a","tags":["lily"],"n":7,"ok":true,"new":{"p":1}});
        ix.add(1, &one);
        now[1] = Some(one);
        let six = json!({"folder":"/c","tags":["daisy","daisy"],"v":[1,[2]],"taken":"2020-03-03"});
        ix.add(6, &six);
        now.push(Some(six));
        ix.remove(3, &docs[3]);
        let three = json!({"n":3});
        ix.add(3, &three);
        now[3] = Some(three);
        ix.purge(&RoaringBitmap::from_iter([2u32, 5]));
        now[2] = None;
        // The purged slot 5 is reused.
        ix.add(5, &docs[0]);
        now[5] = Some(docs[0].clone());
        now
    }

    #[test]
    fn lazy_answers_equal_eager_answers_through_updates_and_saves() {
        let dir = tempfile::tempdir().unwrap();
        let docs = docs();
        let eager = index(&docs);
        // Straight after opening.
        let mut lazy = reopen(&eager, dir.path(), "a.snap");
        for f in filters() {
            check(&mut lazy, &docs, &f);
        }
        // Updates made while every field is on disk wait as pending updates.
        let mut lazy = reopen(&eager, dir.path(), "b.snap");
        let mut updated = eager.clone();
        let now = update(&mut updated, &docs);
        update(&mut lazy, &docs);
        // Only the two paths the updates introduced ("new", "new.p") are in memory.
        assert_eq!(lazy.loaded_count(), 2, "an update loaded a body");
        let pending = lazy.clone();
        for f in filters() {
            check_slots(&mut lazy, &now, &f);
        }
        load_all(&mut lazy);
        assert_eq!(lazy, updated);
        // Saved with some fields loaded, some on disk with pending updates, then reopened.
        let mut partly = pending.clone();
        partly.load(&["folder".into(), "tags".into()]).unwrap();
        let mut saved = reopen(&partly, dir.path(), "c.snap");
        for f in filters() {
            check_slots(&mut saved, &now, &f);
        }
        load_all(&mut saved);
        assert_eq!(saved, updated);
        // Rebased onto the file it was saved to, the pending updates are dropped and the
        // fields read the new file.
        let path = dir.path().join("d.snap");
        let (bytes, written) = partly.encode(7, 42);
        std::fs::write(&path, &bytes).unwrap();
        partly.rebase(&FieldsFile::open(&path).unwrap(), &written);
        assert!(partly.heap_bytes() < pending.heap_bytes());
        for f in filters() {
            check_slots(&mut partly, &now, &f);
        }
        load_all(&mut partly);
        assert_eq!(partly, updated);
    }

    #[test]
    fn updates_between_reading_and_installing_a_body_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut docs = docs();
        let mut lazy = reopen(&index(&docs), dir.path(), "f.snap");
        let bodies = lazy.read_bodies(&["folder".into()]).unwrap();
        let extra = json!({"folder":"/a"});
        lazy.add(6, &extra);
        docs.push(extra);
        lazy.install(bodies);
        assert_eq!(lazy.loaded_count(), 1);
        check(
            &mut lazy,
            &docs,
            &json!({"eq":{"field":"folder","value":"/a"}}),
        );
    }

    #[test]
    fn an_unloaded_field_is_an_error_not_an_empty_answer() {
        let dir = tempfile::tempdir().unwrap();
        let lazy = reopen(&index(&docs()), dir.path(), "f.snap");
        let compiled = Filter::from_json(&json!({"not":{"eq":{"field":"folder","value":"/a"}}}))
            .unwrap()
            .compile()
            .unwrap();
        assert_eq!(lazy.unloaded(&compiled), vec!["folder".to_string()]);
        let err = lazy
            .matching(&compiled, &mut |_: &RoaringBitmap| Ok(Vec::new()))
            .unwrap_err();
        assert!(err.to_string().contains("internal error"), "{err}");
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i32..3).prop_map(|n| json!(n)),
            prop_oneof![Just("x"), Just("y"), Just("2020-01-02")].prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map(prop_oneof![Just("a"), Just("b")], inner, 0..3)
                    .prop_map(|m| Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                    )),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random nested documents and leaves agree with the JSON scan, before and after an update.
        #[test]
        fn random_documents_agree_with_the_scan(
            docs in prop::collection::vec(arb_value(), 1..6),
            update in arb_value(),
            value in arb_value(),
            path in prop_oneof![Just("a"), Just("b"), Just("a.b"), Just("a.a"), Just("b.a.b")],
        ) {
            let docs: Vec<Value> = docs.into_iter().map(|d| json!({"a": d})).collect();
            let mut ix = index(&docs);
            let filters = [
                json!({"eq":{"field":path,"value":value}}),
                json!({"in":{"field":path,"values":[value, 1, "x"]}}),
                json!({"range":{"field":path,"gte":-1,"lt":2}}),
                json!({"range":{"field":path,"gt":"2020-01-01"}}),
                json!({"not":{"eq":{"field":path,"value":value}}}),
            ];
            for f in &filters {
                check(&mut ix, &docs, f);
            }
            let mut docs = docs;
            ix.remove(0, &docs[0]);
            docs[0] = json!({"b": update});
            ix.add(0, &docs[0]);
            for f in &filters {
                check(&mut ix, &docs, f);
            }
        }
    }
}
