//! Copying a collection between two stores (embedded to Milvus and back), for
//! `imgsearch migrate --from URL --to URL --collection NAME`.
//!
//! The copy pages through the source with `scan` (ascending ids) and upserts each page into the
//! target, so it needs memory for one page only and can be resumed: running it again after an
//! interruption re-copies pages by id, which upsert makes harmless. It expects no other writer
//! on either side while it runs; the final count check reports one if there was.

use std::time::Instant;

use vecdb::CollectionConfig;

use crate::store::{StoreError, VectorStore};

/// Points per scan page and per upsert call: 256 points of 1280 floats are 1.3 MB.
pub const PAGE: usize = 256;

/// What a migration did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MigrateReport {
    pub collection: String,
    /// The config the target collection has (created from the source's when missing).
    pub config: CollectionConfig,
    /// Whether the target collection was created by this run.
    pub created: bool,
    /// Points copied by this run.
    pub copied: u64,
    pub source_count: u64,
    pub target_count: u64,
    pub seconds: f64,
}

/// Opens the two stores by URL (see [`crate::store::open_store`]) and copies `collection` from
/// the first to the second with [`migrate`]. No model is loaded: migration moves vectors.
pub fn migrate_urls(
    from_url: &str,
    to_url: &str,
    collection: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<MigrateReport, StoreError> {
    let from = crate::store::open_store(from_url)?;
    let to = crate::store::open_store(to_url)?;
    migrate(&*from, &*to, collection, progress)
}

/// Copies `collection` from `from` to `to`: its config (creating the target collection when
/// missing), then all points in pages of [`PAGE`], then checks that both sides hold the same
/// number of points and that the last page reads back from the target. `progress(done, total)`
/// is called after every page.
///
/// An existing target must have the same dimension and metric (its index may differ, so one
/// can migrate into a collection prepared with other index parameters).
pub fn migrate(
    from: &dyn VectorStore,
    to: &dyn VectorStore,
    collection: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<MigrateReport, StoreError> {
    let started = Instant::now();
    let source =
        from.collection_info(collection)?
            .ok_or_else(|| StoreError::UnknownCollection {
                name: collection.to_string(),
            })?;
    let (config, created) = prepare_target(to, &source)?;
    let total = from.count(collection)?;
    tracing::info!(
        collection,
        total,
        from = from.kind(),
        to = to.kind(),
        "migrating"
    );
    progress(0, total);
    let mut copied = 0u64;
    let mut after = None;
    let mut last_page = Vec::new();
    loop {
        let page = from.scan(collection, after, PAGE)?;
        if page.is_empty() {
            break;
        }
        to.upsert(collection, &page)?;
        copied += page.len() as u64;
        after = page.last().map(|p| p.id);
        progress(copied, total.max(copied));
        last_page = page;
    }
    verify(from, to, collection, &last_page)?;
    let source_count = from.count(collection)?;
    let target_count = to.count(collection)?;
    if source_count != target_count || copied != source_count {
        return Err(StoreError::Rejected {
            reason: format!(
                "migration of {collection} ended with {source_count} points in the source, \
                 {target_count} in the target and {copied} copied; was another writer active, \
                 or did the target hold other points?"
            ),
        });
    }
    Ok(MigrateReport {
        collection: collection.to_string(),
        config,
        created,
        copied,
        source_count,
        target_count,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Creates the target collection from the source's config, or checks an existing one.
fn prepare_target(
    to: &dyn VectorStore,
    source: &CollectionConfig,
) -> Result<(CollectionConfig, bool), StoreError> {
    match to.collection_info(&source.name)? {
        None => {
            to.create_collection(source)?;
            Ok((source.clone(), true))
        }
        Some(existing) if existing.dim == source.dim && existing.metric == source.metric => {
            Ok((existing, false))
        }
        Some(existing) => Err(StoreError::Rejected {
            reason: format!(
                "target collection {} exists with dimension {} and metric {:?}, but the source \
                 has dimension {} and metric {:?}",
                source.name, existing.dim, existing.metric, source.dim, source.metric
            ),
        }),
    }
}

/// Reads the last copied page back from the target and compares ids and metadata; vectors are
/// compared with a tolerance, since a store may normalise them (cosine) or round them.
fn verify(
    from: &dyn VectorStore,
    to: &dyn VectorStore,
    collection: &str,
    page: &[vecdb::Point],
) -> Result<(), StoreError> {
    let ids: Vec<u64> = page.iter().map(|p| p.id).collect();
    let back = to.get(collection, &ids)?;
    let mismatch = |what: String| StoreError::Rejected {
        reason: format!(
            "migration check failed: {what} ({} to {})",
            from.kind(),
            to.kind()
        ),
    };
    if back.len() != page.len() {
        return Err(mismatch(format!(
            "{} of the last {} points read back",
            back.len(),
            page.len()
        )));
    }
    for (a, b) in page.iter().zip(&back) {
        if a.id != b.id || a.metadata != b.metadata {
            return Err(mismatch(format!("point {} differs", a.id)));
        }
        if !same_direction(&a.vector, &b.vector) {
            return Err(mismatch(format!("vector of point {} differs", a.id)));
        }
    }
    Ok(())
}

/// Equal up to a positive scale factor (cosine stores may keep unit vectors).
fn same_direction(a: &[f32], b: &[f32]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return na == nb;
    }
    dot / (na * nb) > 1.0 - 1e-5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;
    use serde_json::json;
    use std::cell::RefCell;
    use vecdb::{IndexSpec, Metric, Point};

    fn source(dir: &std::path::Path, n: u64) -> EmbeddedStore {
        let store = EmbeddedStore::open(dir).unwrap();
        let config = CollectionConfig {
            name: "images".into(),
            dim: 3,
            metric: Metric::Cosine,
            index: IndexSpec::Flat,
        };
        store.create_collection(&config).unwrap();
        let points: Vec<Point> = (0..n)
            .map(|i| {
                Point::with_metadata(
                    i * 3 + 1,
                    vec![1.0 + i as f32, 2.0, 0.5],
                    json!({"path": format!("/p/{i}.jpg"), "tags": ["a"]}),
                )
            })
            .collect();
        store.upsert("images", &points).unwrap();
        store
    }

    #[test]
    fn copies_config_and_every_point_with_progress() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = source(a.path(), 600);
        let to = EmbeddedStore::open(b.path()).unwrap();
        let calls = RefCell::new(Vec::new());
        let report = migrate(&from, &to, "images", &|d, t| {
            calls.borrow_mut().push((d, t))
        })
        .unwrap();
        assert!(report.created);
        assert_eq!(
            (report.copied, report.source_count, report.target_count),
            (600, 600, 600)
        );
        assert_eq!(
            to.collection_info("images").unwrap(),
            from.collection_info("images").unwrap()
        );
        let calls = calls.into_inner();
        assert_eq!(calls.first(), Some(&(0, 600)));
        assert_eq!(calls.last(), Some(&(600, 600)));
        assert!(calls.windows(2).all(|w| w[0].0 < w[1].0), "{calls:?}");
        let p = to.get("images", &[3 * 599 + 1]).unwrap();
        assert_eq!(p[0].metadata, json!({"path": "/p/599.jpg", "tags": ["a"]}));
    }

    #[test]
    fn resumes_into_a_partly_filled_target() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = source(a.path(), 300);
        let to = EmbeddedStore::open(b.path()).unwrap();
        to.create_collection(&from.collection_info("images").unwrap().unwrap())
            .unwrap();
        to.upsert("images", &from.scan("images", None, 100).unwrap())
            .unwrap();
        let report = migrate(&from, &to, "images", &|_, _| {}).unwrap();
        assert!(!report.created);
        assert_eq!(report.target_count, 300);
    }

    #[test]
    fn refuses_missing_sources_and_mismatched_targets() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = source(a.path(), 5);
        let to = EmbeddedStore::open(b.path()).unwrap();
        assert!(matches!(
            migrate(&from, &to, "nothing", &|_, _| {}),
            Err(StoreError::UnknownCollection { .. })
        ));
        to.create_collection(&CollectionConfig {
            name: "images".into(),
            dim: 4,
            metric: Metric::Cosine,
            index: IndexSpec::Flat,
        })
        .unwrap();
        assert!(matches!(
            migrate(&from, &to, "images", &|_, _| {}),
            Err(StoreError::Rejected { .. })
        ));
        assert_eq!(to.count("images").unwrap(), 0, "nothing copied");
    }

    #[test]
    fn extra_points_in_the_target_fail_the_count_check() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = source(a.path(), 10);
        let to = EmbeddedStore::open(b.path()).unwrap();
        to.create_collection(&from.collection_info("images").unwrap().unwrap())
            .unwrap();
        to.upsert("images", &[Point::new(999_999, vec![1.0, 0.0, 0.0])])
            .unwrap();
        match migrate(&from, &to, "images", &|_, _| {}) {
            Err(StoreError::Rejected { reason }) => assert!(reason.contains("11 in the target")),
            other => panic!("expected a count mismatch, got {other:?}"),
        }
    }

    #[test]
    fn direction_check_tolerates_scale_only() {
        assert!(same_direction(&[1.0, 2.0], &[0.5, 1.0]));
        assert!(!same_direction(&[1.0, 2.0], &[2.0, 1.0]));
        assert!(!same_direction(&[1.0], &[1.0, 0.0]));
    }
}
