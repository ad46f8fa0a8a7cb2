//! The store conformance suite on the embedded store, and `open_store` URL handling.

mod store_suite;

use engine::store::{open_store, StoreError};
use store_suite::run_conformance;

#[test]
fn embedded_store_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("embedded:{}", dir.path().display())).unwrap();
    assert_eq!(store.kind(), "embedded");
    run_conformance(&*store, "conf");
    // A plain path works too, and sees what the first handle wrote.
    drop(store);
    let again = open_store(dir.path().to_str().unwrap()).unwrap();
    assert!(
        again.list_collections().unwrap().is_empty(),
        "suite drops what it creates"
    );
}

#[test]
fn bad_urls_are_rejected() {
    for url in ["", "embedded:", "http://example.com", "qdrant://x:1"] {
        assert!(
            matches!(open_store(url), Err(StoreError::InvalidUrl { .. })),
            "{url:?} must be rejected"
        );
    }
    #[cfg(not(feature = "milvus"))]
    assert!(matches!(
        open_store("milvus://127.0.0.1:19530"),
        Err(StoreError::InvalidUrl { .. })
    ));
}
