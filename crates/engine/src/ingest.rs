//! Ingest: walk folders, find what is new, changed or gone, embed in batches, store, catalog.
//!
//! A file is unchanged when its size and mtime match the catalog, or, when they do not, its
//! blake3 hash still does (a touched or copied-back file is not re-embedded). A changed file keeps
//! its id: its point is replaced in place. Each batch is stored and then catalogued before the
//! next starts, so an interrupted run loses at most one batch and the next run resumes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use rayon::prelude::*;
use tracing::{info, info_span, warn};
use vecdb::{CollectionConfig, Point};
use walkdir::WalkDir;

use crate::catalog::{Catalog, FileRecord};
use crate::store::VectorStore;
use crate::{
    image_record, point_metadata, Engine, EngineError, ImageRecord, IndexReport, ProgressSink,
};
use embed::IMAGE_EXTENSIONS;

/// Files embedded, stored and catalogued together; bounds the work lost to an interruption.
const BATCH: usize = 32;

/// A file found on disk that may need work.
struct Candidate {
    path: PathBuf,
    key: String,
    size: u64,
    mtime_ns: i64,
}

/// A file embedded and ready to commit, with its id when it replaces an existing point.
struct Embedded {
    key: String,
    size: u64,
    mtime_ns: i64,
    hash: String,
    id: Option<u64>,
    emb: embed::Embedding,
    info: embed::ImageInfo,
}

/// A file that must be embedded, with its id when it replaces an existing point.
struct Work {
    cand: Candidate,
    hash: String,
    id: Option<u64>,
}

/// Creates or checks the collection; returns its config and, if it belongs to another model,
/// that model's id.
pub(crate) fn setup_collection(
    store: &dyn VectorStore,
    catalog: &Catalog,
    wanted: CollectionConfig,
    model_id: &str,
) -> Result<(CollectionConfig, Option<String>), EngineError> {
    let recorded = catalog.model()?;
    let Some(existing) = store.collection_info(&wanted.name)? else {
        if !catalog.is_empty()? {
            // The vectors are gone (e.g. the db folder was deleted): forget the catalogued files
            // so the next ingest embeds them again instead of calling them unchanged.
            warn!(collection = %wanted.name, "collection missing from the store; resetting the catalog");
            let mut ids = Vec::new();
            catalog.for_each(&mut |r| ids.push(r.id))?;
            catalog.remove(&ids)?;
        }
        store.create_collection(&wanted)?;
        catalog.set_model(model_id, 1)?;
        return Ok((wanted, None));
    };
    if existing.metric != wanted.metric || existing.index != wanted.index {
        info!(collection = %existing.name, "using the existing collection's metric and index");
    }
    if let Some(m) = recorded {
        let mismatch = (m != model_id || existing.dim != wanted.dim).then_some(m);
        return Ok((existing, mismatch));
    }
    // A collection this catalog has not seen (migrated in, or the catalog was lost): adopt it by
    // rebuilding the catalog from the points' metadata, unless another model made it.
    let first = store.scan(&existing.name, None, 1)?;
    if let Some(p) = first.first() {
        let theirs = p.metadata["model"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        if theirs != model_id || existing.dim != wanted.dim {
            return Ok((existing, Some(theirs)));
        }
    }
    let next = rebuild_catalog(store, catalog, &existing.name)?;
    catalog.set_model(model_id, next)?;
    Ok((existing, None))
}

/// Recreates catalog records from stored points; returns the next free id.
fn rebuild_catalog(
    store: &dyn VectorStore,
    catalog: &Catalog,
    name: &str,
) -> Result<u64, EngineError> {
    let mut after = None;
    let mut next = 1;
    loop {
        let page = store.scan(name, after, 512)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        next = last.id + 1;
        let records: Vec<FileRecord> = page.iter().filter_map(record_from_point).collect();
        catalog.put(&records)?;
    }
    info!(
        collection = name,
        next_id = next,
        "catalog rebuilt from the store"
    );
    Ok(next)
}

fn record_from_point(p: &Point) -> Option<FileRecord> {
    let m = &p.metadata;
    let mut tags: Vec<(String, f32)> = m["tag_scores"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0) as f32))
                .collect()
        })
        .unwrap_or_default();
    tags.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(FileRecord {
        id: p.id,
        path: m["path"].as_str()?.to_string(),
        size: m["size"].as_u64().unwrap_or(0),
        mtime_ns: m["mtime_ns"].as_i64().unwrap_or(0),
        hash: m["hash"].as_str().unwrap_or("").to_string(),
        width: m["width"].as_u64().unwrap_or(0) as u32,
        height: m["height"].as_u64().unwrap_or(0) as u32,
        taken: m["taken"].as_str().map(str::to_string),
        tags,
    })
}

