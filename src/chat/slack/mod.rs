//! Slack: the Web API client the outbox sender uses, and Slack's size limits.

pub mod api;
pub mod limits;
