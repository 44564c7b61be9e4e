//! The runtime: the one command pipeline every adapter feeds, the
//! group-committing inbox writer, the worker that runs stored requests, and
//! the outbox sender. Later waves add the escalation timer loop here.

pub mod alert_poster;
mod approvals;
mod audit_sink;
pub mod committer;
mod guided;
pub mod housekeeping;
mod incidents;
mod maintenance;
pub mod outbox;
mod pipeline;
pub mod platform;
mod rate_limit;
pub mod recovery;
mod reply;
pub mod scheduled;
mod signal;
mod silences;
mod storms;
pub mod timers;
pub mod worker;
mod writer;

pub use audit_sink::AuditSink;
pub use pipeline::{Internal as EngineError, Invocation, Pipeline, Quick, CONSOLE};
pub use platform::{ChatApi, Mention, Notification, Origin, Renderer, Renderers, SendError};
pub use rate_limit::ActorRateLimit;
pub use reply::{Outcome, Reply};
pub use signal::{Alarm, Signal};
pub use writer::{InboxWriter, Pressure, WriteError};
