//! The HTTP server of every allot process (API, webhooks, probes), built so
//! that it cannot be held open: a client has `header_read` to send its
//! request head, a request (body included) has `request` to be answered, a
//! connection that moves no byte for `idle` is closed, and past
//! `max_connections` a new connection is answered 503 at once and closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::api::error;

/// Timeouts and the connection cap (`[api]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Time a client has to send a request's head (also between requests
    /// on a kept-alive connection).
    pub header_read_timeout_secs: u64,
    /// Time a request has, body included, to be answered (408 after).
    pub request_timeout_secs: u64,
    /// A connection that moves no byte this long is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            idle_timeout_secs: 30,
            max_connections: 512,
        }
    }
}

impl HttpLimits {
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s.max(1))
    }
}

/// Answers 408 when the request (its body read included) is not answered
/// within the limit.
async fn request_deadline(State(limit): State<u64>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(HttpLimits::secs(limit), next.run(req)).await {
        Ok(r) => r,
        Err(_) => error(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            format!("the request was not completed within api.request_timeout_secs = {limit}"),
        )
        .into_response(),
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish (at most 10 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout_secs,
        request_deadline,
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let started = Instant::now();
    // A request may run without moving a byte for as long as it may take.
    let idle = HttpLimits::secs(limits.idle_timeout_secs.max(limits.request_timeout_secs));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%peer, "connection cap reached: answered 503");
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let activity = Arc::new(AtomicU64::new(0));
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
            started,
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HttpLimits::secs(limits.header_read_timeout_secs));
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(idle));
        let conn = builder
            .serve_connection(io, TowerToHyperService::new(app.clone()))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    debug!(%peer, error = %e, "connection ended");
                },
                () = idle_for(&activity, started, idle) => debug!(%peer, "idle connection closed"),
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        info!("http: requests still running after 10 s were dropped");
    }
}

/// Resolves once `activity` (ms since `started`) is older than `idle`.
async fn idle_for(activity: &AtomicU64, started: Instant, idle: Duration) {
    let step = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        tokio::time::sleep(step).await;
        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
        if started.elapsed().saturating_sub(last) > idle {
            return;
        }
    }
}

async fn refuse(mut stream: TcpStream, cap: usize) {
    let body = serde_json::json!({
        "status": "error",
        "message": format!("too many connections (api.max_connections = {cap}); try again"),
    })
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// A stream that notes when it last moved a byte.
struct Watched {
    inner: TcpStream,
    activity: Arc<AtomicU64>,
    started: Instant,
}

impl Watched {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
