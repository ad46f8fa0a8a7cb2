//! The engine end to end on real photos and the real model: ingest (incremental), queries,
//! dedup, thumbnails, uploads, recovery after an interrupted batch, and the model guard.

use std::path::{Path, PathBuf};

use common::Classified;
use engine::catalog::Catalog;
use engine::{Engine, EngineConfig, EngineError, NoProgress, Query};
use vecdb::{IndexSpec, Point};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../embed/tests/fixtures")
        .join(name)
}

fn config(data: &Path) -> EngineConfig {
    EngineConfig {
        data_dir: data.to_path_buf(),
        // Exact search keeps the assertions about ranks free of ANN effects.
        index: IndexSpec::Flat,
        ..EngineConfig::default()
    }
}

/// A folder with three photos, returned canonicalised (the catalog keys are canonical).
fn photos(root: &Path) -> PathBuf {
    let dir = root.join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["coffee.jpg", "astronaut.jpg", "rocket.jpg"] {
        std::fs::copy(fixture(name), dir.join(name)).unwrap();
    }
    dir.canonicalize().unwrap()
}

#[test]
fn ingest_query_dedup_thumbnail_upload_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = photos(tmp.path());
    std::fs::write(dir.join("broken.jpg"), b"\xff\xd8 not really a jpeg").unwrap();
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
    let eng = Engine::open(config(&tmp.path().join("data"))).unwrap();

    let r = eng
        .index_paths(std::slice::from_ref(&dir), &NoProgress)
        .unwrap();
    assert_eq!((r.added, r.updated, r.removed, r.unchanged), (3, 0, 0, 0));
    assert_eq!(r.failed.len(), 1, "{:?}", r.failed);
    assert!(r.failed[0].0.ends_with("broken.jpg"));
    assert!(r.skipped.iter().any(|(p, _)| p.ends_with("notes.txt")));

    // The library, newest first, two at a time: every image once, in order, then no cursor.
    let first = eng.library(None, 2).unwrap();
    assert_eq!((first.images.len(), first.total), (2, 3));
    let second = eng.library(first.next, 2).unwrap();
    assert_eq!(second.images.len(), 1);
    assert!(second.next.is_none());
    let all: Vec<_> = first.images.iter().chain(&second.images).collect();
    assert!(all.windows(2).all(|w| w[0].mtime >= w[1].mtime));
    let ids: std::collections::HashSet<u64> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(eng.library(None, 0).is_err());
    assert!("12:x".parse::<engine::LibraryCursor>().is_err());

    // An image finds itself first, with a score of about 1.
    let coffee = dir.join("coffee.jpg");
    let hits = eng.search_path(&coffee, &Query::default()).unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].path, coffee);
    assert!(hits[0].score > 0.999, "{}", hits[0].score);
    assert!(hits[1].score < 0.9);
    let bytes = std::fs::read(&coffee).unwrap();
    let by_bytes = eng
        .search_bytes(
            &bytes,
            &Query {
                k: 1,
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(by_bytes[0].id, hits[0].id);
    let by_id = eng.search_id(hits[0].id, &Query::default()).unwrap();
    assert!(
        by_id.iter().all(|h| h.id != hits[0].id),
        "search_id leaves itself out"
    );
    assert_eq!(by_id.len(), 2);

    // Filters go through to the store.
    let only_rocket = Query {
        filter: Some(vecdb::Filter::eq(
            "path",
            dir.join("rocket.jpg").to_str().unwrap(),
        )),
        ..Query::default()
    };
    let hits_f = eng.search_path(&coffee, &only_rocket).unwrap();
    assert_eq!(hits_f.len(), 1);
    assert!(hits_f[0].path.ends_with("rocket.jpg"));

    // Text search over auto-tags: the coffee photo is tagged espresso/cup by ImageNet.
    let rec = eng.image(hits[0].id).unwrap().unwrap();
    let tag = rec.tags[0].name.clone();
    let text = eng.search_text(&tag, &Query::default()).unwrap();
    assert_eq!(text[0].id, rec.id, "searching its top tag {tag:?} finds it");
    assert!(matches!(
        eng.search_text(" ", &Query::default()),
        Err(EngineError::InvalidInput { .. })
    ));
    let k0 = eng.search_path(
        &coffee,
        &Query {
            k: 0,
            ..Query::default()
        },
    );
    assert_eq!(k0.unwrap_err().kind(), common::ErrorKind::InvalidInput);

    // Dedup: an exact copy forms a group, the other photos do not.
    std::fs::copy(&coffee, dir.join("coffee-copy.jpg")).unwrap();
    let r = eng
        .index_paths(std::slice::from_ref(&dir), &NoProgress)
        .unwrap();
    assert_eq!((r.added, r.unchanged), (1, 3));
    let groups = eng.dedup(0.95).unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let names: Vec<_> = groups[0]
        .iter()
        .map(|h| h.path.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(groups[0].iter().all(|h| h.score > 0.999));

    // Thumbnails fit the box, keep the aspect ratio and are cached.
    let jpeg = eng.thumbnail(rec.id, 64).unwrap().unwrap();
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!(img.width().max(img.height()), 64);
    assert_eq!(eng.thumbnail(rec.id, 64).unwrap().unwrap(), jpeg);
    assert!(
        std::fs::read_dir(tmp.path().join("data/thumbnails"))
            .unwrap()
            .count()
            >= 1
    );
    assert!(eng.thumbnail(999_999, 64).unwrap().is_none());
    assert!(eng.thumbnail(rec.id, 1).is_err());

    // Uploads: stored once, searchable, removable; garbage changes nothing.
    let before = eng.status().unwrap().points;
    assert_eq!(
        eng.status().unwrap().runtime,
        "tract",
        "the default runtime is reported"
    );
    let up = eng
        .add_upload(&std::fs::read(dir.join("rocket.jpg")).unwrap(), "r.jpg")
        .unwrap();
    assert_eq!(eng.status().unwrap().points, before + 1);
    let again = eng
        .add_upload(&std::fs::read(dir.join("rocket.jpg")).unwrap(), "r2.jpg")
        .unwrap();
    assert_eq!(again.id, up.id, "same bytes, same upload");
    assert!(up.width > 0 && up.height > 0);
    assert_eq!(
        eng.image_by_path(&up.path).unwrap().unwrap().id,
        up.id,
        "the record returned is the one committed"
    );
    // The upload's catalog record (size, mtime, hash) matches its file: indexing the uploads
    // folder finds nothing to do.
    let uploads = tmp.path().join("data/uploads");
    let r = eng
        .index_paths(std::slice::from_ref(&uploads), &NoProgress)
        .unwrap();
    assert_eq!((r.added, r.updated, r.unchanged), (0, 0, 1), "{r:?}");
    assert!(eng.add_upload(b"garbage", "x.jpg").is_err());
    assert_eq!(
        std::fs::read_dir(&uploads).unwrap().count(),
        1,
        "garbage left no file"
    );
    assert_eq!(eng.status().unwrap().points, before + 1);
    assert!(eng.remove(up.id).unwrap());
    assert!(!up.path.exists(), "an upload's file goes with it");
    assert!(!eng.remove(up.id).unwrap());
    assert_eq!(eng.status().unwrap().points, before);
}

#[test]
fn incremental_reindex_and_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = photos(tmp.path());
    let data = tmp.path().join("data");
    let eng = Engine::open(config(&data)).unwrap();
    let r = eng
        .index_paths(std::slice::from_ref(&dir), &NoProgress)
        .unwrap();
    assert_eq!(r.added, 3);
    let astro_id = eng
        .image_by_path(&dir.join("astronaut.jpg"))
        .unwrap()
        .unwrap()
        .id;

    // Touching a file (same bytes, new mtime) does not re-embed it.
    let f = std::fs::File::options()
        .write(true)
        .open(dir.join("coffee.jpg"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    // Changing one keeps its id; deleting one removes it.
    std::fs::copy(fixture("chelsea_small_rgb.png"), dir.join("astronaut.jpg")).unwrap();
    std::fs::remove_file(dir.join("rocket.jpg")).unwrap();
    let r = eng
        .index_paths(std::slice::from_ref(&dir), &NoProgress)
        .unwrap();
    assert_eq!(
        (r.added, r.updated, r.removed, r.unchanged),
        (0, 1, 1, 1),
        "{r:?}"
    );
    let astro = eng
        .image_by_path(&dir.join("astronaut.jpg"))
        .unwrap()
        .unwrap();
    assert_eq!(astro.id, astro_id, "a changed file keeps its id");
    assert_eq!(eng.status().unwrap().points, 2);
    drop(eng);

    // Simulate a crash between storing a batch and cataloguing it: a reserved id whose point is
    // in the store but not in the catalog. Reopening removes the stray point.
    {
        let cat = Catalog::open(&data.join("catalog.redb"), "images").unwrap();
        let ids = cat.reserve_ids(&["/nowhere.jpg"]).unwrap();
        let store = engine::store::open_store(data.join("db").to_str().unwrap()).unwrap();
        let v = store.get("images", &[astro_id]).unwrap().remove(0).vector;
        store
            .upsert(
                "images",
                &[Point {
                    id: ids[0],
                    vector: v,
                    metadata: serde_json::json!({}),
                }],
            )
            .unwrap();
        assert_eq!(store.count("images").unwrap(), 3);
    }
    let eng = Engine::open(config(&data)).unwrap();
    assert_eq!(
        eng.status().unwrap().points,
        2,
        "orphan point removed on open"
    );
    let r = eng
        .index_paths(std::slice::from_ref(&dir), &NoProgress)
        .unwrap();
    assert_eq!((r.added, r.unchanged), (0, 2));
    drop(eng);

    // Vectors of another model are never mixed in.
    Catalog::open(&data.join("catalog.redb"), "images")
        .unwrap()
        .set_model("another-model@0123456789ab", 100)
        .unwrap();
    let eng = Engine::open(config(&data)).unwrap();
    let s = eng.status().unwrap();
    assert_eq!(
        s.collection_model.as_deref(),
        Some("another-model@0123456789ab")
    );
    let e = eng
        .index_paths(std::slice::from_ref(&dir), &NoProgress)
        .unwrap_err();
    assert!(matches!(e, EngineError::ModelMismatch { .. }), "{e}");
    assert!(matches!(
        eng.search_path(&dir.join("coffee.jpg"), &Query::default()),
        Err(EngineError::ModelMismatch { .. })
    ));
}

#[test]
fn missing_root_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let eng = Engine::open(config(&tmp.path().join("data"))).unwrap();
    let e = eng
        .index_paths(&[tmp.path().join("nope")], &NoProgress)
        .unwrap_err();
    assert!(matches!(e, EngineError::NotFound { .. }), "{e}");
}

/// Pauses an ingest at its first embedded file until the test lets it go on.
struct Gate {
    paused: std::sync::atomic::AtomicBool,
    reached: std::sync::mpsc::SyncSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl engine::ProgressSink for Gate {
    fn start(&self, _total: u64) {}
    fn advance(&self, _n: u64, _msg: &str) {
        if !self.paused.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let _ = self.reached.send(());
            let _ = self.release.lock().unwrap().recv();
        }
    }
    fn finish(&self) {}
}

#[test]
fn an_upload_and_a_removal_go_through_while_an_ingest_is_embedding() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = photos(tmp.path());
    let eng = Engine::open(config(&tmp.path().join("data"))).unwrap();
    let (reached_tx, reached) = std::sync::mpsc::sync_channel(1);
    let (release, release_rx) = std::sync::mpsc::channel();
    let gate = Gate {
        paused: std::sync::atomic::AtomicBool::new(false),
        reached: reached_tx,
        release: std::sync::Mutex::new(release_rx),
    };
    std::thread::scope(|s| {
        let job = s.spawn(|| eng.index_paths(std::slice::from_ref(&dir), &gate));
        reached
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the ingest reached its first file");
        // The ingest is paused in the middle of embedding: an upload and a removal must not
        // wait for it (before, the whole ingest held the lock and this deadlocked).
        let (done_tx, done) = std::sync::mpsc::channel();
        let eng = &eng;
        s.spawn(move || {
            let up = eng.add_upload(&std::fs::read(fixture("chelsea.png")).unwrap(), "c.png");
            let removed = up.as_ref().map(|r| eng.remove(r.id));
            done_tx
                .send((up.is_ok(), removed.ok().and_then(Result::ok)))
                .unwrap();
        });
        let outcome = done.recv_timeout(std::time::Duration::from_secs(120));
        release.send(()).unwrap();
        assert_eq!(outcome.ok(), Some((true, Some(true))));
        let report = job.join().unwrap().unwrap();
        assert_eq!(report.added, 3);
    });
    assert_eq!(eng.status().unwrap().points, 3);
}

/// Several examples and counter-examples: both strategies, ids left out, bad input refused.
#[test]
fn search_by_examples_and_counter_examples() {
    use engine::{Example, Examples, Strategy};
    let tmp = tempfile::tempdir().unwrap();
    let dir = photos(tmp.path());
    for name in ["chelsea.png", "chelsea_small_rgb.png"] {
        std::fs::copy(fixture(name), dir.join(name)).unwrap();
    }
    let eng = Engine::open(config(&tmp.path().join("data"))).unwrap();
    eng.index_paths(std::slice::from_ref(&dir), &NoProgress)
        .unwrap();
    let id = |name: &str| eng.image_by_path(&dir.join(name)).unwrap().unwrap().id;
    let q = Query::default();
    let search = |positive: Vec<Example>, negative: Vec<Example>, strategy| {
        let ex = Examples {
            positive,
            negative,
            strategy,
        };
        eng.search_examples(&ex, &q)
    };
    let file = |name: &str| Example::File(dir.join(name));

    // best_score: each of two unlike photos finds itself first, whatever the other looks like.
    let hits = search(
        vec![file("coffee.jpg"), file("rocket.jpg")],
        vec![],
        Strategy::BestScore,
    )
    .unwrap();
    let top: std::collections::HashSet<u64> = hits[..2].iter().map(|h| h.id).collect();
    assert_eq!(top, [id("coffee.jpg"), id("rocket.jpg")].into());
    assert!(hits[..2].iter().all(|h| h.score > 0.74), "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

    // A counter-example: the cat photos, closest to it, score below zero and come last.
    let cats = [id("chelsea.png"), id("chelsea_small_rgb.png")];
    let hits = search(
        vec![Example::Id(id("coffee.jpg"))],
        vec![file("chelsea.png")],
        Strategy::BestScore,
    )
    .unwrap();
    assert_eq!(hits.len(), 4, "the positive given by id is left out");
    for h in &hits {
        assert_eq!(cats.contains(&h.id), h.score < 0.0, "{hits:?}");
    }

    // average: one search with 2 * positive - negative; ids given are left out of the results.
    let hits = search(
        vec![Example::Id(id("coffee.jpg"))],
        vec![Example::Id(id("chelsea.png"))],
        Strategy::Average,
    )
    .unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits
        .iter()
        .all(|h| ![id("coffee.jpg"), cats[0]].contains(&h.id)));
    assert_eq!(
        hits[2].id, cats[1],
        "the copy of the counter-example ranks last"
    );
    // One positive and the average strategy is the plain search by that image.
    let one = search(vec![file("rocket.jpg")], vec![], Strategy::Average).unwrap();
    let plain = eng.search_path(&dir.join("rocket.jpg"), &q).unwrap();
    let ids = |h: &[engine::SearchHit]| h.iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(ids(&one), ids(&plain));

    // Refused: no positive, an unknown id, too many examples.
    let e = search(vec![], vec![file("coffee.jpg")], Strategy::Average).unwrap_err();
    assert!(matches!(e, EngineError::InvalidInput { .. }), "{e}");
    let e = search(vec![Example::Id(999_999)], vec![], Strategy::BestScore).unwrap_err();
    assert!(
        matches!(e, EngineError::ImageNotFound { id: 999_999 }),
        "{e}"
    );
    let many = vec![Example::Id(id("coffee.jpg")); engine::MAX_EXAMPLES + 1];
    let e = search(many, vec![], Strategy::Average).unwrap_err();
    assert!(matches!(e, EngineError::InvalidInput { .. }), "{e}");
}

/// Every image within a threshold, page by page, best first or newest first.
#[test]
fn results_page_by_cursor_in_score_or_date_order() {
    use engine::{Order, SearchInput};
    let tmp = tempfile::tempdir().unwrap();
    let dir = photos(tmp.path());
    for name in ["chelsea.png", "chelsea_small_rgb.png"] {
        std::fs::copy(fixture(name), dir.join(name)).unwrap();
    }
    // Distinct file times, newest last in this list; none has an EXIF date.
    let names = [
        "chelsea.png",
        "astronaut.jpg",
        "chelsea_small_rgb.png",
        "rocket.jpg",
        "coffee.jpg",
    ];
    for (i, name) in names.iter().enumerate() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000 + i as u64);
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(name))
            .unwrap();
        f.set_modified(t).unwrap();
    }
    let eng = Engine::open(config(&tmp.path().join("data"))).unwrap();
    eng.index_paths(std::slice::from_ref(&dir), &NoProgress)
        .unwrap();
    let examples = engine::Examples::one(engine::Example::File(dir.join("coffee.jpg")));
    let input = SearchInput::Examples(&examples);
    let within = Query {
        threshold: Some(-1.0),
        ..Query::default()
    };
    let all = eng.search(input, &within).unwrap();
    assert_eq!(all.hits.len(), 5);
    assert!(all.next.is_none());

    for order in [Order::Score, Order::Date] {
        let mut q = Query {
            k: 2,
            order,
            ..within.clone()
        };
        let mut paged = Vec::new();
        loop {
            let page = eng.search(input, &q).unwrap();
            assert!(page.hits.len() <= 2);
            paged.extend(page.hits);
            match page.next {
                Some(next) => q.cursor = Some(next),
                None => break,
            }
        }
        let ids: Vec<u64> = paged.iter().map(|h| h.id).collect();
        match order {
            Order::Score => assert_eq!(ids, all.hits.iter().map(|h| h.id).collect::<Vec<_>>()),
            Order::Date => {
                let newest_first: Vec<String> = paged
                    .iter()
                    .map(|h| h.path.file_name().unwrap().to_string_lossy().into_owned())
                    .collect();
                let mut expected: Vec<&str> = names.to_vec();
                expected.reverse();
                assert_eq!(newest_first, expected);
            }
        }
    }

    // A threshold cuts the ranking: the pages end where the scores do.
    let tight = Query {
        threshold: Some(0.5),
        k: 1,
        ..Query::default()
    };
    let first = eng.search(input, &tight).unwrap();
    assert_eq!(first.hits[0].path, dir.join("coffee.jpg"));
    let second = Query {
        cursor: first.next,
        ..tight.clone()
    };
    let rest = eng.search(input, &second).unwrap();
    assert!(rest.hits.iter().all(|h| h.score >= 0.5), "{:?}", rest.hits);

    // Refused: date order without a threshold, a cursor made for another order.
    let no_threshold = Query {
        order: Order::Date,
        ..Query::default()
    };
    let e = eng.search(input, &no_threshold).unwrap_err();
    assert!(matches!(e, EngineError::InvalidInput { .. }), "{e}");
    let mixed = Query {
        cursor: Some("date:2".parse().unwrap()),
        ..within
    };
    let e = eng.search(SearchInput::Text("cat"), &mixed).unwrap_err();
    assert!(matches!(e, EngineError::InvalidInput { .. }), "{e}");
}
