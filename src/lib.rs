//! opsbot: a ChatOps bot. See ARCHITECTURE.md for the codemap and invariants.

pub mod alerts;
pub mod app;
pub mod approval;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod catalog;
pub mod chat;
pub mod clock;
pub mod command;
pub mod config;
pub mod duration;
pub mod engine;
pub mod escalation;
pub mod exec;
pub mod incident;
pub mod instance;
pub mod ip;
pub mod metrics;
pub mod origin;
pub mod policy;
pub mod preview;
pub mod rotation;
pub mod server;
pub mod store;
pub mod template;
