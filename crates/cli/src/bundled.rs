//! The default model, compiled into the binary (cargo feature `bundled-model`, on by default) so
//! that a copied or `cargo install`ed binary needs nothing beside it. The bytes are those of
//! `models/efficientnet-lite0/`, so the model id (a hash of the ONNX bytes) is the one a
//! collection made with `--model models/efficientnet-lite0/manifest.toml` carries.
//!
//! This is the only place the bytes are included: the integration tests run the binary rather
//! than link this crate, so the 18 MB are compiled into the binary and its unit-test binary only.

/// The embedded default model.
pub static MODEL: embed::EmbeddedModel = embed::EmbeddedModel {
    manifest: include_str!("../../../models/efficientnet-lite0/manifest.toml"),
    files: &[
        (
            "model.onnx",
            include_bytes!("../../../models/efficientnet-lite0/model.onnx"),
        ),
        (
            "labels.txt",
            include_bytes!("../../../models/efficientnet-lite0/labels.txt"),
        ),
        (
            "LICENSE",
            include_bytes!("../../../models/efficientnet-lite0/LICENSE"),
        ),
        (
            "NOTICE",
            include_bytes!("../../../models/efficientnet-lite0/NOTICE"),
        ),
    ],
};

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The embedded model and the source tree's copy have the same id, so either can search a
    /// collection the other made.
    #[test]
    fn embedded_and_on_disk_ids_agree() {
        let disk = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/efficientnet-lite0/manifest.toml");
        let embedded = embed::ModelSource::Embedded(&super::MODEL);
        assert_eq!(
            embedded.model_id().unwrap(),
            embed::ModelSource::Manifest(disk).model_id().unwrap()
        );
    }
}
