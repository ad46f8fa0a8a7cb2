//! A projection head named by the model manifest is applied at index and at query time, and it
//! is part of the model identity the collection records.

use std::path::{Path, PathBuf};

use common::Classified;
use engine::{Engine, EngineConfig, EngineError, NoProgress, Query};
use train::{Head, HeadArch};
use vecdb::IndexSpec;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../embed/tests/fixtures")
        .join(name)
}

fn config(data: &Path, manifest: PathBuf) -> EngineConfig {
    EngineConfig {
        data_dir: data.to_path_buf(),
        model: embed::ModelSource::Manifest(manifest),
        index: IndexSpec::Flat,
        ..EngineConfig::default()
    }
}

/// The default manifest naming `head` (a file in `dir`) as its projection head, written to `dir`.
fn manifest_with_head(dir: &Path, head: &str) -> PathBuf {
    let m = embed::ModelManifest::load(&embed::default_manifest_path()).unwrap();
    let path = dir.join(format!("manifest-{head}.toml"));
    std::fs::write(&path, m.to_toml_with_head(&dir.join(head)).unwrap()).unwrap();
    path
}

fn bare_model_id() -> String {
    embed::Embedder::load(&embed::default_manifest_path(), &Default::default())
        .unwrap()
        .model_id()
        .to_string()
}

#[test]
fn head_projects_indexed_and_query_vectors_and_guards_the_collection() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["coffee.jpg", "astronaut.jpg", "rocket.jpg"] {
        std::fs::copy(fixture(name), photos.join(name)).unwrap();
    }
    let model_id = bare_model_id();
    let head = Head::init(HeadArch::Linear { out: 64 }, 1280, &model_id, 7).unwrap();
    head.save(&tmp.path().join("a.head")).unwrap();
    let manifest = manifest_with_head(tmp.path(), "a.head");

    let data = tmp.path().join("data");
    let eng = Engine::open(config(&data, manifest.clone())).unwrap();
    assert_eq!(
        eng.collection().dim,
        64,
        "vectors have the head's output size"
    );
    assert!(eng.model_id().starts_with(&format!("{model_id}+head@")));
    let r = eng
        .index_paths(std::slice::from_ref(&photos), &NoProgress)
        .unwrap();
    assert_eq!(r.added, 3);
    // The query goes through the same head: an indexed photo finds itself with score ~1.
    let hits = eng
        .search_path(&photos.join("coffee.jpg"), &Query::default())
        .unwrap();
    assert!(hits[0].path.ends_with("coffee.jpg"), "{hits:?}");
    assert!(hits[0].score > 0.999, "{hits:?}");
    drop(eng);

    // The bare model on the same collection is refused, and so is another head.
    let e = Engine::open(config(&data, embed::default_manifest_path()))
        .and_then(|eng| eng.search_path(&photos.join("coffee.jpg"), &Query::default()))
        .unwrap_err();
    assert!(matches!(e, EngineError::ModelMismatch { .. }), "{e}");
    let other = Head::init(HeadArch::Linear { out: 64 }, 1280, &model_id, 8).unwrap();
    other.save(&tmp.path().join("b.head")).unwrap();
    let e = Engine::open(config(&data, manifest_with_head(tmp.path(), "b.head")))
        .and_then(|eng| eng.index_paths(std::slice::from_ref(&photos), &NoProgress))
        .unwrap_err();
    assert!(matches!(e, EngineError::ModelMismatch { .. }), "{e}");
}

#[test]
fn a_head_for_another_model_or_a_corrupt_head_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let head = Head::init(
        HeadArch::Linear { out: 32 },
        1280,
        "other-model@000000000000",
        1,
    )
    .unwrap();
    head.save(&tmp.path().join("other.head")).unwrap();
    let e = Engine::open(config(
        &tmp.path().join("d1"),
        manifest_with_head(tmp.path(), "other.head"),
    ))
    .err()
    .expect("a head of another model must be refused");
    assert!(
        matches!(
            e,
            EngineError::Embed(embed::EmbedError::Head {
                problem: embed::HeadError::ModelMismatch { .. },
                ..
            })
        ),
        "{e}"
    );
    assert_eq!(e.class().origin, common::Origin::Model);

    std::fs::write(tmp.path().join("bad.head"), b"not a head at all").unwrap();
    let e = Engine::open(config(
        &tmp.path().join("d2"),
        manifest_with_head(tmp.path(), "bad.head"),
    ))
    .err()
    .expect("a corrupt head must be refused");
    assert!(
        matches!(
            e,
            EngineError::Embed(embed::EmbedError::Head {
                problem: embed::HeadError::Envelope(_),
                ..
            })
        ),
        "{e}"
    );

    let e = Engine::open(config(
        &tmp.path().join("d3"),
        manifest_with_head(tmp.path(), "missing.head"),
    ))
    .err()
    .expect("a missing head must be refused");
    assert!(
        matches!(e, EngineError::Embed(embed::EmbedError::Io { .. })),
        "{e}"
    );
    assert_eq!(e.class().kind, common::ErrorKind::NotFound);
}
