//! ARCHITECTURE.md stays true: its list of crate dependencies is compared with `cargo metadata`,
//! and its list of the files that may hold `unsafe` with the files that do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root. Cargo sets CARGO_MANIFEST_DIR when it runs the test too, and that is
/// preferred: a test binary reused from a build of another checkout has the other one's
/// directory compiled in.
fn root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../..")
}

/// The bullet lines of the paragraph that starts with `heading` in ARCHITECTURE.md.
fn listed(heading: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md lacks {heading:?}"));
    text[start + heading.len()..]
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("- "))
        .map(|l| l[2..].to_string())
        .collect()
}

/// The names between backticks in `s`.
fn quoted(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn crate_dependencies_match_the_map() {
    let documented: BTreeMap<String, BTreeSet<String>> =
        listed("Crate dependencies within the workspace:")
            .iter()
            .map(|line| {
                let (name, deps) = line.split_once(':').expect("`crate`: deps");
                (quoted(name).remove(0), quoted(deps).into_iter().collect())
            })
            .collect();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let actual: BTreeMap<String, BTreeSet<String>> = packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|n| members.contains(n))
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect();
    assert_eq!(
        documented, actual,
        "ARCHITECTURE.md's crate dependencies differ from Cargo.toml's (left: the document)"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// True when a line of code (not a comment) opens an unsafe block, function or impl.
fn writes_unsafe(line: &str) -> bool {
    // Spelled in two halves so that this file does not count itself.
    const WORD: &str = concat!("un", "safe");
    let code = line.split("//").next().unwrap_or("");
    [" {", " fn", " impl", " extern"]
        .iter()
        .any(|after| code.contains(&format!("{WORD}{after}")))
}

#[test]
fn only_the_listed_files_hold_unsafe() {
    let allowed: Vec<String> = listed("Files that hold `unsafe`:")
        .iter()
        .flat_map(|l| quoted(l))
        .collect();
    assert!(!allowed.is_empty());
    let root = root();
    let mut files = Vec::new();
    for dir in ["crates", "bench"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut holders = BTreeSet::new();
    for f in files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).unwrap();
        if text.lines().any(writes_unsafe) {
            holders.insert(rel);
        }
    }
    let stray: Vec<_> = holders
        .iter()
        .filter(|f| !allowed.iter().any(|a| f.starts_with(a.as_str())))
        .collect();
    assert!(
        stray.is_empty(),
        "unsafe outside the files ARCHITECTURE.md names: {stray:?}"
    );
    for a in &allowed {
        assert!(
            holders.iter().any(|f| f.starts_with(a.as_str())),
            "ARCHITECTURE.md names {a} as holding unsafe, but it holds none"
        );
    }
}
