//! Chat platform adapters. Each turns the platform's input into an
//! `engine::Invocation` and delivers the outbox's messages through its Web API.

pub mod slack;
