//! The HTTP edge's own limits, before any handler runs: the accept loop with
//! a header read timeout (a client that trickles its request head is cut
//! off), body size limits per endpoint (answered 413 from `Content-Length`
//! before the body is read), a body read timeout, and a global concurrency
//! limit answering 503 at once instead of queueing.

use crate::config::HttpLimits;
use crate::metrics::Metrics;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How long open connections may finish after shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// `routes` with a body of at most `max_bytes`, read within the body timeout.
pub fn limit_bodies(routes: Router, max_bytes: usize, limits: &HttpLimits) -> Router {
    routes
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(RequestBodyLimitLayer::new(max_bytes))
        // The layer above decides; axum's implicit 2 MB default does not.
        .layer(DefaultBodyLimit::disable())
}

/// Chat endpoints: small bodies (`http.chat_body_bytes`).
pub fn chat_routes(routes: Router, limits: &HttpLimits) -> Router {
    limit_bodies(routes, limits.chat_body_bytes, limits)
}

/// Alert endpoints (`/alerts/*`): `http.alert_body_bytes`.
pub fn alert_routes(routes: Router, limits: &HttpLimits) -> Router {
    limit_bodies(routes, limits.alert_body_bytes, limits)
}

#[derive(Clone)]
struct Capacity {
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// At most `max` requests in handlers at once; the next gets 503 at once.
pub fn limit_concurrency(router: Router, max: usize, metrics: Arc<Metrics>) -> Router {
    let capacity = Capacity {
        permits: Arc::new(Semaphore::new(max)),
        metrics,
    };
    router.layer(middleware::from_fn_with_state(capacity, admit))
}

async fn admit(State(c): State<Capacity>, req: Request, next: Next) -> Response {
    let Ok(_permit) = c.permits.clone().try_acquire_owned() else {
        c.metrics.shed();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "opsbot is busy; retry shortly",
        )
            .into_response();
    };
    next.run(req).await
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// connections finish (up to 10 s). Each connection must send its request
/// head within `header_timeout`, or it is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the drain period; closing them");
    }
    Ok(())
}
