//! The approval state machine. Pure: given an approval, who is acting and
//! `now`, it says what may happen; the store applies it with conditional
//! updates so that concurrent deciders cannot both win.
//!
//! ```text
//! pending ─► approved ─► executing ─► succeeded | failed
//!    │          └─(expired while opsbot was down)─► expired
//!    │                        └─(crash)─► unknown
//!    └─► rejected | expired | cancelled
//! ```

use crate::auth::{self, Actor, Denied};
use crate::clock::Millis;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Pending,
    Approved,
    Executing,
    Succeeded,
    Failed,
    Rejected,
    Expired,
    Cancelled,
    /// Execution was claimed but the process died before recording a result.
    Unknown,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Pending,
        State::Approved,
        State::Executing,
        State::Succeeded,
        State::Failed,
        State::Rejected,
        State::Expired,
        State::Cancelled,
        State::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Executing => "executing",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Rejected => "rejected",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
            State::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether `self → to` is an edge of the machine.
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Pending, Approved | Rejected | Expired | Cancelled)
                | (Approved, Executing | Expired)
                | (Executing, Succeeded | Failed | Unknown)
        )
    }
}

/// One person's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub person: String,
    pub identity: String,
    pub at: Millis,
}

/// A request waiting for (or past) its approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: i64,
    pub profile: String,
    pub command: String,
    pub args: BTreeMap<String, String>,
    /// The canonical chat text of the request, as shown on the card.
    pub display: String,
    /// Hash of command + args: the approval is valid for exactly this request.
    pub request_hash: String,
    pub risk: String,
    /// The requesting person (or identity, for strangers).
    pub requester: String,
    pub requester_identity: String,
    pub channel: Option<String>,
    pub thread: Option<String>,
    /// Roles that may approve, and how many distinct people must.
    pub roles: Vec<String>,
    pub needed: u32,
    pub votes: Vec<Vote>,
    pub state: State,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub decided_by: Option<String>,
    pub result: Option<String>,
    /// Where it was requested: the platform that shows its card (none for
    /// the console).
    pub origin: Option<crate::origin::Origin>,
    /// What the command's preview found when the approval was opened: shown
    /// on the card, and the only items execution may touch.
    pub preview: Option<crate::preview::Previewed>,
}

impl Approval {
    /// `a12`: how people type and see it.
    pub fn label(&self) -> String {
        label(self.id)
    }
}

pub fn label(id: i64) -> String {
    format!("a{id}")
}

/// What someone wants to do with an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject { reason: Option<String> },
    Cancel,
}

/// What the store should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Record the vote; the request is approved once `needed` distinct people voted.
    Vote,
    Reject,
    Cancel,
    /// It is past its TTL: mark it expired and tell the user.
    Expire,
}

/// Why a decision is refused; the text is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Denied(#[from] Denied),
    #[error("refused: {id} is {state}{}", .by.as_ref().map(|b| format!(" (by {b})")).unwrap_or_default())]
    NotPending {
        id: String,
        state: &'static str,
        by: Option<String>,
    },
    #[error("refused: {id} already executed")]
    AlreadyExecuted { id: String },
    #[error("you already approved {id}; it needs {remaining} more approver(s)")]
    AlreadyVoted { id: String, remaining: u32 },
    #[error("refused: only the requester ({requester}) or an approver may cancel {id}")]
    CannotCancel { id: String, requester: String },
}

/// Decides what `actor` may do to `a` at `now`. Expiry wins over everything
/// but a closed state: an expired approval can never be used.
pub fn decide(a: &Approval, actor: &Actor, decision: &Decision, now: Millis) -> Result<Step, Refusal> {
    let id = a.label();
    match a.state {
        State::Pending => {}
        State::Approved | State::Executing | State::Succeeded | State::Failed | State::Unknown => {
            return Err(Refusal::AlreadyExecuted { id })
        }
        closed => {
            return Err(Refusal::NotPending {
                id,
                state: closed.as_str(),
                by: a.decided_by.clone(),
            })
        }
    }
    if now >= a.expires_at {
        return Ok(Step::Expire);
    }
    match decision {
        Decision::Approve => {
            auth::may_approve(actor, &id, &a.requester, &a.roles)?;
            if a.votes.iter().any(|v| v.person == actor.who()) {
                let remaining = a.needed.saturating_sub(a.votes.len() as u32);
                return Err(Refusal::AlreadyVoted { id, remaining });
            }
            Ok(Step::Vote)
        }
        Decision::Reject { .. } => match auth::may_approve(actor, &id, &a.requester, &a.roles) {
            Ok(()) => Ok(Step::Reject),
            // The requester withdraws with /cancel, not /reject.
            Err(Denied::SelfApproval { .. }) => Ok(Step::Cancel),
            Err(e) => Err(e.into()),
        },
        Decision::Cancel if actor.who() == a.requester => Ok(Step::Cancel),
        Decision::Cancel => match auth::may_approve(actor, &id, &a.requester, &a.roles) {
            Ok(()) => Ok(Step::Cancel),
            Err(_) => Err(Refusal::CannotCancel {
                id,
                requester: a.requester.clone(),
            }),
        },
    }
}

