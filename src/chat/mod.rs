//! Chat platform adapters. Each turns the platform's input into an
//! `engine::Invocation` and delivers the outbox's messages through its Web API.

pub mod ack;
pub mod card;
pub mod discord;
pub mod signature;
pub mod slack;
pub mod text;
