//! Lingering request bodies. A handler that refuses a request early (a foreign `Host`, a
//! cross-site write, a filter over its cap, an upload over the size limit) answers before the
//! client has sent the whole body. Were the rest dropped, the connection would close with unread
//! bytes, the kernel would reset it, and the client, still writing, would get a broken pipe
//! instead of the answer (RFC 9112, section 9.6). So every request body is wrapped: dropped
//! before its end, it hands the rest to a task that reads and discards it, up to a byte and a
//! time bound, after which the connection is closed as before. Draining holds no memory.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use hyper::body::{Frame, SizeHint};

/// How long the rest of a refused body is read before the connection is closed.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Wraps the request's body (see the module documentation); `limit` bytes at most are drained.
pub fn wrap(request: Request, limit: usize) -> Request {
    request.map(|inner| {
        Body::new(Lingering {
            inner: Some(inner),
            ended: false,
            limit,
        })
    })
}

struct Lingering {
    inner: Option<Body>,
    ended: bool,
    limit: usize,
}

impl HttpBody for Lingering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.ended || body.is_end_stream() {
            return;
        }
        // Outside a runtime (never in the server) the rest is dropped, as without this wrapper.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body, self.limit));
        }
    }
}

/// Reads and discards what is left of `body`, up to `limit` bytes and [`DRAIN_TIME`].
async fn drain(mut body: Body, limit: usize) {
    let read_all = async {
        let mut read = 0usize;
        while let Some(frame) =
            futures_util::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let Ok(frame) = frame else { return };
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > limit {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read_all).await;
}
