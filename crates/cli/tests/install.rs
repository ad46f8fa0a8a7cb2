//! The binary as an installed tool: copied away from the source tree, run from other working
//! directories with a private home, it keeps one index in the platform's data directory and
//! uses the model built into it; completions, the man page and the legacy `./.imgsearch` notice.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{fixture, json_of};

/// A temporary home (`HOME` and `XDG_*` inside it) and a copy of the binary outside the source
/// tree, so nothing of the real user's is read or written and no model file is found on disk.
struct Sandbox {
    root: tempfile::TempDir,
    bin: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin/imgsearch");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_imgsearch"), &bin).unwrap();
        Sandbox { root, bin }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Runs the copied binary in `cwd` (created if needed) with only the sandbox's home.
    fn run(&self, cwd: &str, args: &[&str]) -> Output {
        let cwd = self.path(cwd);
        std::fs::create_dir_all(&cwd).unwrap();
        let home = self.path("home");
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"));
        // Another test thread forking while this test's copy was still open for writing leaves
        // the child a copy of that descriptor until it execs, and running the file meanwhile
        // fails with "text file busy": that clears within moments, so it is retried.
        for _ in 0..100 {
            match cmd.output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other.expect("run imgsearch"),
            }
        }
        panic!("{} stayed busy", self.bin.display())
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
#[cfg_attr(
    not(feature = "bundled-model"),
    ignore = "needs the model built into the binary (feature bundled-model)"
)]
fn a_copied_binary_indexes_and_searches_one_home_from_any_folder() {
    let s = Sandbox::new();
    let photos = s.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for f in ["coffee.jpg", "astronaut.jpg", "rocket.jpg"] {
        std::fs::copy(fixture(f), photos.join(f)).unwrap();
    }
    let r = json_of(&s.run("one", &["index", photos.to_str().unwrap(), "--json"]));
    assert_eq!(r["added"], 3, "{r}");

    // Another working directory finds the same index.
    let coffee = photos.join("coffee.jpg");
    let hits = json_of(&s.run("two", &["search", coffee.to_str().unwrap(), "--json"]));
    let first = Path::new(hits[0]["path"].as_str().unwrap());
    assert_eq!(first.file_name().unwrap(), "coffee.jpg", "{hits}");

    let data = s.path("home/.local/share/imgsearch");
    let status = json_of(&s.run("three", &["status", "--json"]));
    assert_eq!(status["points"], 3, "{status}");
    assert_eq!(Path::new(status["data_dir"].as_str().unwrap()), data);
    assert!(status["model_source"]
        .as_str()
        .unwrap()
        .starts_with("embedded:"));
    let text = stdout(&s.run("three", &["status"]));
    assert!(text.contains(&data.display().to_string()), "{text}");
    assert!(
        text.contains("model from:  embedded:efficientnet-lite0"),
        "{text}"
    );
    for cwd in ["one", "two", "three"] {
        assert!(!s.path(cwd).join(".imgsearch").exists());
    }

    // The same model written out and configured has the built-in model's id: the collection
    // made with the built-in one accepts it.
    let exported = s.path("exported-model");
    let out = s.run("one", &["models", "--export", exported.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "manifest.toml",
        "model.onnx",
        "labels.txt",
        "LICENSE",
        "NOTICE",
    ] {
        assert!(exported.join(f).is_file(), "{f}");
    }
    let hits = json_of(&s.run(
        "two",
        &[
            "--model",
            exported.to_str().unwrap(),
            "search",
            coffee.to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(hits[0]["score"].as_f64().unwrap() > 0.999, "{hits}");
    let models = json_of(&s.run(
        "two",
        &["--model", exported.to_str().unwrap(), "models", "--json"],
    ));
    let rows = models.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{models}");
    assert_eq!(rows[0]["id"], rows[1]["id"], "{models}");
    assert_eq!(
        (&rows[0]["in_use"], &rows[1]["in_use"]),
        (&Value::Bool(false), &Value::Bool(true))
    );
    // Exporting again over the same files is refused.
    let again = s.run("one", &["models", "--export", exported.to_str().unwrap()]);
    assert!(!again.status.success());
}

#[test]
fn a_legacy_index_in_the_working_directory_is_used_with_a_notice() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("old/.imgsearch")).unwrap();
    let out = s.run("old", &["config", "--json"]);
    let config = json_of(&out);
    assert_eq!(config["data_dir"], ".imgsearch");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("./.imgsearch"), "{err}");

    let out = s.run("new", &["config", "--json"]);
    let config = json_of(&out);
    let data = s.path("home/.local/share/imgsearch");
    assert_eq!(Path::new(config["data_dir"].as_str().unwrap()), data);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The platform's configuration directory is read too.
    let conf = s.path("home/.config/imgsearch");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("imgsearch.toml"), "collection = \"mine\"\n").unwrap();
    let config = json_of(&s.run("new", &["config", "--json"]));
    assert_eq!(config["collection"], "mine");
}
#[test]
fn completions_and_man_page_come_from_the_command_definitions() {
    let s = Sandbox::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef imgsearch"),
        ("fish", "complete -c imgsearch"),
    ] {
        let text = stdout(&s.run(".", &["completions", shell]));
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(
            text.contains("data-dir") && text.contains("search"),
            "{shell}"
        );
    }
    assert!(!s.run(".", &["completions", "tcsh"]).status.success());
    let man = stdout(&s.run(".", &["man"]));
    assert!(
        man.starts_with(".ie") || man.contains(".TH imgsearch"),
        "{man}"
    );
    assert!(man.contains("index") && man.contains("data\\-dir"), "{man}");
}
