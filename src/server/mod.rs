//! The HTTP server: health, readiness and metrics now; chat and alert
//! endpoints mount here as their adapters land. Handlers only translate.
//! [`edge`] holds the limits every connection and request meets first.

pub mod edge;

use crate::engine::Pipeline;
use crate::metrics::{Metrics, StoreGauges};
use crate::store::Store;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// `/healthz` and `/readyz`, sharing one pipeline.
pub fn router(pipeline: Pipeline) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(pipeline)
}

/// `/metrics`: on the main listener, or alone on `OPSBOT_METRICS_LISTEN`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
}

/// Recounts the store gauges every `every` until `stop`, so scrapes read
/// memory only. The first count is taken at once; a failed count keeps the
/// previous one (and is logged).
pub fn spawn_gauges(
    store: Store,
    metrics: Arc<Metrics>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match StoreGauges::try_read(&store).await {
                Ok(g) => metrics.set_gauges(g),
                Err(e) => tracing::warn!(error = %e, "could not count the store for /metrics"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(p): State<Pipeline>) -> impl IntoResponse {
    match p.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable")
        }
    }
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render_cached(),
    )
}

/// Resolves when the process is asked to stop (ctrl-c or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
