//! Background indexing jobs: an ingest ([`Engine::index_paths`]) run on its own thread, with
//! progress that anyone may read while it runs, and cancellation between batches.
//!
//! One job runs at a time per engine (so per collection): two ingests would only queue on the
//! engine's ingest lock, and a second one asked for while the first runs is refused, naming the
//! running job, so that the caller can follow it instead. Searches do not take the ingest lock
//! and keep being answered while a job runs. Nothing here knows tokio or HTTP: followers poll
//! [`Jobs::get`] and compare [`JobInfo::version`], which changes whenever the job does.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{Engine, IndexReport, ProgressSink};

/// Finished jobs kept for `list` and `get`; older ones are forgotten.
const KEEP_FINISHED: usize = 32;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobState {
    Running,
    /// The ingest ran to its end; `report` says what it did.
    Done,
    /// The ingest stopped with an error; `error` says which.
    Failed,
    /// Cancelled between two batches; `report` counts what was done before. Every batch
    /// finished is stored and catalogued, so the next ingest of the same paths resumes.
    Cancelled,
}

/// Why a job failed: the engine error's classification (`common::Class`: its API code, kind and
/// origin, by name) and its message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobError {
    pub code: String,
    pub message: String,
    pub kind: String,
    pub origin: String,
}

impl JobError {
    fn new(class: common::Class, message: String) -> JobError {
        JobError {
            code: class.code.into(),
            message,
            kind: class.kind.as_str().into(),
            origin: class.origin.as_str().into(),
        }
    }
}

/// A job as callers see it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInfo {
    pub id: u64,
    /// What the job does; `index` is the only kind so far.
    #[cfg_attr(feature = "openapi", schema(example = "index"))]
    pub kind: String,
    /// The paths indexed, as the job was given them.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub paths: Vec<PathBuf>,
    pub state: JobState,
    /// Files to embed, known once the folders are scanned (`null` while scanning).
    pub total: Option<u64>,
    /// Files embedded (or failed) so far.
    pub done: u64,
    /// The last file embedded.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub current: Option<PathBuf>,
    /// Seconds since the Unix epoch.
    pub started: u64,
    pub finished: Option<u64>,
    pub cancel_requested: bool,
    pub report: Option<IndexReport>,
    pub error: Option<JobError>,
    /// Changes whenever anything above does, so a follower can tell news from a state it saw.
    pub version: u64,
}

/// Why a job was not started.
#[derive(Debug)]
pub enum Refused {
    /// Another job is running on this collection.
    Busy(Box<JobInfo>),
    /// The jobs are closing: the process is shutting down.
    Closing,
}

struct Job {
    info: Mutex<JobInfo>,
    cancel: AtomicBool,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut JobInfo)) {
        let mut info = self.info.lock();
        f(&mut info);
        info.version += 1;
    }

    fn snapshot(&self) -> JobInfo {
        self.info.lock().clone()
    }

    fn running(&self) -> bool {
        self.info.lock().state == JobState::Running
    }
}

impl ProgressSink for Job {
    fn start(&self, total: u64) {
        self.update(|i| i.total = Some(total));
    }

    fn advance(&self, n: u64, msg: &str) {
        self.update(|i| {
            i.done += n;
            i.current = Some(PathBuf::from(msg));
        });
    }

    fn finish(&self) {}

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Every job kept, oldest first.
    jobs: VecDeque<Arc<Job>>,
    /// The thread of the last job started, joined by [`Jobs::wait`].
    thread: Option<JoinHandle<()>>,
    closing: bool,
}

/// The jobs of one engine.
pub struct Jobs {
    engine: Arc<Engine>,
    inner: Mutex<Inner>,
}

impl Jobs {
    pub fn new(engine: Arc<Engine>) -> Jobs {
        Jobs {
            engine,
            inner: Mutex::new(Inner {
                next_id: 1,
                ..Inner::default()
            }),
        }
    }

