//! How long-running work reports its progress to the surface that started it.

/// Receives the progress of long work (indexing, embedding a corpus); the CLI draws a bar, the
/// server counts it in its jobs.
pub trait ProgressSink: Sync {
    /// `total` files are about to be embedded.
    fn start(&self, total: u64);
    /// `n` more files are done; `msg` names the last one.
    fn advance(&self, n: u64, msg: &str);
    fn finish(&self);
    /// Whether the ingest should stop after the batch it is in (a cancelled job).
    fn cancelled(&self) -> bool {
        false
    }
}

/// A [`ProgressSink`] that shows nothing.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn start(&self, _total: u64) {}
    fn advance(&self, _n: u64, _msg: &str) {}
    fn finish(&self) {}
}