/// `a` as a destructive pattern delete with its preview, for card tests:
/// samples with markup in them, more keys than samples.
#[cfg(test)]
pub(crate) fn with_example_preview(mut a: Approval) -> Approval {
    a.risk = "destructive".into();
    a.preview = Some(crate::preview::Previewed {
        what: "keys".into(),
        count: 1214,
        complete: true,
        samples: vec![
            "gemini:analysis:scene:123".into(),
            "gemini:<!channel>:*bold*".into(),
            "gemini:```:end".into(),
        ],
        items: Some(vec!["gemini:analysis:scene:123".into()]),
        listed: true,
        values: Default::default(),
    });
    a
}

/// A pending-shaped approval `a7` of `/queue retry ai-analysis` by alice (tests).
#[cfg(test)]
pub(crate) fn example(state: State) -> Approval {
    Approval {
        id: 7,
        profile: "queue".into(),
        command: "queue retry".into(),
        args: BTreeMap::new(),
        display: "/queue retry ai-analysis".into(),
        request_hash: "h".into(),
        risk: "write".into(),
        requester: "alice".into(),
        requester_identity: "console:alice".into(),
        channel: None,
        thread: None,
        roles: vec!["sre".into(), "eng-manager".into()],
        needed: 2,
        votes: vec![],
        state,
        created_at: 0,
        expires_at: 1000,
        decided_by: None,
        result: None,
        origin: None,
        preview: None,
    }
}

/// [`example`] rejected, with markup in every dynamic string it shows
/// outside code (requester, roles, who voted and decided, the reason).
#[cfg(test)]
pub(crate) fn hostile_example() -> Approval {
    let mut a = example(State::Rejected);
    a.display = "/queue note *x* ```".into();
    a.requester = "*x*".into();
    a.roles = vec!["_y_".into(), "~z~".into()];
    a.votes.push(Vote {
        person: "`bob`".into(),
        identity: "console:bob".into(),
        at: 1,
    });
    a.decided_by = Some("~z~ <!channel>".into());
    a.result = Some("`rm` *now* _please_ <@U0EVE>".into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Person;

    fn person(name: &str, roles: &[&str]) -> Actor {
        Actor::Person {
            person: std::sync::Arc::new(Person {
                name: name.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                identities: vec![format!("console:{name}")],
            }),
            identity: format!("console:{name}"),
        }
    }

    fn approval(state: State) -> Approval {
        example(state)
    }

    #[test]
    fn approver_votes_requester_refused() {
        let a = approval(State::Pending);
        assert_eq!(
            decide(&a, &person("bob", &["sre"]), &Decision::Approve, 10),
            Ok(Step::Vote)
        );
        let e = decide(&a, &person("alice", &["sre"]), &Decision::Approve, 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "refused: you requested a7; another person must approve it"
        );
        let e = decide(&a, &person("carol", &["oncall"]), &Decision::Approve, 10).unwrap_err();
        assert!(e.to_string().contains("sre, eng-manager"), "{e}");
    }

    #[test]
    fn same_person_cannot_vote_twice() {
        let mut a = approval(State::Pending);
        a.votes.push(Vote {
            person: "bob".into(),
            identity: "slack:UB".into(),
            at: 1,
        });
        let e = decide(&a, &person("bob", &["sre"]), &Decision::Approve, 10).unwrap_err();
        assert_eq!(
            e,
            Refusal::AlreadyVoted {
                id: "a7".into(),
                remaining: 1
            }
        );
    }

    #[test]
    fn expired_cannot_be_used() {
        let a = approval(State::Pending);
        assert_eq!(
            decide(&a, &person("bob", &["sre"]), &Decision::Approve, 1000),
            Ok(Step::Expire)
        );
        let e = decide(
            &approval(State::Expired),
            &person("bob", &["sre"]),
            &Decision::Approve,
            5,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "refused: a7 is expired");
    }

    #[test]
    fn executed_is_reported_as_such() {
        for s in [
            State::Approved,
            State::Executing,
            State::Succeeded,
            State::Failed,
            State::Unknown,
        ] {
            let e = decide(&approval(s), &person("bob", &["sre"]), &Decision::Approve, 5).unwrap_err();
            assert_eq!(e.to_string(), "refused: a7 already executed");
        }
    }

    #[test]
    fn reject_and_cancel_rules() {
        let a = approval(State::Pending);
        assert_eq!(
            decide(
                &a,
                &person("bob", &["sre"]),
                &Decision::Reject { reason: None },
                5
            ),
            Ok(Step::Reject)
        );
        assert_eq!(
            decide(&a, &person("alice", &["oncall"]), &Decision::Cancel, 5),
            Ok(Step::Cancel)
        );
        assert_eq!(
            decide(
                &a,
                &person("alice", &["oncall"]),
                &Decision::Reject { reason: None },
                5
            ),
            Ok(Step::Cancel)
        );
        assert!(decide(&a, &person("carol", &["oncall"]), &Decision::Cancel, 5).is_err());
        assert!(decide(
            &a,
            &person("carol", &["oncall"]),
            &Decision::Reject { reason: None },
            5
        )
        .is_err());
    }

    #[test]
    fn edges() {
        assert!(State::Pending.can_become(State::Approved));
        assert!(State::Approved.can_become(State::Executing));
        assert!(!State::Pending.can_become(State::Executing));
        assert!(!State::Succeeded.can_become(State::Executing));
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
    }
}