    /// Starts indexing `paths` (folders or files, as [`Engine::index_paths`] takes them) in the
    /// background, unless a job is running already or the jobs are closing.
    pub fn submit_index(&self, paths: Vec<PathBuf>) -> Result<JobInfo, Refused> {
        let mut inner = self.inner.lock();
        if inner.closing {
            return Err(Refused::Closing);
        }
        if let Some(running) = inner.jobs.iter().find(|j| j.running()) {
            return Err(Refused::Busy(Box::new(running.snapshot())));
        }
        if let Some(old) = inner.thread.take() {
            // The last job has finished (none is running), so this returns at once.
            let _ = old.join();
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let job = Arc::new(Job {
            info: Mutex::new(JobInfo {
                id,
                kind: "index".into(),
                paths: paths.clone(),
                state: JobState::Running,
                total: None,
                done: 0,
                current: None,
                started: unix_now(),
                finished: None,
                cancel_requested: false,
                report: None,
                error: None,
                version: 1,
            }),
            cancel: AtomicBool::new(false),
        });
        let info = job.snapshot();
        let engine = self.engine.clone();
        let worker = job.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("imgsearch-job-{id}"))
            .spawn(move || run_index(&engine, &worker, &paths));
        match spawned {
            Ok(handle) => inner.thread = Some(handle),
            Err(err) => job.update(|i| {
                i.state = JobState::Failed;
                i.finished = Some(unix_now());
                i.error = Some(JobError::new(
                    common::Class::internal(common::Origin::Request),
                    format!("cannot start the job's thread: {err}"),
                ));
            }),
        }
        inner.jobs.push_back(job);
        let finished = inner.jobs.iter().filter(|j| !j.running()).count();
        let mut excess = finished.saturating_sub(KEEP_FINISHED);
        inner.jobs.retain(|j| {
            let drop = excess > 0 && !j.running();
            excess -= usize::from(drop);
            !drop
        });
        Ok(info)
    }

    /// One job by id, while it is kept.
    pub fn get(&self, id: u64) -> Option<JobInfo> {
        let inner = self.inner.lock();
        inner
            .jobs
            .iter()
            .find(|j| j.info.lock().id == id)
            .map(|j| j.snapshot())
    }

    /// Every job kept, newest first.
    pub fn list(&self) -> Vec<JobInfo> {
        let inner = self.inner.lock();
        inner.jobs.iter().rev().map(|j| j.snapshot()).collect()
    }

    /// Asks a running job to stop after the batch it is in; a finished job is left as it is.
    /// `None` when no job has this id.
    pub fn cancel(&self, id: u64) -> Option<JobInfo> {
        let inner = self.inner.lock();
        let job = inner.jobs.iter().find(|j| j.info.lock().id == id)?;
        if job.running() {
            job.cancel.store(true, Ordering::Relaxed);
            job.update(|i| i.cancel_requested = true);
        }
        Some(job.snapshot())
    }

    /// Refuses new jobs and asks the running one to stop after its current batch: what the
    /// server does when it is told to shut down, before it waits with [`Jobs::wait`].
    pub fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closing = true;
        for job in inner.jobs.iter().filter(|j| j.running()) {
            job.cancel.store(true, Ordering::Relaxed);
            job.update(|i| i.cancel_requested = true);
        }
    }

    /// Waits until the last job started has ended (its current batch stored and catalogued).
    pub fn wait(&self) {
        let thread = self.inner.lock().thread.take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// The job's thread: the ingest, then its outcome. A panic in the ingest fails the job instead
/// of leaving it running for ever.
fn run_index(engine: &Engine, job: &Job, paths: &[PathBuf]) {
    let t0 = Instant::now();
    let id = job.info.lock().id;
    // The job is background work: in a server that asks for it (the same switch moves the
    // decoding pool), searches arriving meanwhile come first. Elsewhere (tests, embedders
    // with their own scheduling) the thread keeps its class.
    let lowered = engine.config().runtime.background && common::background::lower_current_thread();
    info!(job = id, paths = paths.len(), lowered, "index job started");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.index_paths(paths, job)
    }));
    let cancelled = job.cancelled();
    job.update(|i| {
        i.finished = Some(unix_now());
        match outcome {
            Ok(Ok(report)) => {
                i.state = if cancelled {
                    JobState::Cancelled
                } else {
                    JobState::Done
                };
                i.report = Some(report);
            }
            Ok(Err(err)) => {
                i.state = JobState::Failed;
                i.error = Some(JobError::new(
                    common::Classified::class(&err),
                    err.to_string(),
                ));
            }
            Err(_) => {
                i.state = JobState::Failed;
                i.error = Some(JobError::new(
                    common::Class::internal(common::Origin::Request),
                    "the indexing thread panicked; see the server log".into(),
                ));
            }
        }
    });
    let state = job.info.lock().state;
    match state {
        JobState::Failed => warn!(job = id, "index job failed"),
        _ => info!(
            job = id,
            ?state,
            seconds = t0.elapsed().as_secs_f64(),
            "index job ended"
        ),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
