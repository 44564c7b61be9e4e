//! opsbot: a ChatOps bot. See ARCHITECTURE.md for the codemap and invariants.

pub mod catalog;
pub mod clock;
pub mod duration;
pub mod exec;
pub mod template;
