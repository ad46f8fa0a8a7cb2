//! A watched library kept in sync: the first scan, then new, changed, renamed and removed files,
//! and a file written slowly, each indexed by a job of the watch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::jobs::Jobs;
use server::watch::{self, WatchConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../embed/tests/fixtures")
        .join(name)
}

/// Waits until `check` holds, or fails with what `describe` says.
fn eventually(what: &str, engine: &engine::Engine, check: impl Fn(&engine::Engine) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check(engine) {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn indexed(engine: &engine::Engine, path: &Path) -> Option<engine::ImageRecord> {
    let key = path.to_str().unwrap();
    engine.image_by_indexed_path(key).unwrap()
}

#[test]
fn a_watched_library_follows_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().canonicalize().unwrap().join("library");
    std::fs::create_dir_all(lib.join("2024")).unwrap();
    std::fs::copy(fixture("coffee.jpg"), lib.join("coffee.jpg")).unwrap();
    let data = dir.path().join("data");
    let engine = Arc::new(
        engine::Engine::open(engine::EngineConfig {
            data_dir: data.clone(),
            ..Default::default()
        })
        .unwrap(),
    );
    let jobs = Arc::new(Jobs::new(engine.clone()));
    let config = WatchConfig {
        libraries: vec![lib.clone()],
        debounce: Duration::from_millis(300),
        rescan: Duration::from_secs(3600),
        ignore: vec![data],
    };
    let watch = watch::start(jobs.clone(), config).unwrap().unwrap();
    let points = |e: &engine::Engine| e.status().unwrap().points;

    // The first scan indexes what is there.
    eventually("the first scan", &engine, |e| points(e) == 1);
    // A new file, in a subfolder.
    std::fs::copy(fixture("rocket.jpg"), lib.join("2024/rocket.jpg")).unwrap();
    eventually("a new file", &engine, |e| {
        indexed(e, &lib.join("2024/rocket.jpg")).is_some()
    });
    // A changed file keeps its id and gets the new content's dimensions.
    let before = indexed(&engine, &lib.join("coffee.jpg")).unwrap();
    std::fs::copy(fixture("chelsea.png"), lib.join("coffee.jpg")).unwrap();
    eventually("a changed file", &engine, |e| {
        indexed(e, &lib.join("coffee.jpg"))
            .is_some_and(|r| r.id == before.id && r.width != before.width)
    });
    // A renamed file is found under its new name only.
    std::fs::rename(lib.join("2024/rocket.jpg"), lib.join("rocket-launch.jpg")).unwrap();
    eventually("a renamed file", &engine, |e| {
        indexed(e, &lib.join("rocket-launch.jpg")).is_some()
            && indexed(e, &lib.join("2024/rocket.jpg")).is_none()
    });
    assert_eq!(points(&engine), 2);
    // A removed file leaves the index.
    std::fs::remove_file(lib.join("coffee.jpg")).unwrap();
    eventually("a removed file", &engine, |e| {
        indexed(e, &lib.join("coffee.jpg")).is_none() && points(e) == 1
    });
    // A file written slowly: its first half fails to decode (nothing is catalogued), and it is
    // indexed once it is whole.
    let bytes = std::fs::read(fixture("astronaut.jpg")).unwrap();
    let slow = lib.join("astronaut.jpg");
    let mut file = std::fs::File::create(&slow).unwrap();
    file.write_all(&bytes[..bytes.len() / 2]).unwrap();
    file.flush().unwrap();
    let failed_once = |jobs: &Jobs| {
        jobs.list().iter().any(|j| {
            j.report
                .as_ref()
                .is_some_and(|r| r.failed.iter().any(|(p, _)| p == &slow))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !failed_once(&jobs) {
        assert!(
            Instant::now() < deadline,
            "the half-written file was not tried"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(indexed(&engine, &slow).is_none());
    file.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(file);
    eventually("a file written slowly", &engine, |e| {
        indexed(e, &slow).is_some()
    });
    drop(watch);
    jobs.close();
    jobs.wait();
}
