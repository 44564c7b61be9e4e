//! The runtime: the one command pipeline every adapter feeds. Later waves add
//! the outbox sender and the escalation timer loop here.

mod approvals;
pub mod outbox;
mod pipeline;
mod reply;

pub use pipeline::{Invocation, Pipeline, Source};
pub use reply::{Outcome, Reply};
