//! Libraries kept in sync: folders (`libraries` in the configuration, `serve --watch DIR`) are
//! watched for changes (the `notify` crate, debounced) and rescanned at start and on an interval,
//! to catch what a watcher misses (changes while the server was down, network file systems,
//! overflowing event queues). Every change becomes an ordinary indexing job ([`Jobs`]) over the
//! nearest folder that still exists, so added, changed, renamed and removed files follow the same
//! catalog rules as `imgsearch index`.
//!
//! A file still being written is not failed for good: a decode failure is not catalogued, so the
//! file is tried again at its next change (every write is one) and at the next rescan; a file
//! that failed while it was fresh (modified in the last minute) is also tried again a few
//! seconds later, a bounded number of times, in case its last write raised no event.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use engine::jobs::{JobState, Jobs, Refused};
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult};

/// How a library watch behaves.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// The folders kept in sync.
    pub libraries: Vec<PathBuf>,
    /// Quiet time after the last event before a change is indexed.
    pub debounce: Duration,
    /// Time between two full rescans of every library.
    pub rescan: Duration,
    /// Folders whose changes are ignored: the data directory (indexing writes there, and its
    /// events would start job after job).
    pub ignore: Vec<PathBuf>,
}

/// A file that failed while it was being written is tried again this much later...
const RETRY_AFTER: Duration = Duration::from_secs(3);
/// ...this many times at most...
const MAX_RETRIES: u32 = 5;
/// ...when it had been modified this recently.
const FRESH: Duration = Duration::from_secs(60);

