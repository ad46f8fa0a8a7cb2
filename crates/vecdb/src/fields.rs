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
//! purged before they can be reused. It is saved beside the index snapshot (`fields.snap`,
//! stamped with the collection's uid and redb generation, in the common envelope) and rebuilt
//! from the points when that file is missing, stale or corrupt.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

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
pub const FIELDS_VERSION: u32 = 1;

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

/// The field indexes of one collection.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FieldIndex {
    fields: HashMap<Box<str>, Field>,
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
        self.fields.retain(|_, f| {
            f.remove_all(gone);
            !f.is_empty()
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
    /// and paths below it reach into it.
    fn reached(&mut self, path: &mut String, v: &Value, slot: u32, add: bool) {
        let field = match self.fields.get_mut(path.as_str()) {
            Some(f) => f,
            None if add => self.fields.entry(path.as_str().into()).or_default(),
            None => return self.descend(path, v, slot, add),
        };
        field.apply(v, slot, add);
        if let Value::Array(items) = v {
            for item in items {
                field.apply(item, slot, add);
            }
        }
        if !add && field.is_empty() {
            self.fields.remove(path.as_str());
        }
        self.descend(path, v, slot, add);
    }

    /// The indexed slots matching `filter` (dead slots included: the caller keeps live ones).
    /// `read` returns the metadata of the given slots, for the rare leaf that compares with an
    /// array or an object and so must look at the JSON of the slots offering one.
    pub(crate) fn matching(
        &self,
        filter: &CompiledFilter,
        read: &mut ReadSlots<'_>,
    ) -> Result<RoaringBitmap, VecDbError> {
        Ok(match filter {
            CompiledFilter::Eq { path, value } => {
                let Some(field) = self.field(path) else {
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
                let Some(field) = self.field(path) else {
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
                .field(path)
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

    fn field(&self, path: &[String]) -> Option<&Field> {
        self.fields.get(path.join(".").as_str())
    }

    /// Every slot indexed.
    pub(crate) fn indexed(&self) -> &RoaringBitmap {
        &self.indexed
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(k, f)| k.len() + 64 + f.heap_bytes())
            .sum::<usize>()
            + self.indexed.serialized_size()
    }

    /// The field index file's bytes, stamped with the point set it reflects.
    pub(crate) fn encode(&self, uid: u64, generation: u64) -> Vec<u8> {
        let mut w = common::envelope::begin(&FIELDS_MAGIC, FIELDS_VERSION, 1024);
        w.u64(uid);
        w.u64(generation);
        w.blob(&bitmap_bytes(&self.indexed));
        let mut fields: Vec<_> = self.fields.iter().collect();
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
        w.u64(fields.len() as u64);
        for (path, f) in fields {
            w.str(path);
            f.encode(&mut w);
        }
        common::envelope::seal(w)
    }

    /// Parses a field index file; returns it with its (uid, generation) stamp.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(FieldIndex, u64, u64), String> {
        let opened = common::envelope::open(bytes, &FIELDS_MAGIC, FIELDS_VERSION, FIELDS_VERSION)
            .map_err(|e| e.to_string())?;
        let mut r = Reader::new(opened.body);
        let uid = r.u64()?;
        let generation = r.u64()?;
        let indexed = bitmap_from(r.blob()?)?;
        let n = r.len(8)?;
        let mut fields = HashMap::with_capacity(n);
        for _ in 0..n {
            let path = r.str()?;
            let f = Field::decode(&mut r)?;
            if fields.insert(path.into_boxed_str(), f).is_some() {
                return Err("a field is listed twice".into());
            }
        }
        r.finish()?;
        Ok((FieldIndex { fields, indexed }, uid, generation))
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
    fn check(ix: &FieldIndex, docs: &[Value], filter: &Value) {
        let compiled = Filter::from_json(filter).unwrap().compile().unwrap();
        let mut read =
            |b: &RoaringBitmap| Ok(b.iter().map(|s| (s, docs[s as usize].clone())).collect());
        let got: Vec<u32> = ix.matching(&compiled, &mut read).unwrap().iter().collect();
        let want: Vec<u32> = (0..docs.len() as u32)
            .filter(|&s| compiled.matches(&docs[s as usize]))
            .collect();
        assert_eq!(got, want, "filter {filter}");
    }

    #[test]
    fn answers_equal_a_scan_of_the_metadata() {
        let docs = docs();
        let ix = index(&docs);
        for f in [
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
        ] {
            check(&ix, &docs, &f);
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

    #[test]
    fn file_round_trip_and_corruption() {
        let ix = index(&docs());
        let bytes = ix.encode(7, 42);
        let (back, uid, generation) = FieldIndex::decode(&bytes).unwrap();
        assert_eq!((back, uid, generation), (ix, 7, 42));
        for i in [0, 9, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(FieldIndex::decode(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(FieldIndex::decode(&bytes[..bytes.len() - 3]).is_err());
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
                check(&ix, &docs, f);
            }
            let mut docs = docs;
            ix.remove(0, &docs[0]);
            docs[0] = json!({"b": update});
            ix.add(0, &docs[0]);
            for f in &filters {
                check(&ix, &docs, f);
            }
        }
    }
}
