//! What opsbot posts to Slack for a pipeline reply. Pure: reply + approval
//! snapshot + where the request came from → outbox messages (Block Kit).

use crate::approval::{Approval, State};
use crate::clock::{rfc3339, Millis};
use crate::engine::{Outcome, Reply};
use crate::store::{OutMessage, OutOp, Thread};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where a Slack request came from: everything needed to answer it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub user: String,
    pub channel: String,
    /// Answer in this thread (mentions in threads, clicks on cards in threads).
    pub thread_ts: Option<String>,
    pub kind: OriginKind,
    pub response_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginKind {
    Command,
    Mention,
    Action,
}

/// The key of an approval's card, so later edits find it.
pub fn card_key(id: i64) -> String {
    format!("approval:{id}")
}

/// Messages answering `reply`. `approval` is the approval the reply is about,
/// as stored after the pipeline ran.
pub fn messages(reply: &Reply, approval: Option<&Approval>, origin: &Origin, now: Millis) -> Vec<OutMessage> {
    let thread = origin.thread_ts.clone().map(Thread::Ts);
    let mut out = Vec::new();
    match (reply.outcome, approval) {
        (Outcome::ApprovalRequested, Some(a)) => out.push(OutMessage {
            channel: origin.channel.clone(),
            op: OutOp::Post {
                key: Some(card_key(a.id)),
                thread,
                fallback: None,
            },
            body: card(a, None, now),
        }),
        (Outcome::Usage | Outcome::NotPermitted, a) => {
            out.push(to_author(origin, thread, &reply.text));
            // A card whose approval closed meanwhile (expired) is brought up to date.
            if let Some(a) = a.filter(|a| a.state == State::Expired && has_card(a)) {
                out.push(card_update(a, None, now));
            }
        }
        (_, Some(a)) => {
            if has_card(a) {
                out.push(card_update(a, Some(&reply.text), now));
            }
            // A typed `/approve` also answers its author directly: the card may
            // live elsewhere (or not exist, for a request made from the console).
            if origin.kind != OriginKind::Action || !has_card(a) {
                out.push(to_author(origin, thread, &reply.text));
            }
        }
        (outcome, None) => out.push(OutMessage {
            channel: origin.channel.clone(),
            // A slash command's results can still reach the channel through its
            // response_url when the bot was never invited there.
            op: OutOp::Post {
                key: None,
                thread,
                fallback: origin
                    .response_url
                    .clone()
                    .filter(|_| origin.kind == OriginKind::Command),
            },
            body: result(&reply.text, outcome, &origin.user),
        }),
    }
    out
}

/// An ephemeral message only the request's author sees.
fn to_author(origin: &Origin, thread: Option<Thread>, text: &str) -> OutMessage {
    OutMessage {
        channel: origin.channel.clone(),
        op: OutOp::Ephemeral {
            user: origin.user.clone(),
            thread,
        },
        body: plain(text),
    }
}

/// Approvals requested from Slack have a card; others (console) do not.
pub fn has_card(a: &Approval) -> bool {
    a.requester_identity.starts_with("slack:")
}

/// An edit of approval `a`'s card showing its current state (and `result`).
pub fn card_update(a: &Approval, result: Option<&str>, now: Millis) -> OutMessage {
    OutMessage {
        channel: a.channel.clone().unwrap_or_default(),
        op: OutOp::Update { key: card_key(a.id) },
        body: card(a, result, now),
    }
}

fn plain(text: &str) -> Value {
    json!({ "text": text })
}

fn result(text: &str, outcome: Outcome, user: &str) -> Value {
    let icon = if outcome == Outcome::Failed { "❌" } else { "✅" };
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut blocks =
        vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{icon} {first}")}})];
    if !rest.trim().is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{rest}```")}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("requested by <@{user}>")}]}));
    json!({ "text": format!("{icon} {text}"), "blocks": blocks })
}

/// The approval card: the exact request, requester, risk, expiry, and either
/// the buttons (pending) or the decision and result.
pub fn card(a: &Approval, result: Option<&str>, now: Millis) -> Value {
    let label = a.label();
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("*Approval {label}* · `{}` · requested by *{}*", a.risk, a.requester)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", a.display)}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
            "needs {} of {} · {} of {} approved · expires {}",
            a.needed, a.roles.join(", "), a.votes.len(), a.needed, expiry(a, now))}]}),
    ];
    if a.state == State::Pending {
        blocks.push(
            json!({"type": "actions", "block_id": format!("approval-{}", a.id), "elements": [
                {"type": "button", "action_id": "approve", "value": label, "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": "reject", "value": label, "style": "danger",
                 "text": {"type": "plain_text", "text": "Reject"}},
            ]}),
        );
    }
    if let Some(status) = status_line(a) {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": status}]}));
    }
    if let Some(r) = result.filter(|r| !r.trim().is_empty()) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{r}```")}}));
    }
    json!({
        "text": format!("Approval {label} ({}) by {}: {} — {}", a.risk, a.requester, a.display, a.state.as_str()),
        "blocks": blocks,
    })
}

