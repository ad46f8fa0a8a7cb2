//! Client mode: while `imgsearch serve` owns a data directory (it holds the store's and the
//! catalog's locks), the commands that read or write the index go through its HTTP API, found in
//! `DATA_DIR/server.json` (see `server::owner`). This module is only transport: each call is one
//! of the API's routes, which run the same engine use cases the commands run when they open the
//! directory themselves, and the answers come back as the engine's own types, so that the
//! commands print them with the same code. API errors carry their stable code, which maps to the
//! same exit code as the engine error behind it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::jobs::{JobInfo, JobState};
use engine::{
    EngineError, Example, Examples, IndexReport, Order, ProgressSink, Query, SearchHit,
    SearchInput, SearchPage,
};
use serde_json::{json, Value};
use server::owner::{self, ServerFile};

use crate::config::{ConfigError, Settings};
use crate::exit;

/// How long a server named in `server.json` has to answer its health check before the file is
/// taken for one left by a server that is gone.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest wait for one answer. The server bounds every request by its own timeout (120 s by
/// default), and an event stream sends a keep-alive every 15 s.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A failure the server reported: the API's stable error code, its message and, for errors of
/// the engine and below, their classification.
#[derive(Debug)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub class: Option<common::Class>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// The exit code the same failure has when the command opens the directory itself: the
    /// classification's, by the same table, when the server sent one; otherwise the failure is
    /// the HTTP layer's own (a body it refused, a path it may not index, no answer at all).
    pub fn exit_code(&self) -> u8 {
        if let Some(class) = self.class {
            return exit::exit_of(class);
        }
        match self.code.as_str() {
            "image_not_found" | "not_found" | "route_not_found" => exit::NOT_FOUND,
            "invalid_parameter"
            | "invalid_json"
            | "invalid_multipart"
            | "not_an_image"
            | "payload_too_large"
            | "unsupported_media_type"
            | "wrong_dimension" => exit::INVALID_INPUT,
            "path_not_allowed" => exit::CONFIG,
            "unreachable" | "store_unavailable" => exit::STORE,
            _ => exit::INTERNAL,
        }
    }
}

/// The server that owns the data directory, reached over HTTP.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
    file: ServerFile,
}

