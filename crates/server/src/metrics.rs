//! Request and search metrics, rendered in the Prometheus text exposition format (version 0.0.4).
//!
//! The figures are few and the lock is held for microseconds, so one mutex over plain maps is
//! simpler than a metrics library and costs nothing measurable next to an embedding.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram buckets, in seconds. Embedding an image takes tens of
/// milliseconds, a vector search well under one, so the buckets span 0.5 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Non-cumulative count per bucket; the last slot counts values above every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter()) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    /// (method, route, status) -> count.
    requests: BTreeMap<(String, String, u16), u64>,
    /// (method, route) -> latency.
    latency: BTreeMap<(String, String), Histogram>,
    /// search kind ("image", "id", "text", "vector") -> latency of the engine call alone.
    searches: BTreeMap<&'static str, Histogram>,
}

/// The server's metrics registry; cheap to share behind an `Arc`.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Counts one finished request under its route template (never the raw path, whose ids
    /// would make the label set unbounded).
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut inner = self.inner.lock();
        let key = (method.to_string(), route.to_string());
        *inner
            .requests
            .entry((key.0.clone(), key.1.clone(), status))
            .or_default() += 1;
        inner
            .latency
            .entry(key)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Records how long one engine or store search took.
    pub fn record_search(&self, kind: &'static str, elapsed: Duration) {
        self.inner
            .lock()
            .searches
            .entry(kind)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// The whole registry in the Prometheus text format; `indexed` is the image count, when the
    /// engine could report it.
    pub fn render(&self, indexed: Option<u64>) -> String {
        let inner = self.inner.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP imgsearch_http_requests_total HTTP requests served, by route and status.\n",
        );
        out.push_str("# TYPE imgsearch_http_requests_total counter\n");
        for ((method, route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "imgsearch_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str(
            "# HELP imgsearch_http_request_duration_seconds Time to answer HTTP requests.\n",
        );
        out.push_str("# TYPE imgsearch_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &inner.latency {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            h.render(&mut out, "imgsearch_http_request_duration_seconds", &labels);
        }
        out.push_str("# HELP imgsearch_search_duration_seconds Time spent in searches (embedding included), by kind.\n");
        out.push_str("# TYPE imgsearch_search_duration_seconds histogram\n");
        for (kind, h) in &inner.searches {
            h.render(
                &mut out,
                "imgsearch_search_duration_seconds",
                &format!("kind=\"{kind}\""),
            );
        }
        if let Some(n) = indexed {
            out.push_str("# HELP imgsearch_indexed_images Images in the index.\n");
            out.push_str("# TYPE imgsearch_indexed_images gauge\n");
            let _ = writeln!(out, "imgsearch_indexed_images {n}");
        }
        out
    }
}

/// Escapes a label value as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware that times every routed request and counts it by route template and status.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    metrics.record_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_complete() {
        let m = Metrics::default();
        m.record_request("GET", "/api/images/{id}", 200, Duration::from_millis(3));
        m.record_request("GET", "/api/images/{id}", 404, Duration::from_secs(20));
        let text = m.render(Some(7));
        assert!(text.contains(
            "imgsearch_http_requests_total{method=\"GET\",route=\"/api/images/{id}\",status=\"200\"} 1"
        ));
        assert!(text.contains("le=\"0.0025\"} 0\n"));
        assert!(text.contains("le=\"0.005\"} 1\n"));
        assert!(text.contains("le=\"10\"} 1\n"));
        assert!(text.contains("le=\"+Inf\"} 2\n"));
        assert!(text.contains("imgsearch_indexed_images 7\n"));
    }
}
