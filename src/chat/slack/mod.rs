//! Slack: verified inbound endpoints, Block Kit rendering of replies, the Web
//! API client the outbox sender uses, and Slack's size limits.

pub mod api;
pub mod escape;
pub mod inbound;
pub mod limits;
pub mod render;
pub mod verify;
