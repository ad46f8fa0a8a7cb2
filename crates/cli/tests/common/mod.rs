//! Helpers shared by the CLI's integration tests.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output};

use serde_json::Value;

/// The JSON a successful command printed; a failed one fails the test with its output.
pub fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// A photo of the embed crate's test fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../embed/tests/fixtures")
        .join(name)
}

/// The repository's model manifest.
#[allow(dead_code)] // Not every test file indexes with the repository's model.
pub fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/efficientnet-lite0/manifest.toml")
}

/// Waits for a server started with its stderr piped to exit, and returns its status and log.
#[allow(dead_code)] // Only the test files that start servers use it.
pub fn stop(mut child: Child) -> (ExitStatus, String) {
    use std::io::Read;
    let status = child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    (status, log)
}