/// The running watch; dropping it stops the thread.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts watching `config.libraries` and submitting their changes as jobs; `None` when there
/// are no libraries. A library that cannot be watched (missing, no permission, out of inotify
/// watches) is logged and still rescanned on the interval.
pub fn start(jobs: Arc<Jobs>, config: WatchConfig) -> std::io::Result<Option<Watch>> {
    if config.libraries.is_empty() {
        return Ok(None);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("imgsearch-watch".into())
        .spawn(move || run(&jobs, &config, &flag))?;
    Ok(Some(Watch {
        stop,
        thread: Some(thread),
    }))
}

/// What is waiting to be indexed, and the job that is indexing it.
#[derive(Default)]
struct State {
    /// Folders and files to index at the next chance.
    pending: BTreeSet<PathBuf>,
    /// Files to try again.
    retries: BTreeMap<PathBuf, Retry>,
    /// The job this watch submitted and has not seen the end of.
    job: Option<u64>,
}

/// A file that failed while fresh: when to try it again, how often it was tried, and whether
/// the job trying it now has been submitted.
struct Retry {
    at: Instant,
    tries: u32,
    submitted: bool,
}

fn run(jobs: &Jobs, config: &WatchConfig, stop: &AtomicBool) {
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    let mut debouncer = match new_debouncer(config.debounce, tx) {
        Ok(d) => Some(d),
        Err(err) => {
            tracing::warn!(%err, "cannot watch the libraries; they are rescanned on the interval only");
            None
        }
    };
    let ignore: Vec<PathBuf> = config
        .ignore
        .iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect();
    let mut libraries = Vec::new();
    for lib in &config.libraries {
        match lib.canonicalize() {
            Ok(c) => libraries.push(c),
            Err(err) => tracing::warn!(%err, library = %lib.display(), "library not found"),
        }
    }
    if let Some(d) = debouncer.as_mut() {
        for lib in &libraries {
            if let Err(err) = d.watcher().watch(lib, RecursiveMode::Recursive) {
                tracing::warn!(%err, library = %lib.display(), "cannot watch the library; it is rescanned on the interval only");
            }
        }
    }
    tracing::info!(libraries = libraries.len(), "watching the libraries");
    let mut state = State::default();
    // The first scan catches what changed while the server was not running.
    let mut next_rescan = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_rescan {
            state.pending.extend(libraries.iter().cloned());
            next_rescan = Instant::now() + config.rescan;
        }
        follow_job(jobs, &mut state);
        if state.job.is_none() {
            let now = Instant::now();
            for (path, retry) in state.retries.iter_mut() {
                if !retry.submitted && retry.at <= now {
                    retry.submitted = true;
                    state.pending.insert(path.clone());
                }
            }
        }
        if state.job.is_none() && !state.pending.is_empty() {
            let paths = targets(std::mem::take(&mut state.pending));
            match jobs.submit_index(paths.clone()) {
                Ok(job) => {
                    tracing::info!(job = job.id, paths = paths.len(), "library changes indexed");
                    state.job = Some(job.id);
                }
                // A job of someone else's: ours waits for it.
                Err(Refused::Busy(_)) => state.pending.extend(paths),
                Err(Refused::Closing) => return,
            }
        }
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Ok(events)) => {
                for event in events {
                    if let Some(target) = target_of(&event.path, &libraries, &ignore) {
                        state.pending.insert(target);
                    }
                }
            }
            Ok(Err(err)) => {
                // Typically an overflowing event queue: everything may have changed.
                tracing::warn!(%err, "watch error; rescanning the libraries");
                next_rescan = Instant::now();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// When this watch's job has ended, schedules another try of the files that failed while they
/// were still fresh (likely being written).
fn follow_job(jobs: &Jobs, state: &mut State) {
    let Some(id) = state.job else { return };
    let Some(job) = jobs.get(id) else {
        state.job = None;
        return;
    };
    if job.state == JobState::Running {
        return;
    }
    state.job = None;
    let failed: BTreeSet<PathBuf> = job
        .report
        .iter()
        .flat_map(|r| r.failed.iter().map(|(p, _)| p.clone()))
        .collect();
    // Files this job tried again and did not fail are done with.
    state
        .retries
        .retain(|path, retry| !retry.submitted || failed.contains(path));
    for path in failed {
        let tries = state.retries.get(&path).map_or(0, |r| r.tries);
        if fresh(&path) && tries < MAX_RETRIES {
            tracing::debug!(path = %path.display(), "trying again a file that may still be being written");
            let retry = Retry {
                at: Instant::now() + RETRY_AFTER,
                tries: tries + 1,
                submitted: false,
            };
            state.retries.insert(path, retry);
        } else {
            state.retries.remove(&path);
        }
    }
}

/// Whether the file was modified within [`FRESH`].
fn fresh(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < FRESH)
}

/// What to index for a change at `path`: the path itself when it exists, else its nearest
/// existing folder (a removed or renamed file is dropped by indexing its folder), never above
/// its library; `None` for changes outside the libraries, in ignored folders or hidden entries.
fn target_of(path: &Path, libraries: &[PathBuf], ignore: &[PathBuf]) -> Option<PathBuf> {
    let library = libraries.iter().find(|l| path.starts_with(l))?;
    if ignore.iter().any(|i| path.starts_with(i)) {
        return None;
    }
    let rest = path.strip_prefix(library).ok()?;
    if rest
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    {
        return None;
    }
    let mut at = path.to_path_buf();
    while !at.exists() {
        if at == *library || !at.pop() {
            return None;
        }
    }
    Some(at)
}

/// The pending paths without those inside another pending folder (indexed with it anyway).
fn targets(pending: BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    // Sorted order puts a folder before everything inside it.
    for path in pending {
        if !out.iter().any(|o| path.starts_with(o)) {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_map_to_the_nearest_existing_path_inside_a_library() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().canonicalize().unwrap().join("lib");
        std::fs::create_dir_all(lib.join("a/b")).unwrap();
        std::fs::write(lib.join("a/b/x.jpg"), b"x").unwrap();
        let libs = [lib.clone()];
        let data = lib.join("data");
        let ignore = [data.clone()];
        let t = |p: PathBuf| target_of(&p, &libs, &ignore);
        assert_eq!(t(lib.join("a/b/x.jpg")), Some(lib.join("a/b/x.jpg")));
        assert_eq!(t(lib.join("a/b/gone.jpg")), Some(lib.join("a/b")));
        assert_eq!(t(lib.join("a/gone/deeper/y.jpg")), Some(lib.join("a")));
        assert_eq!(t(data.join("db/points.redb")), None);
        assert_eq!(t(lib.join("a/.hidden/y.jpg")), None);
        assert_eq!(t(dir.path().join("elsewhere.jpg")), None);
        let merged = targets(
            [lib.join("a/b/x.jpg"), lib.join("a"), lib.join("c")]
                .into_iter()
                .collect(),
        );
        assert_eq!(merged, vec![lib.join("a"), lib.join("c")]);
    }
}
