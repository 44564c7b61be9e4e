//! What the pipeline answers, independent of the chat it goes to.

/// How a request ended; adapters map this to exit codes, ephemeral vs public, …
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (including help and lists).
    Done,
    /// Accepted and waiting for a second person.
    ApprovalRequested,
    /// The user typed something we could not parse.
    Usage,
    /// Not allowed (roles, unknown identity, self-approval, expired, …).
    NotPermitted,
    /// The action ran and failed, or we failed internally.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Done,
        Outcome::ApprovalRequested,
        Outcome::Usage,
        Outcome::NotPermitted,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::ApprovalRequested => "approval_requested",
            Outcome::Usage => "usage",
            Outcome::NotPermitted => "not_permitted",
            Outcome::Failed => "failed",
        }
    }

    /// `opsbot run` exit codes: 0 accepted, 2 usage, 3 not permitted, 1 failed.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Done | Outcome::ApprovalRequested => 0,
            Outcome::Usage => 2,
            Outcome::NotPermitted => 3,
            Outcome::Failed => 1,
        }
    }
}

/// The answer to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub outcome: Outcome,
    pub text: String,
    /// The approval this reply is about, if any.
    pub approval: Option<i64>,
    /// For the asker's eyes only (an ephemeral message), whatever the outcome:
    /// answers that list other people's requests.
    pub private: bool,
}

impl Reply {
    pub fn new(outcome: Outcome, text: impl Into<String>) -> Reply {
        Reply {
            outcome,
            text: text.into(),
            approval: None,
            private: false,
        }
    }

    /// Marks the reply as for the asker alone.
    pub fn private(mut self) -> Reply {
        self.private = true;
        self
    }

    pub fn with_approval(mut self, id: i64) -> Reply {
        self.approval = Some(id);
        self
    }
}
