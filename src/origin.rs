//! Where a request came from, as stored data: the platform's name and its
//! own description of the place (channel, user, thread, reply handles).
//! Stored with inbox items and approvals so that answers, card edits and
//! recovery notices find their way back without the engine knowing the
//! platform.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `slack`, `discord`, `console`, …: which renderer answers it.
    pub platform: String,
    /// Platform-defined JSON; only that platform's renderer reads it.
    pub data: String,
}

impl Origin {
    pub fn new(platform: &str, data: String) -> Origin {
        Origin {
            platform: platform.to_string(),
            data,
        }
    }
}
