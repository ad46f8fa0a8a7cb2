//! The `imgsearch` binary end to end on a temporary folder of real photos.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{fixture, json_of, manifest, stop};

/// The binary with a configuration directory of its own, so that a configuration file in the
/// real user's home (`~/.config/imgsearch/imgsearch.toml`) cannot change what a test sees.
fn imgsearch(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgsearch"));
    cmd.env("XDG_CONFIG_HOME", data.with_extension("config-home"));
    cmd
}

/// Runs the binary with a private data dir, the repository's model and a clean environment.
fn run(data: &Path, args: &[&str]) -> Output {
    let mut cmd = imgsearch(data);
    for (k, _) in std::env::vars() {
        if k.starts_with("IMGSEARCH_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--model")
        .arg(manifest())
        .args(args)
        .env("IMGSEARCH_HNSW_EF", "64")
        .output()
        .expect("run imgsearch")
}

fn name(v: &Value) -> String {
    Path::new(v["path"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn index_reindex_search_dedup() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for f in ["coffee.jpg", "astronaut.jpg", "rocket.jpg"] {
        std::fs::copy(fixture(f), photos.join(f)).unwrap();
    }
    std::fs::write(photos.join("corrupt.jpg"), b"\xff\xd8\xff garbage").unwrap();
    let data = tmp.path().join("data");
    let p = photos.to_str().unwrap();

    // First run: three added, the corrupt file listed as failed, the run not stopped.
    let r = json_of(&run(&data, &["index", p, "--json"]));
    assert_eq!(r["added"], 3, "{r}");
    assert_eq!(r["failed"].as_array().unwrap().len(), 1);
    assert!(r["failed"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("corrupt.jpg"));
    assert!(!r["failed"][0]["reason"].as_str().unwrap().is_empty());

    // Nothing changed: nothing embedded.
    let r = json_of(&run(&data, &["index", p, "--json"]));
    assert_eq!(
        (r["added"].as_u64(), r["unchanged"].as_u64()),
        (Some(0), Some(3)),
        "{r}"
    );

    // Add a copy, change a file, delete a file: only the two new contents are embedded.
    std::fs::remove_file(photos.join("corrupt.jpg")).unwrap();
    std::fs::copy(fixture("coffee.jpg"), photos.join("coffee-copy.jpg")).unwrap();
    std::fs::copy(
        fixture("chelsea_small_rgb.png"),
        photos.join("astronaut.jpg"),
    )
    .unwrap();
    std::fs::remove_file(photos.join("rocket.jpg")).unwrap();
    let r = json_of(&run(&data, &["index", p, "--json"]));
    let counts: Vec<_> = ["added", "updated", "removed", "unchanged"]
        .iter()
        .map(|k| r[k].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![1, 1, 1, 1], "{r}");

    // The human summary names the counts.
    let out = run(&data, &["index", p]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 unchanged"));

    // An image finds itself (or its exact copy) first with a score of about 1.
    let coffee = photos.join("coffee.jpg");
    let hits = json_of(&run(
        &data,
        &["search", coffee.to_str().unwrap(), "--json", "-k", "3"],
    ));
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits[0]["score"].as_f64().unwrap() > 0.999);
    let top2: Vec<String> = hits[..2].iter().map(name).collect();
    assert!(top2.contains(&"coffee.jpg".to_string()), "{top2:?}");
    assert!(hits[2]["score"].as_f64().unwrap() < 0.9);

    // --similar-to leaves the image itself out: its copy comes first.
    let sim = json_of(&run(
        &data,
        &["search", "--similar-to", coffee.to_str().unwrap(), "--json"],
    ));
    assert_eq!(name(&sim[0]), "coffee-copy.jpg");

    // An example file with its exact copy as a counter-example by id: the copy is left out, and
    // since every image is as close to the counter-example as to the example, every score is
    // below zero (ties go to the counter-example); the file itself, on it, comes last.
    let copy_id = sim[0]["id"].as_u64().unwrap().to_string();
    let args = ["search", coffee.to_str().unwrap(), "--not-id", &copy_id];
    let refined = json_of(&run(
        &data,
        &[&args[..], &["--strategy", "best-score", "--json"]].concat(),
    ));
    let refined = refined.as_array().unwrap();
    assert_eq!(refined.len(), 2, "{refined:?}");
    assert_eq!(name(&refined[1]), "coffee.jpg");
    assert!(refined.iter().all(|h| h["score"].as_f64().unwrap() < 0.0));

    // Shorthand filters reach the store.
    let none = json_of(&run(
        &data,
        &[
            "search",
            coffee.to_str().unwrap(),
            "--json",
            "--min-size",
            "100000000",
        ],
    ));
    assert!(none.as_array().unwrap().is_empty());

    // Text search over auto-tags parses and returns hits with scores.
    let top_tag = hits[0]["metadata"]["tags"][0].as_str().unwrap().to_string();
    let text = json_of(&run(&data, &["search", "--text", &top_tag, "--json"]));
    assert!(!text.as_array().unwrap().is_empty(), "tag {top_tag}");

    // Dedup finds the exact copy.
    let groups = json_of(&run(&data, &["dedup", "--json"]));
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let mut names: Vec<String> = groups[0].as_array().unwrap().iter().map(name).collect();
    names.sort();
    assert_eq!(names, vec!["coffee-copy.jpg", "coffee.jpg"]);

    let status = json_of(&run(&data, &["status", "--json"]));
    assert_eq!(status["points"], 3);
    assert_eq!(status["dim"], 1280);
}

#[test]
fn errors_have_documented_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let code = |args: &[&str]| run(&data, args).status.code();
    // 2: bad command line.
    assert_eq!(code(&["search", "--k", "0", "x.jpg"]), Some(2));
    assert_eq!(code(&["search"]), Some(2));
    assert_eq!(code(&["search", "--not", "x.jpg"]), Some(2));
    assert_eq!(code(&["search", "--text", "cat", "--not-id", "1"]), Some(2));
    assert_eq!(code(&["search", "--strategy", "mean", "x.jpg"]), Some(2));
    assert_eq!(code(&["search", "--all", "x.jpg"]), Some(2));
    assert_eq!(code(&["search", "--sort", "date", "x.jpg"]), Some(2));
    assert_eq!(code(&["index"]), Some(2));
    assert_eq!(code(&["--no-such-flag", "status"]), Some(2));
    assert_eq!(
        code(&["search", "--filter", "{\"bogus\":1}", "x.jpg"]),
        Some(2)
    );
    assert_eq!(
        code(&["search", "--taken-after", "yesterday", "x.jpg"]),
        Some(2)
    );
    // 3: invalid configuration, from a file or a flag.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("imgsearch.toml"), "metric = \"manhattan\"\n").unwrap();
    let out = run(&data, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cosine, ip, l2"));
    std::fs::write(data.join("imgsearch.toml"), "metric = \"cosine\"\n").unwrap();
    assert_eq!(code(&["--threads", "0", "status"]), Some(3));
    assert_eq!(code(&["--collection", "a/b", "status"]), Some(3));
    // Serving beyond loopback without a token is refused before the model loads; a short
    // token is refused too.
    let out = run(&data, &["serve", "--bind", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure-no-auth"));
    assert_eq!(
        code(&["serve", "--bind", "127.0.0.1:0", "--token", "short"]),
        Some(3)
    );
    // 4: not found.
    assert_eq!(
        code(&["search", tmp.path().join("missing.jpg").to_str().unwrap()]),
        Some(4)
    );
    assert_eq!(
        code(&["index", tmp.path().join("missing").to_str().unwrap()]),
        Some(4)
    );
    assert_eq!(code(&["search", "--id", "12345"]), Some(4));
    // 5: invalid input (a file that is not an image).
    let bad = tmp.path().join("bad.jpg");
    std::fs::write(&bad, b"not an image").unwrap();
    assert_eq!(code(&["search", bad.to_str().unwrap()]), Some(5));
    // 6: the model cannot be loaded.
    let out = imgsearch(&data)
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--model",
            "/nonexistent/manifest.toml",
            "status",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --help documents the exit codes.
    let help = run(&data, &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"));
}

/// `train` writes a head and a manifest naming it; indexing and searching with that manifest
/// store and query the head's vectors, and the bare model is then refused on that collection.
#[test]
fn a_trained_head_is_used_through_its_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let data = tmp.path().join("labelled");
    for (class, files) in [
        (
            "a",
            ["coffee.jpg", "astronaut.jpg", "rocket.jpg", "chelsea.jpg"],
        ),
        ("b", ["grass.jpg", "gravel.jpg", "china.jpg", "flower.jpg"]),
    ] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for f in files {
            std::fs::copy(samples.join(f), data.join(class).join(f)).unwrap();
        }
    }
    let head = tmp.path().join("mine.head");
    let dd = tmp.path().join("train-data");
    let out = run(
        &dd,
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--loss",
            "triplet",
            "--head",
            "linear",
            "--dim",
            "16",
            "--epochs",
            "2",
            "--holdout",
            "0.25",
            "--batch-classes",
            "2",
            "--batch-samples",
            "2",
            "--out",
            head.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = tmp.path().join("mine.toml");
    assert!(head.is_file() && manifest.is_file());

    // Like `run`, but with the written manifest as the model.
    let with_head = |args: &[&str]| {
        imgsearch(&tmp.path().join("index"))
            .arg("--data-dir")
            .arg(tmp.path().join("index"))
            .arg("--model")
            .arg(&manifest)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(with_head(&["index", data.to_str().unwrap()])
        .status
        .success());
    let status = json_of(&with_head(&["status", "--json"]));
    assert!(
        status["model"].as_str().unwrap().contains("+head@"),
        "{status}"
    );
    assert_eq!(status["dim"], 16);
    let coffee = data.join("a/coffee.jpg");
    let hits = json_of(&with_head(&["search", coffee.to_str().unwrap(), "--json"]));
    assert_eq!(name(&hits[0]), "coffee.jpg");
    assert!(hits[0]["score"].as_f64().unwrap() > 0.999);

    // The bare model on the head's collection: refused with the model exit code.
    let bare = run(
        &tmp.path().join("index"),
        &["search", coffee.to_str().unwrap()],
    );
    assert_eq!(
        bare.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
}

/// SIGTERM drains the server and saves the index snapshot: the process exits 0 and logs it.
#[cfg(unix)]
#[test]
fn serve_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let child = Command::new(env!("CARGO_BIN_EXE_imgsearch"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--model")
        .arg(manifest())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, log) = stop(child);
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("index snapshot saved"), "{log}");
    assert!(data.join("db/images/index.snap").exists(), "{log}");
}
