//! Discord: the signed interactions endpoint (slash commands and card
//! buttons), rendering of replies and approval cards, the REST client the
//! outbox sender uses, Discord's size limits, and the catalog as registered
//! application commands.

pub mod api;
pub mod inbound;
pub mod limits;
pub mod register;
pub mod render;
pub mod verify;
