#!/usr/bin/env bash
# Lints and the Rust test suite of the whole workspace.
set -euo pipefail
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The optional features (ort, cuda, milvus) are linted too; their tests run in later steps.
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo test --workspace --locked
