//! The HTTP server: health, readiness and metrics now; chat and alert
//! endpoints mount here as their adapters land. Handlers only translate.

use crate::engine::Pipeline;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The router with every endpoint, sharing one pipeline.
pub fn router(pipeline: Pipeline) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(pipeline)
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

async fn metrics(State(p): State<Pipeline>) -> impl IntoResponse {
    let gauges = crate::metrics::StoreGauges::read(&p.store).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        p.metrics.render(&gauges),
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