/// The live server named in `data_dir/server.json`, if any: the file exists, its process is
/// alive and its address answers. A file left by a server killed without a chance to clean up
/// fails one of the checks and is ignored.
pub fn live_server(data_dir: &Path) -> Option<Client> {
    let file = owner::read(data_dir)?;
    if !owner::process_alive(file.pid) {
        tracing::info!(
            pid = file.pid,
            "ignoring the server file of a process that is gone"
        );
        return None;
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(HEALTH_TIMEOUT)
        .timeout_read(READ_TIMEOUT)
        .build();
    let client = Client {
        base: format!("http://{}", file.address),
        token: file.token.clone(),
        agent,
        file,
    };
    let answer = client
        .agent
        .get(&client.url("/healthz"))
        .timeout(HEALTH_TIMEOUT)
        .call();
    match answer.map(read_json) {
        Ok(Ok(v)) if v["status"] == "ok" => Some(client),
        // Another program may have taken the port of a server that is gone.
        Ok(_) => {
            tracing::info!(address = %client.file.address, "ignoring the server file: its address is not an imgsearch server");
            None
        }
        Err(err) => {
            tracing::info!(%err, address = %client.file.address, "ignoring the server file of a server that does not answer");
            None
        }
    }
}

/// The client for the commands' settings, when a server owns their data directory. A server
/// serving another collection than the one asked for is an error: the directory cannot be
/// opened beside it, and its answers would be about the wrong collection.
pub fn for_settings(settings: &Settings) -> anyhow::Result<Option<Client>> {
    let Some(client) = live_server(&settings.engine.data_dir) else {
        return Ok(None);
    };
    if client.file.collection != settings.engine.collection {
        return Err(ConfigError(format!(
            "imgsearch serve (pid {}, http://{}/) owns {} and serves collection {:?}, not {:?}; \
             use --collection {} or stop the server",
            client.file.pid,
            client.file.address,
            settings.engine.data_dir.display(),
            client.file.collection,
            settings.engine.collection,
            client.file.collection
        ))
        .into());
    }
    tracing::info!(address = %client.file.address, "going through the running server");
    Ok(Some(client))
}

impl Client {
    /// What `server.json` says about the server.
    pub fn file(&self) -> &ServerFile {
        &self.file
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &self.url(path))
            .set("Authorization", &format!("Bearer {}", self.token))
    }

    /// Reads the JSON answer of a request sent, or the API error it carries.
    fn answer(&self, sent: Result<ureq::Response, ureq::Error>) -> Result<Value, ApiError> {
        let response = sent.map_err(|err| self.error(err))?;
        read_json(response)
    }

    fn error(&self, err: ureq::Error) -> ApiError {
        match err {
            ureq::Error::Status(_, response) => match read_json(response) {
                Ok(body) => {
                    let e = &body["error"];
                    let kind = e["kind"].as_str().and_then(common::ErrorKind::parse);
                    let origin = e["origin"].as_str().and_then(common::Origin::parse);
                    ApiError {
                        code: e["code"].as_str().unwrap_or("internal").to_string(),
                        message: e["message"]
                            .as_str()
                            .unwrap_or("the server gave no reason")
                            .to_string(),
                        class: kind.zip(origin).map(|(k, o)| common::Class::new(k, o, "")),
                    }
                }
                Err(e) => e,
            },
            ureq::Error::Transport(t) => ApiError {
                code: "unreachable".into(),
                message: format!(
                    "the server at http://{}/ (pid {}) did not answer: {t}",
                    self.file.address, self.file.pid
                ),

                class: None,
            },
        }
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        let mut request = self.request("GET", path);
        for (k, v) in query {
            request = request.query(k, v);
        }
        self.answer(request.call())
    }

    /// `GET /api/status`: the engine's status as JSON, without the server's own settings.
    pub fn status(&self) -> Result<Value, ApiError> {
        let mut v = self.get("/api/status", &[])?;
        if let Some(o) = v.as_object_mut() {
            o.remove("server");
        }
        Ok(v)
    }

    /// `GET /api/dedup`.
    pub fn dedup(&self, threshold: f32) -> anyhow::Result<Vec<Vec<SearchHit>>> {
        let v = self.get("/api/dedup", &[("threshold", threshold.to_string())])?;
        Ok(serde_json::from_value(v["groups"].clone())?)
    }

    /// The search parameters as the API's query string or multipart fields.
    fn query_fields(q: &Query) -> anyhow::Result<Vec<(&'static str, String)>> {
        let mut fields = vec![("k", q.k.to_string())];
        if let Some(t) = q.threshold {
            fields.push(("threshold", t.to_string()));
        }
        if let Some(f) = &q.filter {
            fields.push(("filter", serde_json::to_string(f)?));
        }
        if q.order != Order::Score {
            fields.push((
                "sort",
                serde_json::to_value(q.order)?
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        if let Some(c) = q.cursor {
            fields.push(("cursor", c.to_string()));
        }
        Ok(fields)
    }

    fn page(v: Value) -> anyhow::Result<SearchPage> {
        let next = match v["next"].as_str() {
            Some(c) => Some(c.parse()?),
            None => None,
        };
        Ok(SearchPage {
            hits: serde_json::from_value(v["hits"].clone())?,
            next,
        })
    }

    /// One page of a search, as [`engine::Engine::search`] answers it: `GET /api/search?text=`
    /// for words, `POST /api/search` for examples.
    pub fn search(&self, input: SearchInput<'_>, q: &Query) -> anyhow::Result<SearchPage> {
        match input {
            SearchInput::Text(words) => {
                let mut fields = Self::query_fields(q)?;
                fields.push(("text", words.to_string()));
                Self::page(self.get("/api/search", &fields)?)
            }
            SearchInput::Examples(examples) => self.search_examples(examples, q),
        }
    }

    /// `POST /api/search` with the examples: files are sent as uploads (the server need not be
    /// able to read them), ids as the `positive` / `negative` fields.
    fn search_examples(&self, examples: &Examples, q: &Query) -> anyhow::Result<SearchPage> {
        let boundary = format!("imgsearch-{:016x}", rand_u64());
        let mut body = Vec::with_capacity(1024);
        let field = |body: &mut Vec<u8>, name: &str, value: &str| {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        };
        for (name, value) in Self::query_fields(q)? {
            field(&mut body, name, &value);
        }
        let strategy = serde_json::to_value(examples.strategy)?;
        field(&mut body, "strategy", strategy.as_str().unwrap_or_default());
        let lists = [
            (&examples.positive, "image", "positive"),
            (&examples.negative, "negative_image", "negative"),
        ];
        for (list, upload, ids) in lists {
            for example in list {
                let bytes = match example {
                    Example::Id(id) => {
                        field(&mut body, ids, &id.to_string());
                        continue;
                    }
                    Example::Bytes(bytes) => bytes.clone(),
                    Example::File(path) => std::fs::read(path).map_err(|e| {
                        let what = format!("file {}", path.display());
                        match e.kind() {
                            std::io::ErrorKind::NotFound => {
                                anyhow::Error::new(EngineError::NotFound { what })
                            }
                            _ => anyhow::Error::new(e).context(format!("I/O error on {what}")),
                        }
                    })?,
                };
                body.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{upload}\"; \
                         filename=\"query\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(&bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let request = self.request("POST", "/api/search").set(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        );
        Self::page(self.answer(request.send_bytes(&body))?)
    }

    /// The id of the image indexed under `path` (`GET /api/images?path=`), `None` when it is not
    /// indexed. The path is made canonical here, as the engine does, since it is the client's.
    pub fn indexed_id(&self, path: &Path) -> anyhow::Result<Option<u64>> {
        let canonical = path.canonicalize().map_err(|e| {
            anyhow::Error::new(e).context(format!("I/O error on {}", path.display()))
        })?;
        let key = canonical.to_string_lossy().into_owned();
        match self.get("/api/images", &[("path", key)]) {
            Ok(v) => Ok(v["id"].as_u64()),
            Err(e) if e.code == "not_found" => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Indexes `paths` through a job on the server, following its progress with `progress`;
    /// when another job is running, waits for it first. The paths are the client's: they are
    /// made absolute and canonical here, with the errors the engine would give.
    pub fn index(
        &self,
        paths: &[PathBuf],
        progress: &dyn ProgressSink,
    ) -> anyhow::Result<IndexReport> {
        let mut canonical = Vec::with_capacity(paths.len());
        for p in paths {
            let c = p.canonicalize().map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => anyhow::Error::new(EngineError::NotFound {
                    what: format!("path {}", p.display()),
                }),
                _ => anyhow::Error::new(e).context(format!("I/O error on {}", p.display())),
            })?;
            canonical.push(c);
        }
        let body = json!({ "paths": canonical }).to_string();
        let job: JobInfo = loop {
            let request = self
                .request("POST", "/api/jobs/index")
                .set("Content-Type", "application/json");
            match self.answer(request.send_string(&body)) {
                Ok(v) => break serde_json::from_value(v)?,
                Err(e) if e.code == "job_running" => {
                    let running = self.running_job()?;
                    if let Some(id) = running {
                        eprintln!("waiting for job {id}, running on the server, to finish");
                        self.follow(id, &engine::NoProgress)?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.cancel_on_ctrl_c(job.id);
        let end = self.follow(job.id, progress)?;
        match end.state {
            JobState::Done => Ok(end.report.unwrap_or_default()),
            JobState::Failed => {
                let Some(err) = end.error else {
                    return Err(ApiError {
                        code: "internal".into(),
                        message: "the job failed without a reason".into(),
                        class: None,
                    }
                    .into());
                };
                let kind = common::ErrorKind::parse(&err.kind);
                let origin = common::Origin::parse(&err.origin);
                Err(ApiError {
                    code: err.code,
                    message: err.message,
                    class: kind.zip(origin).map(|(k, o)| common::Class::new(k, o, "")),
                }
                .into())
            }
            JobState::Cancelled | JobState::Running => Err(ApiError {
                code: "cancelled".into(),
                message: format!(
                    "job {} was cancelled on the server after {} files; indexing again resumes",
                    end.id, end.done
                ),

                class: None,
            }
            .into()),
        }
    }

    /// Ctrl-C stops the indexing as it does when `index` runs the engine itself: the job is
    /// cancelled (it stops after its current batch, which is kept) and followed to its end; a
    /// second Ctrl-C leaves at once. Without this, Ctrl-C would only stop following.
    fn cancel_on_ctrl_c(&self, id: u64) {
        let url = self.url(&format!("/api/jobs/{id}"));
        let auth = format!("Bearer {}", self.token);
        let agent = self.agent.clone();
        let watcher = std::thread::Builder::new()
            .name("ctrl-c".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async {
                    if tokio::signal::ctrl_c().await.is_err() {
                        return;
                    }
                    eprintln!(
                        "\ncancelling job {id} on the server (it stops after its current batch; \
                         Ctrl-C again to leave now)"
                    );
                    if let Err(err) = agent.delete(&url).set("Authorization", &auth).call() {
                        eprintln!("could not cancel job {id}: {err}");
                    }
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                });
            });
        if let Err(err) = watcher {
            tracing::warn!(%err, "Ctrl-C will not cancel the job");
        }
    }

    fn running_job(&self) -> anyhow::Result<Option<u64>> {
        let v = self.get("/api/jobs", &[])?;
        let jobs: Vec<JobInfo> = serde_json::from_value(v["jobs"].clone())?;
        Ok(jobs
            .iter()
            .find(|j| j.state == JobState::Running)
            .map(|j| j.id))
    }

    /// Follows a job's events until it ends, showing its progress; returns how it ended.
    pub fn follow(&self, id: u64, progress: &dyn ProgressSink) -> anyhow::Result<JobInfo> {
        let path = format!("/api/jobs/{id}/events");
        let response = self
            .request("GET", &path)
            .set("Accept", "text/event-stream")
            .call()
            .map_err(|e| self.error(e))?;
        let mut shown = Shown::default();
        let mut data = String::new();
        for line in BufReader::new(response.into_reader()).lines() {
            let line = line.map_err(|e| ApiError {
                code: "unreachable".into(),
                message: format!("lost the server while following job {id}: {e}"),

                class: None,
            })?;
            if let Some(rest) = line.strip_prefix("data:") {
                data.push_str(rest.trim_start());
                continue;
            }
            if !line.is_empty() || data.is_empty() {
                continue;
            }
            let job: JobInfo = serde_json::from_str(&std::mem::take(&mut data))?;
            shown.show(&job, progress);
            if job.state != JobState::Running {
                progress.finish();
                return Ok(job);
            }
        }
        // The stream ended without the job's end (the server stopped): say how it stands.
        progress.finish();
        let job: JobInfo = serde_json::from_value(self.get(&format!("/api/jobs/{id}"), &[])?)?;
        if job.state == JobState::Running {
            return Err(ApiError {
                code: "unreachable".into(),
                message: format!("the server stopped sending the progress of job {id}"),

                class: None,
            }
            .into());
        }
        Ok(job)
    }
}

/// What the progress display has been told so far.
#[derive(Default)]
struct Shown {
    started: bool,
    done: u64,
}

impl Shown {
    fn show(&mut self, job: &JobInfo, progress: &dyn ProgressSink) {
        if let (false, Some(total)) = (self.started, job.total) {
            progress.start(total);
            self.started = true;
        }
        if self.started && job.done > self.done {
            let name = job
                .current
                .as_deref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            progress.advance(job.done - self.done, &name);
            self.done = job.done;
        }
    }
}

/// Reads a JSON answer whatever its size (ureq's `into_string` stops at 10 MB, and a large
/// dedup or search answer may pass that).
fn read_json(response: ureq::Response) -> Result<Value, ApiError> {
    let mut text = Vec::new();
    let read = response.into_reader().read_to_end(&mut text);
    let parsed = read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&text).map_err(|e| e.to_string()));
    parsed.map_err(|reason| ApiError {
        code: "internal".into(),
        message: format!("unreadable answer from the server: {reason}"),
        class: None,
    })
}

/// A multipart boundary only has to be unlikely in the image's bytes.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
