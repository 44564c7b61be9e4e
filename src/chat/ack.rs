//! The ack path every chat platform shares: a request that cannot be answered
//! from pure code is stored through the group-committing writer, and the
//! platform's acknowledgement waits for that commit — within the platform's
//! deadline or not at all.

use crate::engine::{InboxWriter, Invocation};
use crate::store::InboxItem;
use axum::http::StatusCode;
use std::time::Duration;
use tokio::time::Instant;

/// Slack and Discord give up on an ack after 3 s: answer within this, or not at all.
pub const ACK_DEADLINE: Duration = Duration::from_millis(2_500);
/// A request not in a batch by then is not written (its ack would be late).
pub const WRITE_BY: Duration = Duration::from_millis(2_000);

/// Stores `inv` (answered later at `origin`, the platform's JSON) as a
/// request of `platform`; `OK` once it is durable. Within [`ACK_DEADLINE`]
/// of `started` or not at all: a request whose ack would come too late is
/// not stored (503), so it never runs behind the back of a user who saw a
/// timeout and retypes it. `dedupe_key`: a replay with the same key is
/// stored once.
pub async fn store(
    writer: &InboxWriter,
    started: Instant,
    platform: &str,
    inv: Invocation,
    origin: String,
    dedupe_key: Option<String>,
) -> StatusCode {
    let item = InboxItem {
        id: writer.id(inv.received_at),
        received_at: inv.received_at,
        source: platform.into(),
        actor: inv.actor,
        channel: inv.channel,
        thread: inv.thread,
        text: inv.text,
        origin,
        dedupe_key,
    };
    let write_by = (started + WRITE_BY).into_std();
    match tokio::time::timeout_at(started + ACK_DEADLINE, writer.submit(item, write_by)).await {
        Ok(Ok(_)) => StatusCode::OK,
        Ok(Err(e)) => {
            tracing::error!(error = %e, platform, "could not store a chat request");
            StatusCode::SERVICE_UNAVAILABLE
        }
        Err(_) => {
            tracing::warn!(
                platform,
                "a chat request could not be stored within its ack deadline; not run"
            );
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