impl Engine {
    /// Deletes points whose ids were reserved by a batch that never reached the catalog.
    pub(crate) fn remove_orphans(&self) -> Result<(), EngineError> {
        let orphans = self.catalog.orphans()?;
        if !orphans.is_empty() {
            warn!(
                count = orphans.len(),
                "removing points of an interrupted ingest"
            );
            self.store.delete(&self.collection.name, &orphans)?;
            self.catalog.clear_pending(&orphans)?;
        }
        Ok(())
    }

    /// Indexes every image under `roots` (folders, recursively, or single files) incrementally.
    pub fn index_paths(
        &self,
        roots: &[PathBuf],
        progress: &dyn ProgressSink,
    ) -> Result<IndexReport, EngineError> {
        self.ready()?;
        let span = info_span!("ingest", roots = roots.len());
        let _enter = span.enter();
        let t0 = Instant::now();
        let mut report = IndexReport::default();
        let mut canonical = Vec::with_capacity(roots.len());
        for r in roots {
            let c = r.canonicalize().map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => EngineError::NotFound {
                    what: format!("path {}", r.display()),
                },
                _ => EngineError::io(r, e),
            })?;
            canonical.push(c);
        }
        // The walk, the hashing and the embedding run without `ingest_lock`, which is taken
        // only to change the catalog and the store: an upload or a removal during a long job
        // waits for one batch's commit, not for the whole job.
        let walked = self.walk(&canonical, &mut report);
        let (work, touched) = self.classify(walked.candidates, &mut report)?;
        {
            let _guard = self.ingest_lock.lock();
            self.touch(touched)?;
            report.removed = self.remove_missing(&canonical, &walked.seen, &walked.unreadable)?;
        }
        self.embed_and_store(work, progress, &mut report)?;
        report.seconds = t0.elapsed().as_secs_f64();
        info!(
            added = report.added,
            updated = report.updated,
            removed = report.removed,
            unchanged = report.unchanged,
            failed = report.failed.len(),
            seconds = report.seconds,
            "ingest done"
        );
        Ok(report)
    }

    fn walk(&self, roots: &[PathBuf], report: &mut IndexReport) -> Walked {
        let data_dir = self.config.data_dir.canonicalize().ok();
        let mut out = Walked::default();
        for root in roots {
            let walker = WalkDir::new(root).follow_links(false).into_iter();
            // Hidden entries and our own data directory (thumbnails!) are never indexed; the
            // roots themselves are exempt so that `index ~/.photos` still works.
            let walker = walker.filter_entry(|e| {
                e.depth() == 0
                    || !(e.file_name().to_string_lossy().starts_with('.')
                        || data_dir.as_deref() == Some(e.path()))
            });
            for entry in walker {
                match entry {
                    Ok(e) if e.file_type().is_file() => self.consider(e.path(), &mut out, report),
                    Ok(_) => {}
                    Err(e) => {
                        let path = e
                            .path()
                            .map(Path::to_path_buf)
                            .unwrap_or_else(|| root.clone());
                        out.unreadable.push(path.clone());
                        report.failed.push((path, e.to_string()));
                    }
                }
            }
        }
        out
    }

    fn consider(&self, path: &Path, out: &mut Walked, report: &mut IndexReport) {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if !IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            report
                .skipped
                .push((path.to_path_buf(), "not an image file name".into()));
            return;
        }
        let Some(key) = path.to_str().map(str::to_string) else {
            report
                .skipped
                .push((path.to_path_buf(), "path is not valid UTF-8".into()));
            return;
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                report.failed.push((path.to_path_buf(), e.to_string()));
                return;
            }
        };
        out.seen.insert(key.clone());
        let size = meta.len();
        if size > self.config.limits.max_file_bytes {
            let limit = self.config.limits.max_file_bytes;
            report.skipped.push((
                path.to_path_buf(),
                format!("{size} bytes, over the limit of {limit}"),
            ));
            return;
        }
        out.candidates.push(Candidate {
            path: path.to_path_buf(),
            key,
            size,
            mtime_ns: mtime_ns(&meta),
        });
    }

    /// Splits candidates into unchanged files and work, hashing only those whose size or mtime
    /// moved (in parallel).
    /// Splits the candidates into work (new or changed content, hashed) and records to touch
    /// (same content, new size or time). Reads the catalog only, so it runs without the lock.
    fn classify(
        &self,
        cands: Vec<Candidate>,
        report: &mut IndexReport,
    ) -> Result<(Vec<Work>, Vec<FileRecord>), EngineError> {
        let mut to_hash = Vec::new();
        for c in cands {
            match self.catalog.by_path(&c.key)? {
                Some(r) if r.size == c.size && r.mtime_ns == c.mtime_ns => report.unchanged += 1,
                r => to_hash.push((c, r)),
            }
        }
        let hashed: Vec<_> = to_hash
            .into_par_iter()
            .map(|(c, r)| (hash_file(&c.path), c, r))
            .collect();
        let mut touched = Vec::new();
        let mut work = Vec::new();
        for (hash, c, r) in hashed {
            let hash = match hash {
                Ok(h) => h,
                Err(e) => {
                    report.failed.push((c.path, e.to_string()));
                    continue;
                }
            };
            match r {
                Some(mut r) if r.hash == hash => {
                    r.size = c.size;
                    r.mtime_ns = c.mtime_ns;
                    touched.push(r);
                    report.unchanged += 1;
                }
                r => work.push(Work {
                    cand: c,
                    hash,
                    id: r.map(|r| r.id),
                }),
            }
        }
        Ok((work, touched))
    }

    /// Records the new size and time of files whose content did not change, unless the record
    /// changed since `classify` read it (removed, or re-indexed by an upload meanwhile). The
    /// caller holds `ingest_lock`.
    fn touch(&self, touched: Vec<FileRecord>) -> Result<(), EngineError> {
        let mut current = Vec::with_capacity(touched.len());
        for r in touched {
            if let Some(now) = self.catalog.by_id(r.id)? {
                if now.path == r.path && now.hash == r.hash {
                    current.push(r);
                }
            }
        }
        self.catalog.put(&current)
    }

    /// Removes catalogued files under `roots` that the walk did not see.
    fn remove_missing(
        &self,
        roots: &[PathBuf],
        seen: &HashSet<String>,
        unreadable: &[PathBuf],
    ) -> Result<u64, EngineError> {
        let mut gone = Vec::new();
        self.catalog.for_each(&mut |r| {
            let p = Path::new(&r.path);
            let under_root = roots.iter().any(|root| p.starts_with(root));
            // Files below a folder we could not read may still exist: keep them.
            let in_unreadable = unreadable.iter().any(|u| p.starts_with(u));
            if under_root && !in_unreadable && !seen.contains(&r.path) && !p.exists() {
                gone.push(r.id);
            }
        })?;
        if !gone.is_empty() {
            self.store.delete(&self.collection.name, &gone)?;
            self.catalog.remove(&gone)?;
        }
        Ok(gone.len() as u64)
    }

    fn embed_and_store(
        &self,
        work: Vec<Work>,
        progress: &dyn ProgressSink,
        report: &mut IndexReport,
    ) -> Result<(), EngineError> {
        progress.start(work.len() as u64);
        let mut rest = work;
        while !rest.is_empty() {
            // A cancelled job stops here, between batches: what is stored is catalogued too.
            if progress.cancelled() {
                info!(left = rest.len(), "ingest cancelled");
                break;
            }
            let tail = rest.split_off(rest.len().min(BATCH));
            let batch = std::mem::replace(&mut rest, tail);
            self.embed_batch(batch, progress, report)?;
        }
        progress.finish();
        Ok(())
    }

    fn embed_batch(
        &self,
        batch: Vec<Work>,
        progress: &dyn ProgressSink,
        report: &mut IndexReport,
    ) -> Result<(), EngineError> {
        let paths: Vec<PathBuf> = batch.iter().map(|w| w.cand.path.clone()).collect();
        let mut results: Vec<Option<(embed::Embedding, embed::ImageInfo)>> =
            (0..batch.len()).map(|_| None).collect();
        embed::embed_paths(
            self.encoder.embedder(),
            &paths,
            &self.config.limits,
            &mut |i, r| {
                progress.advance(1, &paths[i].to_string_lossy());
                match r {
                    Ok((emb, info)) => results[i] = Some((self.encoder.project(emb), info)),
                    Err(e) => report.failed.push((paths[i].clone(), e.to_string())),
                }
            },
        );
        let mut ready = Vec::with_capacity(batch.len());
        for (w, r) in batch.into_iter().zip(results) {
            let Some((emb, info)) = r else { continue };
            match w.id {
                Some(_) => report.updated += 1,
                None => report.added += 1,
            }
            ready.push(Embedded {
                key: w.cand.key,
                size: w.cand.size,
                mtime_ns: w.cand.mtime_ns,
                hash: w.hash,
                id: w.id,
                emb,
                info,
            });
        }
        let _guard = self.ingest_lock.lock();
        self.commit(ready)?;
        Ok(())
    }

    /// The one place where embedded files become indexed images: ids are reserved for new
    /// files, the points are upserted, then the catalog records them (a crash between the two
    /// leaves orphan points that the next open removes, never a record without its point).
    /// The caller holds `ingest_lock`.
    fn commit(&self, mut items: Vec<Embedded>) -> Result<Vec<FileRecord>, EngineError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // A file classified as new without the lock may have been catalogued since (by an
        // upload, or a job over an overlapping folder): it keeps that id rather than becoming
        // a second image.
        for e in items.iter_mut().filter(|e| e.id.is_none()) {
            if let Some(r) = self.catalog.by_path(&e.key)? {
                e.id = Some(r.id);
            }
        }
        let new_keys: Vec<&str> = items
            .iter()
            .filter(|e| e.id.is_none())
            .map(|e| e.key.as_str())
            .collect();
        let mut fresh = self.catalog.reserve_ids(&new_keys)?.into_iter();
        let mut records = Vec::with_capacity(items.len());
        let mut points = Vec::with_capacity(items.len());
        for e in items {
            let id =
                e.id.unwrap_or_else(|| fresh.next().expect("one reserved id per new file"));
            let rec = FileRecord {
                id,
                path: e.key,
                size: e.size,
                mtime_ns: e.mtime_ns,
                hash: e.hash,
                width: e.info.width,
                height: e.info.height,
                taken: e.info.exif_taken,
                tags: e
                    .emb
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.score))
                    .collect(),
            };
            points.push(Point {
                id,
                vector: e.emb.vector,
                metadata: point_metadata(&rec, &self.model_id),
            });
            records.push(rec);
        }
        self.store.upsert(&self.collection.name, &points)?;
        self.catalog.put(&records)?;
        Ok(records)
    }

    /// Stores an uploaded image under `data_dir/uploads` (named by its content hash and the
    /// format its bytes have, so the same image uploaded twice, under any name, is one image)
    /// and indexes it, in one pass: the bytes are decoded once and hashed once, a bad upload is
    /// refused before anything is written, the file is on disk (fsynced) before the catalog
    /// records it, and the record returned is the one committed.
    pub fn add_upload(&self, bytes: &[u8], filename: &str) -> Result<ImageRecord, EngineError> {
        self.ready()?;
        let min_side = self.encoder.embedder().preprocessor().min_source_side();
        let (img, info, ext) =
            embed::decode_bytes_info(bytes, filename, &self.config.limits, min_side)?;
        if !IMAGE_EXTENSIONS.contains(&ext) {
            return Err(EngineError::invalid(format!(
                "upload {filename}: not an image format imgsearch indexes"
            )));
        }
        let hash = blake3::hash(bytes).to_hex().to_string();
        let dir = self.config.data_dir.join("uploads");
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        let dest = dir.join(format!("{}.{ext}", &hash[..24]));
        let emb = self.encoder.embed(&img)?;
        drop(img);
        crate::files::write_durable(&dest, bytes).map_err(|e| EngineError::io(&dest, e))?;
        let canonical = dest.canonicalize().map_err(|e| EngineError::io(&dest, e))?;
        let key = canonical.to_string_lossy().into_owned();
        let meta = std::fs::metadata(&canonical).map_err(|e| EngineError::io(&dest, e))?;
        let _guard = self.ingest_lock.lock();
        // The same bytes uploaded before (or concurrently, by a request that committed first)
        // are already this image.
        let existing = self.catalog.by_path(&key)?;
        if let Some(r) = existing.as_ref().filter(|r| r.hash == hash) {
            return Ok(image_record(r));
        }
        let had_record = existing.is_some();
        let committed = self.commit(vec![Embedded {
            key,
            size: bytes.len() as u64,
            mtime_ns: mtime_ns(&meta),
            hash,
            id: existing.map(|r| r.id),
            emb,
            info,
        }]);
        match committed {
            Ok(records) => Ok(image_record(&records[0])),
            Err(e) => {
                // When no record points to the file (the lock is held, so none can appear), it
                // may go.
                if !had_record {
                    let _ = std::fs::remove_file(&canonical);
                }
                Err(e)
            }
        }
    }

    /// Removes an image from the store and the catalog (and deletes it if it was an upload).
    /// A file removed this way that still exists in an indexed folder comes back on the next
    /// `index_paths` of that folder.
    pub fn remove(&self, id: u64) -> Result<bool, EngineError> {
        let _guard = self.ingest_lock.lock();
        let Some(rec) = self.catalog.by_id(id)? else {
            return Ok(false);
        };
        self.store.delete(&self.collection.name, &[id])?;
        self.catalog.remove(&[id])?;
        let uploads = self.config.data_dir.join("uploads");
        let path = Path::new(&rec.path);
        if uploads.canonicalize().is_ok_and(|u| path.starts_with(u)) {
            let _ = std::fs::remove_file(path);
        }
        self.forget_thumbnails(id);
        Ok(true)
    }
}

#[derive(Default)]
struct Walked {
    candidates: Vec<Candidate>,
    seen: HashSet<String>,
    unreadable: Vec<PathBuf>,
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut hasher)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// A file's modification time in nanoseconds since the epoch (0 when the platform has none).
fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}
