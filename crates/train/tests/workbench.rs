//! Evaluation measures what the index stores: the workbench embeds through the same
//! `embed::Encoder` as the engine, so a head the model's manifest names is applied by default,
//! and `--head` (`Workbench::use_head`) replaces it.

use std::path::Path;

use common::{Classified, ErrorKind};
use train::learn::Workbench;
use train::{Head, HeadArch};

/// The default manifest naming `head` (a file in `dir`), written to `dir`.
fn manifest_with_head(dir: &Path, head: &str) -> embed::ModelSource {
    let m = embed::ModelManifest::load(&embed::default_manifest_path()).unwrap();
    let path = dir.join(format!("manifest-{head}.toml"));
    std::fs::write(&path, m.to_toml_with_head(&dir.join(head)).unwrap()).unwrap();
    embed::ModelSource::Manifest(path)
}

fn open(dir: &Path, model: &embed::ModelSource) -> Workbench {
    Workbench::open(
        model,
        &Default::default(),
        embed::DecodeLimits::default(),
        dir.join("embeddings.cache"),
    )
    .unwrap()
}

#[test]
fn the_manifests_head_projects_by_default_and_use_head_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = embed::ModelSource::Manifest(embed::default_manifest_path());
    let wb = open(tmp.path(), &bare);
    assert!(wb.encoder.head().is_none());
    let model_id = wb.encoder.embedder().model_id().to_string();
    let dim = wb.encoder.embedder().dim();
    let rows = vec![vec![0.5f32; dim], (0..dim).map(|i| i as f32).collect()];
    assert_eq!(wb.project(&rows).unwrap().cols(), dim);

    Head::init(HeadArch::Linear { out: 16 }, dim, &model_id, 3)
        .unwrap()
        .save(&tmp.path().join("a.head"))
        .unwrap();
    let mut wb = open(tmp.path(), &manifest_with_head(tmp.path(), "a.head"));
    assert_eq!(wb.encoder.dim(), 16, "the manifest's head is loaded");
    let projected = wb.project(&rows).unwrap();
    assert_eq!((projected.rows(), projected.cols()), (2, 16));

    Head::init(HeadArch::Linear { out: 8 }, dim, &model_id, 4)
        .unwrap()
        .save(&tmp.path().join("b.head"))
        .unwrap();
    wb.use_head(&tmp.path().join("b.head")).unwrap();
    assert_eq!(wb.project(&rows).unwrap().cols(), 8, "--head replaces it");

    // A head of another model is refused as a conflict, and the encoder keeps the one it had.
    Head::init(HeadArch::Linear { out: 4 }, dim, "other-model@0", 5)
        .unwrap()
        .save(&tmp.path().join("c.head"))
        .unwrap();
    let e = wb.use_head(&tmp.path().join("c.head")).unwrap_err();
    assert_eq!(e.class().kind, ErrorKind::Conflict, "{e}");
    assert_eq!(wb.encoder.dim(), 8);
}
