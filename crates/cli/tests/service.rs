//! `imgsearch serve` as the owner of its data directory: the other commands go through it with
//! the same output and exit codes as when they open the directory themselves; a server killed
//! with -9 leaves a stale `server.json` that they recognise; SIGTERM saves the index snapshot, so
//! the next start does not rebuild the index.

#![cfg(unix)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{fixture, json_of, manifest, stop};

/// The binary with a private data dir, configuration home and the repository's model.
fn imgsearch(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgsearch"));
    for (k, _) in std::env::vars() {
        if k.starts_with("IMGSEARCH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", data.with_extension("config-home"))
        .arg("--data-dir")
        .arg(data)
        .arg("--model")
        .arg(manifest());
    cmd
}

fn run(data: &Path, args: &[&str]) -> Output {
    imgsearch(data).args(args).output().expect("run imgsearch")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `serve` and waits until its `server.json` names it and it answers. The lint cannot
/// see that the child is handed to the caller, which waits for it in `stop`.
#[allow(clippy::zombie_processes)]
fn serve(data: &Path) -> Child {
    let port = free_port();
    let mut child = imgsearch(data)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let file: Option<Value> = std::fs::read(data.join("server.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if file.is_some_and(|f| f["pid"] == child.id())
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return child;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, sig: &str) {
    signal_pid(child.id(), sig);
}

fn signal_pid(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// The commands whose output must not depend on whether a server runs.
fn observations(data: &Path, photos: &Path) -> Vec<(Vec<String>, Option<i32>, String)> {
    let coffee = photos.join("coffee.jpg");
    let coffee = coffee.to_str().unwrap();
    let chelsea = fixture("chelsea.png");
    let chelsea = chelsea.to_str().unwrap();
    let not_indexed = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cases: Vec<Vec<&str>> = vec![
        vec!["search", "--text", "rocket", "-k", "3"],
        vec!["search", "--text", "rocket", "--json"],
        vec!["search", chelsea, "--json", "-k", "2"],
        vec!["search", "--similar-to", coffee, "--json"],
        vec!["search", "--id", "1", "--threshold", "0.1"],
        // Examples and counter-examples: files go as uploads, ids as fields.
        vec![
            "search",
            chelsea,
            coffee,
            "--not-id",
            "1",
            "--strategy",
            "best-score",
            "--json",
        ],
        vec!["search", "--id", "2", "--not", chelsea, "--json"],
        // Every image within a threshold, newest first, read page by page.
        vec![
            "search",
            "--id",
            "1",
            "--threshold",
            "-1",
            "--all",
            "--sort",
            "date",
        ],
        vec![
            "search",
            "--text",
            "space",
            "--filter",
            r#"{"range":{"field":"width","gte":100}}"#,
        ],
        vec!["dedup", "--threshold", "0.5"],
        vec!["status"],
        // Failures: not found (4) and invalid input (5).
        vec!["search", "--id", "999999"],
        vec!["search", "--id", "1", "--not-id", "999999"],
        vec!["search", "/no/such/image.jpg"],
        vec!["search", "--similar-to", not_indexed.to_str().unwrap()],
        vec!["search", "--text", "   "],
        vec!["index", "/no/such/folder"],
    ];
    cases
        .into_iter()
        .map(|args| {
            let out = run(data, &args);
            let mut stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if args[0] == "status" {
                // Memory figures depend on what the process holding the index has done.
                stdout = stdout
                    .lines()
                    .filter(|l| !l.starts_with("memory:"))
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            (
                args.iter().map(|s| s.to_string()).collect(),
                out.status.code(),
                stdout,
            )
        })
        .collect()
}

#[test]
fn commands_go_through_a_running_server_and_recognise_a_stale_one() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for f in ["coffee.jpg", "astronaut.jpg", "rocket.jpg"] {
        std::fs::copy(fixture(f), photos.join(f)).unwrap();
    }
    let data = tmp.path().join("data");
    let photos_arg = photos.to_str().unwrap();
    let indexed = json_of(&run(&data, &["index", photos_arg, "--json"]));
    assert_eq!(indexed["added"], 3);
    let direct = observations(&data, &photos);
    // The searches, dedup and status succeed; the last six cases fail.
    assert!(
        direct[..11].iter().all(|(_, code, _)| *code == Some(0)),
        "{direct:?}"
    );
    assert!(direct.iter().any(|(_, code, _)| *code == Some(4)));
    assert!(direct.iter().any(|(_, code, _)| *code == Some(5)));

    let server = serve(&data);
    let file: Value =
        serde_json::from_slice(&std::fs::read(data.join("server.json")).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("server.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(file["token"].as_str().unwrap().len(), 64);
    // Without the server, these commands could not open the directory (its locks are held).
    let through = observations(&data, &photos);
    for (d, t) in direct.iter().zip(&through) {
        assert_eq!(d, t, "direct and through the server differ");
    }
    // A migration copies the directory's collection, which the server may be changing: it is
    // refused with the way out, not attempted against the held locks.
    let copy = tmp.path().join("copy");
    let migrate = run(&data, &["migrate", "--to", copy.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&migrate.stderr);
    assert_eq!(migrate.status.code(), Some(3), "{err}");
    assert!(err.contains("stop it before migrating"), "{err}");

    // Indexing through the server: a job, followed to its end, reported as `index` reports.
    std::fs::copy(fixture("chelsea.png"), photos.join("chelsea.png")).unwrap();
    let out = run(&data, &["index", photos_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("1 added, 0 updated, 0 removed, 3 unchanged, 0 skipped, 0 failed in "),
        "{text}"
    );
    let again = json_of(&run(&data, &["index", photos_arg, "--json"]));
    assert_eq!(
        (again["added"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(4))
    );

    // kill -9 leaves server.json behind; the next command recognises it as stale and opens
    // the directory itself.
    signal(&server, "-KILL");
    let (_, _) = stop(server);
    assert!(data.join("server.json").exists());
    let status = json_of(&run(&data, &["status", "--json"]));
    assert_eq!(status["points"], 4);
    let search = run(&data, &["search", "--text", "rocket", "-k", "3"]);
    assert_eq!(search.status.code(), Some(0));
}

#[test]
fn sigterm_saves_the_index_and_the_next_start_does_not_rebuild_it() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::copy(fixture("coffee.jpg"), photos.join("coffee.jpg")).unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    // Points added while the server runs make the snapshot on disk stale until it is saved.
    let out = run(&data, &["index", photos.to_str().unwrap(), "--json"]);
    assert_eq!(json_of(&out)["added"], 1);
    signal(&server, "-TERM");
    let (status, log) = stop(server);
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("index snapshot saved"), "{log}");
    assert!(!data.join("server.json").exists(), "{log}");

    let server = serve(&data);
    signal(&server, "-TERM");
    let (status, log) = stop(server);
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(!log.contains("rebuilding"), "the index was rebuilt:\n{log}");
    assert!(log.contains("index snapshot saved"), "{log}");
    let status = json_of(&run(&data, &["status", "--json"]));
    assert_eq!(status["points"], 1);
}

/// `GET path` on the server named in `server.json`, answered as JSON.
fn get_json(data: &Path, path: &str) -> Value {
    use std::io::{Read, Write};
    let file: Value =
        serde_json::from_slice(&std::fs::read(data.join("server.json")).unwrap()).unwrap();
    let address = file["address"].as_str().unwrap();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

/// Ctrl-C on `index` going through a server cancels the job, as it stops a direct `index`.
#[test]
fn ctrl_c_on_index_cancels_the_servers_job() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    // 180 files: six batches of the ingest, so that the job is still running at the signal.
    for i in 0..60 {
        for f in ["coffee.jpg", "astronaut.jpg", "rocket.jpg"] {
            std::fs::copy(fixture(f), photos.join(format!("{i}-{f}"))).unwrap();
        }
    }
    let data = tmp.path().join("data");
    let server = serve(&data);
    let mut index = imgsearch(&data)
        .args(["index", photos.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_json(&data, "/api/jobs")["jobs"][0]["state"] != "running" {
        if Instant::now() >= deadline {
            let _ = index.kill();
            let _ = index.wait();
            panic!("the job did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The client installs its handler as soon as the job is accepted.
    std::thread::sleep(Duration::from_millis(150));
    signal_pid(index.id(), "-INT");
    let out = index.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cancelling job 1"), "{stderr}");
    assert!(stderr.contains("was cancelled"), "{stderr}");
    let job = get_json(&data, "/api/jobs/1");
    assert_eq!(job["state"], "cancelled", "{job}");
    let added = job["report"]["added"].as_u64().unwrap();
    assert!(added < 180, "{job}");
    // What the job stored before it stopped is kept and catalogued.
    let status = json_of(&run(&data, &["status", "--json"]));
    assert_eq!(status["points"].as_u64(), Some(added));
    signal(&server, "-TERM");
    let (status, log) = stop(server);
    assert!(status.success(), "{log}");
}