fn expiry(a: &Approval, now: Millis) -> String {
    if a.expires_at <= now {
        return format!("at {} (expired)", rfc3339(a.expires_at));
    }
    let left = std::time::Duration::from_secs(((a.expires_at - now) / 1000) as u64);
    format!("in {} ({})", crate::duration::format(left), rfc3339(a.expires_at))
}

fn status_line(a: &Approval) -> Option<String> {
    let voters = a
        .votes
        .iter()
        .map(|v| v.person.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let by = a.decided_by.clone().unwrap_or_default();
    let reason = a.result.clone().map(|r| format!(": {r}")).unwrap_or_default();
    Some(match a.state {
        State::Pending if a.votes.is_empty() => return None,
        State::Pending => format!("👍 approved by {voters}; waiting for more"),
        State::Approved | State::Executing => format!("✅ approved by {voters} · running…"),
        State::Succeeded => format!("✅ approved by {voters} · succeeded"),
        State::Failed => format!("✅ approved by {voters} · ❌ failed"),
        State::Unknown => format!("✅ approved by {voters} · ⚠️ result unknown (interrupted by a restart)"),
        State::Rejected => format!("🚫 rejected by {by}{reason}"),
        State::Cancelled => format!("cancelled by {by}"),
        State::Expired => "⌛ expired without enough approvals".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Vote;

    fn approval(state: State) -> Approval {
        let mut a = crate::approval::example(state);
        a.requester_identity = "slack:UA".into();
        a.channel = Some("C1".into());
        a.needed = 1;
        a.expires_at = 900_000;
        a
    }

    fn origin(kind: OriginKind) -> Origin {
        Origin {
            user: "UA".into(),
            channel: "C1".into(),
            thread_ts: None,
            kind,
            response_url: None,
        }
    }

    #[test]
    fn approval_request_posts_a_card_with_buttons() {
        let a = approval(State::Pending);
        let r = Reply::new(Outcome::ApprovalRequested, "approval requested: a7").with_approval(7);
        let m = messages(&r, Some(&a), &origin(OriginKind::Command), 0);
        assert_eq!(m.len(), 1);
        assert!(matches!(&m[0].op, OutOp::Post { key: Some(k), .. } if k == "approval:7"));
        let body = m[0].body.to_string();
        for needle in [
            "/queue retry ai-analysis",
            "alice",
            "`write`",
            "expires in 15m",
            "\"action_id\":\"approve\"",
            "\"value\":\"a7\"",
            "\"action_id\":\"reject\"",
        ] {
            assert!(body.contains(needle), "{needle} missing in {body}");
        }
    }

    #[test]
    fn refusals_are_ephemeral_and_results_update_the_card() {
        let a = approval(State::Pending);
        let r = Reply::new(Outcome::NotPermitted, "refused: you requested a7").with_approval(7);
        let m = messages(&r, Some(&a), &origin(OriginKind::Action), 0);
        assert!(matches!(&m[..], [OutMessage { op: OutOp::Ephemeral { user, .. }, .. }] if user == "UA"));

        let mut done = approval(State::Succeeded);
        done.votes.push(Vote {
            person: "bob".into(),
            identity: "slack:UB".into(),
            at: 1,
        });
        let r = Reply::new(Outcome::Done, "Retried 37").with_approval(7);
        let m = messages(&r, Some(&done), &origin(OriginKind::Action), 0);
        assert_eq!(m.len(), 1, "a click is answered by the card alone");
        assert!(matches!(&m[0].op, OutOp::Update { key } if key == "approval:7"));
        let typed = messages(&r, Some(&done), &origin(OriginKind::Command), 0);
        assert!(
            matches!(&typed[1].op, OutOp::Ephemeral { user, .. } if user == "UA"),
            "typed /approve gets an answer"
        );
        let body = m[0].body.to_string();
        assert!(
            body.contains("approved by bob") && body.contains("Retried 37"),
            "{body}"
        );
        assert!(!body.contains("\"action_id\""), "no buttons once decided: {body}");
    }

    #[test]
    fn approvals_from_the_console_have_no_card_to_update() {
        let mut a = approval(State::Succeeded);
        a.requester_identity = "console:alice".into();
        let r = Reply::new(Outcome::Done, "Retried 37").with_approval(7);
        let m = messages(&r, Some(&a), &origin(OriginKind::Command), 0);
        assert_eq!(m.len(), 1);
        assert!(matches!(&m[0].op, OutOp::Ephemeral { .. }));
        assert!(m[0].body.to_string().contains("Retried 37"));
    }

    #[test]
    fn plain_results_post_in_channel_or_thread() {
        let r = Reply::new(Outcome::Done, "ok\nline 2");
        let mut o = origin(OriginKind::Mention);
        o.thread_ts = Some("123.4".into());
        let m = messages(&r, None, &o, 0);
        assert!(
            matches!(&m[0].op, OutOp::Post { key: None, thread: Some(Thread::Ts(t)), .. } if t == "123.4")
        );
    }
}
