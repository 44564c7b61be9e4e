//! opsbot: a ChatOps bot. See ARCHITECTURE.md for the codemap and invariants.

pub mod catalog;
pub mod clock;
pub mod command;
pub mod duration;
pub mod exec;
pub mod template;
pub mod config;
pub mod auth;
pub mod approval;
pub mod audit;
pub mod store;
pub mod metrics;
pub mod engine;
pub mod app;
pub mod server;
