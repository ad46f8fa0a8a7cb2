//! Helpers shared by the CLI's integration tests.

use std::process::Output;

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
