//! What opsbot posts to Slack for each engine notification. Pure:
//! notification (reply, approval snapshot, where the request came from) →
//! outbox messages (Block Kit). Every dynamic string goes through
//! [`escape`]: the only mention opsbot writes is `<@requester>`, built from
//! the verified user id of the request, and the only formatting is opsbot's
//! own (`*bold*` labels, code): text shown outside code is
//! [`escape::literal`] (or [`escape::outside_code`] for replies).

use super::escape;
use crate::approval::{Approval, State};
use crate::chat::card::{self, expiry, status_line};
use crate::clock::Millis;
use crate::engine::{Notification, Outcome, Renderer, Reply};
use crate::incident::Incident;
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

/// The platform name of Slack's origins and outbox rows.
pub const PLATFORM: &str = "slack";

/// Slack's [`Renderer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SlackRenderer;

impl Renderer for SlackRenderer {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    fn render(&self, n: &Notification<'_>, now: Millis) -> Vec<OutMessage> {
        match *n {
            Notification::Reply {
                origin,
                reply,
                approval,
            } => match parse_origin(&origin.data) {
                Some(o) => messages(reply, approval, &o, now),
                None => Vec::new(),
            },
            Notification::ApprovalOpened { approval } => {
                let Some(o) = approval.origin.as_ref().and_then(|o| parse_origin(&o.data)) else {
                    return Vec::new();
                };
                vec![msg(
                    &o.channel,
                    OutOp::Post {
                        key: Some(card_key(approval.id)),
                        thread: o.thread_ts.clone().map(Thread::Ts),
                        fallback: None,
                    },
                    card(approval, None, now),
                )]
            }
            Notification::ApprovalChanged { approval, result } => {
                vec![card_update(approval, result, now)]
            }
            Notification::Scheduled {
                origin,
                reply,
                key,
                edit,
            } => match parse_origin(&origin.data) {
                Some(o) => vec![scheduled(&o, reply, key, edit)],
                None => Vec::new(),
            },
            Notification::Guided {
                origin,
                reply,
                key,
                edit,
                waits,
            } => match parse_origin(&origin.data) {
                Some(o) => vec![guided(&o, reply, key, edit, waits)],
                None => Vec::new(),
            },
            Notification::Interrupted { origin, text } => match parse_origin(&origin.data) {
                Some(o) => vec![interrupted(&o, text)],
                None => Vec::new(),
            },
            Notification::AlertGroup { group } => {
                let link =
                    |u: &str, label: &str| format!("<{}|{label}>", escape::text(&u.replace('|', "%7C")));
                let text = card::alert_group_text(group, &escape::literal, &link);
                card::alert_group_messages(PLATFORM, group, json!({ "text": text }))
            }
            Notification::AlertDigest { digest } => {
                let text = card::alert_digest_text(digest, &escape::literal);
                card::alert_digest_messages(PLATFORM, digest, json!({ "text": text }))
            }
            n @ (Notification::IncidentCard { .. } | Notification::IncidentThread { .. }) => {
                card::incident_messages(
                    PLATFORM,
                    &n,
                    &|i, ack_by| incident_card(i, ack_by, now),
                    &thread_post,
                )
            }
        }
    }
}

/// A post in an incident's thread, mentioning the people it pages.
fn thread_post(_: &Incident, text: &str, mentions: &[crate::engine::Mention]) -> Value {
    let mention = |id: &str| format!("<@{}>", escape::text(id));
    let text = escape::outside_code(text);
    json!({ "text": card::with_mentions(&text, mentions, PLATFORM, &mention, &escape::literal) })
}

/// An incident's card: title, fields, Ack / Resolve buttons until resolved.
pub fn incident_card(inc: &Incident, ack_by: Option<Millis>, now: Millis) -> Value {
    let c = card::incident_card(inc, ack_by, now, &escape::literal);
    let fields: Vec<Value> = c
        .fields
        .iter()
        .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{v}")}))
        .collect();
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", c.title)}}),
        json!({"type": "section", "fields": fields}),
    ];
    if c.buttons {
        let label = inc.label();
        let mut buttons = Vec::new();
        if inc.state == crate::incident::State::Open {
            buttons.push(
                json!({"type": "button", "action_id": "incident_ack", "value": label, "style": "primary",
                "text": {"type": "plain_text", "text": "Ack"}}),
            );
        }
        buttons.push(
            json!({"type": "button", "action_id": "incident_resolve", "value": label,
            "text": {"type": "plain_text", "text": "Resolve"}}),
        );
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": "updates and pages in the thread · `/incident update <text>` there"}]}));
    json!({ "text": c.title, "blocks": blocks })
}

fn parse_origin(data: &str) -> Option<Origin> {
    match serde_json::from_str(data) {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::error!(error = %e, "a Slack origin could not be read; its answer is dropped");
            None
        }
    }
}

fn msg(channel: &str, op: OutOp, body: Value) -> OutMessage {
    OutMessage {
        platform: PLATFORM.into(),
        channel: channel.to_string(),
        op,
        body,
    }
}

/// The notice for a request cut off by a restart: in the thread for a
/// mention, to its author otherwise.
fn interrupted(o: &Origin, text: &str) -> OutMessage {
    let thread = o.thread_ts.clone().map(Thread::Ts);
    let body = json!({ "text": format!(
        "⚠️ opsbot restarted while handling {}; its result is unknown. Check the target before retrying.",
        escape::code(text)
    ) });
    let op = match o.kind {
        OriginKind::Mention => OutOp::Post {
            key: None,
            thread,
            fallback: None,
        },
        _ => OutOp::Ephemeral {
            user: o.user.clone(),
            thread,
        },
    };
    msg(&o.channel, op, body)
}

/// A scheduled run's message in the request's channel and thread: posted
/// (under `key`, if any) or, for `edit`, the keyed message edited.
fn scheduled(o: &Origin, reply: &Reply, key: Option<&str>, edit: bool) -> OutMessage {
    msg(
        &o.channel,
        keyed_op(o, key, edit),
        result(&reply.text, reply.outcome, &o.user),
    )
}

/// Post in the request's channel and thread (under `key`, if any) or, for
/// `edit`, edit the keyed message.
fn keyed_op(o: &Origin, key: Option<&str>, edit: bool) -> OutOp {
    match (key, edit) {
        (Some(k), true) => OutOp::Update { key: k.to_string() },
        (key, _) => OutOp::Post {
            key: key.map(str::to_string),
            thread: o.thread_ts.clone().map(Thread::Ts),
            fallback: None,
        },
    }
}

/// A guided run's message, posted in the request's channel and thread, then
/// edited; Done and Abort buttons while it waits.
fn guided(o: &Origin, reply: &Reply, key: &str, edit: bool, waits: Option<(&str, usize)>) -> OutMessage {
    let op = keyed_op(o, Some(key), edit);
    let mut body = result(&reply.text, reply.outcome, &o.user);
    if let (Some((id, step)), Some(blocks)) = (waits, body["blocks"].as_array_mut()) {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "action_id": "guided_done", "value": format!("{id} {step}"), "style": "primary",
             "text": {"type": "plain_text", "text": format!("Done: step {step}")}},
            {"type": "button", "action_id": "guided_abort", "value": id, "style": "danger",
             "text": {"type": "plain_text", "text": "Abort"}},
        ]}));
    }
    msg(&o.channel, op, body)
}

/// The key of an approval's card, so later edits find it.
pub fn card_key(id: i64) -> String {
    format!("approval:{id}")
}

/// Messages answering `reply` where `origin` asked. `approval` is the
/// approval the reply is about, as stored after the step; its card is
/// posted and edited through the approval notifications, not here.
pub fn messages(
    reply: &Reply,
    approval: Option<&Approval>,
    origin: &Origin,
    _now: Millis,
) -> Vec<OutMessage> {
    let thread = origin.thread_ts.clone().map(Thread::Ts);
    if reply.private {
        return vec![to_author(origin, thread, &reply.text)];
    }
    match (reply.outcome, approval) {
        // The card posted for the new approval is the answer.
        (Outcome::ApprovalRequested, Some(a)) if has_card(a) => Vec::new(),
        // A click is answered by its card, unless it was refused.
        (Outcome::Done | Outcome::Failed, Some(a)) if origin.kind == OriginKind::Action && has_card(a) => {
            Vec::new()
        }
        (Outcome::Usage | Outcome::NotPermitted, _) | (_, Some(_)) => {
            vec![to_author(origin, thread, &reply.text)]
        }
        (outcome, None) => vec![msg(
            &origin.channel,
            // A slash command's results can still reach the channel through its
            // response_url when the bot was never invited there.
            OutOp::Post {
                key: None,
                thread,
                fallback: origin
                    .response_url
                    .clone()
                    .filter(|_| origin.kind == OriginKind::Command),
            },
            result(&reply.text, outcome, &origin.user),
        )],
    }
}

/// An ephemeral message only the request's author sees.
fn to_author(origin: &Origin, thread: Option<Thread>, text: &str) -> OutMessage {
    let op = OutOp::Ephemeral {
        user: origin.user.clone(),
        thread,
    };
    msg(&origin.channel, op, plain(text))
}

/// Approvals requested from Slack have a card (stored data: the origin's
/// platform); others (console, another chat) do not have a Slack card.
pub fn has_card(a: &Approval) -> bool {
    a.origin.as_ref().is_some_and(|o| o.platform == PLATFORM)
}

/// An edit of approval `a`'s card showing its current state (and `result`).
pub fn card_update(a: &Approval, result: Option<&str>, now: Millis) -> OutMessage {
    let channel = a.channel.clone().unwrap_or_default();
    msg(
        &channel,
        OutOp::Update { key: card_key(a.id) },
        card(a, result, now),
    )
}

/// A message of `text` alone (escaped; its `code spans` kept).
pub fn plain(text: &str) -> Value {
    json!({ "text": escape::outside_code(text) })
}

fn result(text: &str, outcome: Outcome, user: &str) -> Value {
    let icon = if outcome == Outcome::Failed { "❌" } else { "✅" };
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn",
        "text": format!("{icon} {}", escape::outside_code(first))}})];
    if !rest.trim().is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": escape::code_block(rest)}}));
    }
    // The one mention opsbot means: the requester, from the verified user id.
    let mention = format!("requested by <@{}>", escape::text(user));
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": mention}]}));
    // The fallback (notifications, clients without blocks) is mrkdwn too:
    // escaped as the blocks are.
    let mut fallback = format!("{icon} {}", escape::outside_code(first));
    if !rest.trim().is_empty() {
        fallback.push('\n');
        fallback.push_str(&escape::code_block(rest));
    }
    json!({ "text": fallback, "blocks": blocks })
}

/// The approval card: the exact request, requester, risk, expiry, and either
/// the buttons (pending) or the decision and result.
pub fn card(a: &Approval, result: Option<&str>, now: Millis) -> Value {
    let label = a.label();
    let (risk, requester) = (escape::code(&a.risk), escape::literal(&a.requester));
    let roles = escape::literal(&a.roles.join(", "));
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("*Approval {label}* · {risk} · requested by *{requester}*")}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": escape::code_block(&a.display)}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
            "needs {} of {roles} · {} of {} approved · expires {}",
            a.needed, a.votes.len(), a.needed, expiry(a, now))}]}),
    ];
    if let Some((headline, samples)) = card::preview(a) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("*Preview:* {}", escape::literal(&headline))}}));
        if !samples.is_empty() {
            blocks.push(
                json!({"type": "section", "text": {"type": "mrkdwn", "text": escape::code_block(&samples)}}),
            );
        }
    }
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
    if let Some(status) = status_line(a, &escape::literal) {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": status}]}));
    }
    if let Some(r) = result.filter(|r| !r.trim().is_empty()) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": escape::code_block(r)}}));
    }
    let fallback = format!(
        "Approval {label} ({}) by {requester}: {} — {}",
        a.risk,
        escape::code(&a.display),
        a.state.as_str()
    );
    json!({ "text": fallback, "blocks": blocks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Vote;
    use crate::origin::Origin as Stored;

    fn origin(kind: OriginKind) -> Origin {
        Origin {
            user: "UA".into(),
            channel: "C1".into(),
            thread_ts: None,
            kind,
            response_url: Some("https://hooks.example/r".into()),
        }
    }

    fn stored(o: &Origin) -> Stored {
        Stored::new(PLATFORM, serde_json::to_string(o).unwrap())
    }

    fn approval(state: State) -> Approval {
        let mut a = crate::approval::example(state);
        a.requester_identity = "slack:UA".into();
        a.channel = Some("C1".into());
        a.needed = 1;
        a.expires_at = 900_000;
        a.origin = Some(stored(&origin(OriginKind::Command)));
        a
    }

    fn render(n: Notification<'_>) -> Vec<OutMessage> {
        SlackRenderer.render(&n, 0)
    }

    fn reply_to(kind: OriginKind, reply: &Reply, a: Option<&Approval>) -> Vec<OutMessage> {
        let o = stored(&origin(kind));
        render(Notification::Reply {
            origin: &o,
            reply,
            approval: a,
        })
    }

    #[test]
    fn a_watch_message_is_posted_under_its_key_then_edited_and_a_follow_up_posted() {
        let o = stored(&origin(OriginKind::Command));
        let r = Reply::new(
            Outcome::Done,
            "👀 `/deploy watch` · run 2 of 6 · next run at 16:04:05 UTC\nphase: 50% <b>",
        );
        let scheduled = |key: Option<&'static str>, edit: bool| {
            render(Notification::Scheduled {
                origin: &o,
                reply: &r,
                key,
                edit,
            })
        };
        let first = scheduled(Some("watch:1"), false);
        assert!(
            matches!(&first[..], [OutMessage { op: OutOp::Post { key: Some(k), fallback: None, .. }, .. }] if k == "watch:1"),
            "posted under its key, never through the response_url: {first:?}"
        );
        let edit = scheduled(Some("watch:1"), true);
        assert_eq!(
            edit[0].op,
            OutOp::Update {
                key: "watch:1".into()
            }
        );
        assert_eq!(edit[0].channel, "C1");
        insta::assert_json_snapshot!("watch_edit", edit[0].body);
        let later = scheduled(None, false);
        assert!(matches!(
            &later[..],
            [OutMessage {
                op: OutOp::Post {
                    key: None,
                    fallback: None,
                    ..
                },
                ..
            }]
        ));
    }

    #[test]
    fn a_card_shows_the_preview_with_its_samples_escaped() {
        let a = crate::approval::with_example_preview(approval(State::Pending));
        let m = render(Notification::ApprovalOpened { approval: &a });
        insta::assert_json_snapshot!("approval_card_preview", m[0].body);
    }

    #[test]
    fn a_new_approval_posts_a_card_with_buttons() {
        let a = approval(State::Pending);
        let m = render(Notification::ApprovalOpened { approval: &a });
        assert!(
            matches!(&m[..], [OutMessage { op: OutOp::Post { key: Some(k), .. }, .. }] if k == "approval:7")
        );
        insta::assert_json_snapshot!("approval_card_pending", m[0].body);
        // The requester's answer is the card itself.
        let r = Reply::new(Outcome::ApprovalRequested, "approval requested: a7").with_approval(7);
        assert!(reply_to(OriginKind::Command, &r, Some(&a)).is_empty());
    }

    #[test]
    fn refusals_are_ephemeral_and_results_update_the_card() {
        let a = approval(State::Pending);
        let r = Reply::new(Outcome::NotPermitted, "refused: you requested a7").with_approval(7);
        let m = reply_to(OriginKind::Action, &r, Some(&a));
        assert!(matches!(&m[..], [OutMessage { op: OutOp::Ephemeral { user, .. }, .. }] if user == "UA"));

        let mut done = approval(State::Succeeded);
        done.votes.push(Vote {
            person: "bob".into(),
            identity: "slack:UB".into(),
            at: 1,
        });
        let r = Reply::new(Outcome::Done, "Retried 37").with_approval(7);
        assert!(
            reply_to(OriginKind::Action, &r, Some(&done)).is_empty(),
            "a click is answered by the card alone"
        );
        let typed = reply_to(OriginKind::Command, &r, Some(&done));
        assert!(
            matches!(&typed[..], [OutMessage { op: OutOp::Ephemeral { user, .. }, .. }] if user == "UA"),
            "typed /approve gets an answer"
        );
        let m = render(Notification::ApprovalChanged {
            approval: &done,
            result: Some("Retried 37"),
        });
        assert!(matches!(&m[..], [OutMessage { op: OutOp::Update { key }, .. }] if key == "approval:7"));
        insta::assert_json_snapshot!("approval_card_succeeded", m[0].body);
    }

    #[test]
    fn cards_say_what_a_restart_left_unknown() {
        let mut a = approval(State::Unknown);
        a.votes.push(Vote {
            person: "bob".into(),
            identity: "slack:UB".into(),
            at: 1,
        });
        let m = render(Notification::ApprovalChanged {
            approval: &a,
            result: None,
        });
        insta::assert_json_snapshot!("approval_card_unknown", m[0].body);
        let expired = render(Notification::ApprovalChanged {
            approval: &approval(State::Expired),
            result: None,
        });
        insta::assert_json_snapshot!("approval_card_expired", expired[0].body);
    }

    #[test]
    fn approvals_from_the_console_have_no_card() {
        let mut a = approval(State::Succeeded);
        a.origin = Some(Stored::new("console", String::new()));
        assert!(!has_card(&a));
        let r = Reply::new(Outcome::Done, "Retried 37").with_approval(7);
        let m = reply_to(OriginKind::Command, &r, Some(&a));
        assert_eq!(m.len(), 1);
        assert!(matches!(&m[0].op, OutOp::Ephemeral { .. }));
        assert!(m[0].body.to_string().contains("Retried 37"));
    }

    #[test]
    fn plain_results_post_in_channel_or_thread() {
        let r = Reply::new(Outcome::Done, "ok\nline 2");
        let mut o = origin(OriginKind::Mention);
        o.thread_ts = Some("123.4".into());
        let m = render(Notification::Reply {
            origin: &stored(&o),
            reply: &r,
            approval: None,
        });
        assert!(
            matches!(&m[0].op, OutOp::Post { key: None, thread: Some(Thread::Ts(t)), fallback: None } if t == "123.4")
        );
        let m = reply_to(OriginKind::Command, &r, None);
        assert!(
            matches!(
                &m[0].op,
                OutOp::Post {
                    fallback: Some(_),
                    ..
                }
            ),
            "slash command results keep their response_url"
        );
        insta::assert_json_snapshot!("result_done", m[0].body);
        let failed = Reply::new(Outcome::Failed, "`/queue stats` failed: connection refused");
        insta::assert_json_snapshot!(
            "result_failed",
            reply_to(OriginKind::Command, &failed, None)[0].body
        );
    }

    #[test]
    fn private_replies_go_to_the_asker_alone() {
        let r = Reply::new(Outcome::Done, "a7 · /queue retry ai-analysis · by alice").private();
        for kind in [OriginKind::Command, OriginKind::Mention, OriginKind::Action] {
            let m = reply_to(kind, &r, None);
            assert!(
                matches!(&m[..], [OutMessage { op: OutOp::Ephemeral { user, .. }, .. }] if user == "UA"),
                "{kind:?}: {m:?}"
            );
        }
    }

    #[test]
    fn dynamic_text_cannot_mention_link_or_break_out_of_code() {
        let evil = "<!channel> <https://evil.example|runbook> & co";
        let r = Reply::new(Outcome::Done, format!("{evil}\nout ``` <@U0BOB> ```\nend"));
        let m = reply_to(OriginKind::Command, &r, None);
        insta::assert_json_snapshot!("result_injected", m[0].body);
        let body = m[0].body.to_string();
        for raw in ["<!channel>", "<https://", "<@U0BOB>", "& co"] {
            assert!(!body.contains(raw), "{raw} leaked: {body}");
        }
        assert!(
            body.contains("requested by <@UA>"),
            "the mention opsbot means stays"
        );

        let mut a = approval(State::Rejected);
        a.display = "/queue note <!here> ```".into();
        a.requester = "<@U0EVE>".into();
        a.decided_by = Some("bob".into());
        a.result = Some("see <https://evil.example|the runbook>".into());
        let card = card(&a, Some("<!everyone>"), 0);
        let text = card.to_string();
        for raw in ["<!here>", "<@U0EVE>", "<https://", "<!everyone>"] {
            assert!(!text.contains(raw), "{raw} leaked: {text}");
        }
        let fences = card["blocks"].to_string().matches("```").count();
        assert_eq!(fences, 4, "two code blocks, four fences: {card}");
        let o = stored(&origin(OriginKind::Command));
        let m = render(Notification::Interrupted {
            origin: &o,
            text: "/queue `x` <!channel>",
        });
        let notice = m[0].body.to_string();
        assert!(notice.contains("`/queue ˋxˋ &lt;!channel&gt;`"), "{notice}");
    }

    #[test]
    fn interrupted_requests_are_reported_to_their_author() {
        let o = stored(&origin(OriginKind::Command));
        let m = render(Notification::Interrupted {
            origin: &o,
            text: "/queue retry ai-analysis",
        });
        assert!(matches!(&m[..], [OutMessage { op: OutOp::Ephemeral { user, .. }, .. }] if user == "UA"));
        assert!(m[0].body.to_string().contains("result is unknown"));
    }

    #[test]
    fn incident_cards_and_thread_posts() {
        let mut inc = crate::incident::example();
        let card = render(Notification::IncidentCard {
            incident: &inc,
            ack_by: Some(300_000),
            new: true,
        });
        assert_eq!(card.len(), 1, "only the Slack destination: {card:?}");
        assert_eq!(
            card[0].op,
            OutOp::Post {
                key: Some("incident:7:slack:C_INC".into()),
                thread: None,
                fallback: None
            }
        );
        insta::assert_json_snapshot!("incident_card_open", card[0].body);
        inc.state = crate::incident::State::Resolved;
        inc.resolved_by = Some("bob".into());
        inc.resolved_at = Some(600_000);
        let edit = render(Notification::IncidentCard {
            incident: &inc,
            ack_by: None,
            new: false,
        });
        assert_eq!(
            edit[0].op,
            OutOp::Update {
                key: "incident:7:slack:C_INC".into()
            }
        );
        assert!(
            !edit[0].body.to_string().contains("\"actions\""),
            "resolved: no buttons"
        );
        let mentions = crate::incident::example_mentions();
        let post = render(Notification::IncidentThread {
            incident: &inc,
            text: "📟 paging <!channel>",
            mentions: &mentions,
        });
        assert_eq!(
            post[0].op,
            OutOp::Post {
                key: None,
                thread: Some(Thread::Key("incident:7:slack:C_INC".into())),
                fallback: None
            }
        );
        assert_eq!(
            post[0].body["text"],
            "📟 paging &lt;!channel&gt; <@U0A>, daveˍ∗x∗"
        );
    }

    #[test]
    fn formatting_in_dynamic_text_stays_literal_and_opsbots_own_stays() {
        use crate::alerts::post::GroupView;
        let g = GroupView::hostile_example();
        let m = render(Notification::AlertGroup { group: &g });
        insta::assert_json_snapshot!("alert_group_hostile", m[0].body);
        let text = m[0].body["text"].as_str().unwrap_or_default();
        for raw in ["*", "_y_", "~", "`", "<!channel>", "<@U0EVE>", "<https://evil"] {
            assert!(!text.contains(raw), "{raw} left in: {text}");
        }
        assert!(text.contains("disk_usage_high"), "identifiers copy as typed");

        let mut a = crate::approval::hostile_example();
        a.origin = Some(stored(&origin(OriginKind::Command)));
        let m = render(Notification::ApprovalOpened { approval: &a });
        insta::assert_json_snapshot!("approval_card_hostile", m[0].body);
        let blocks = &m[0].body["blocks"];
        assert!(
            blocks[0]["text"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("*Approval a7*") && t.ends_with("*∗x∗*")),
            "opsbot's bold labels stay: {blocks}"
        );

        let r = Reply::new(Outcome::Done, "`/alerts ack *x*` done for *prod* by _eve_");
        let m = reply_to(OriginKind::Command, &r, None);
        assert_eq!(
            m[0].body["blocks"][0]["text"]["text"],
            "✅ `/alerts ack *x*` done for ∗prod∗ by ˍeveˍ"
        );
        let refused = Reply::new(Outcome::NotPermitted, "refused: *x* `a7`");
        let m = reply_to(OriginKind::Command, &refused, None);
        assert_eq!(m[0].body["text"], "refused: ∗x∗ `a7`");

        let inc = crate::incident::example();
        let post = render(Notification::IncidentThread {
            incident: &inc,
            text: "📝 *eve*: _rolled back_ `v2`",
            mentions: &[],
        });
        assert_eq!(post[0].body["text"], "📝 ∗eve∗: ˍrolled backˍ `v2`");
    }

    #[test]
    fn alert_groups_are_escaped_and_keyed_per_destination() {
        use crate::alerts::post::{GroupView, Line};
        use crate::policy::Destination;
        let line = |name: &str, resolved: bool| Line {
            name: name.into(),
            resolved,
            severity: Some("critical".into()),
            summary: Some("<!channel> errors > 5% & rising".into()),
            generator_url: Some("http://prom/graph?g0.expr=a|b>c".into()),
            silence_url: Some("javascript:alert(1)".into()),
            dashboard_url: None,
            acknowledged_by: None,
            silenced: None,
        };
        let mut g = GroupView {
            id: 4,
            route: "chat".into(),
            profile: Some("chat".into()),
            destinations: vec![
                Destination {
                    platform: "slack".into(),
                    channel: "C1".into(),
                },
                Destination {
                    platform: "discord".into(),
                    channel: "9".into(),
                },
            ],
            firing: 1,
            resolved: 12,
            lines: vec![line("HighErrorRate", false), line("SlowResponseTime", true)],
            new: true,
        };
        let m = render(Notification::AlertGroup { group: &g });
        assert_eq!(m.len(), 1, "the Slack destination only");
        assert_eq!(
            m[0].op,
            OutOp::Post {
                key: Some("alerts:4:slack:C1".into()),
                thread: None,
                fallback: None
            }
        );
        assert_eq!(
            m[0].body["text"],
            "🔥 1 firing · 12 resolved — chat (chat)\n\
             • HighErrorRate [critical]: &lt;!channel&gt; errors &gt; 5% &amp; rising · <http://prom/graph?g0.expr=a%7Cb&gt;c|source>\n\
             ✓ SlowResponseTime [critical]: &lt;!channel&gt; errors &gt; 5% &amp; rising (resolved) · <http://prom/graph?g0.expr=a%7Cb&gt;c|source>\n\
             … and 11 more"
        );
        g.new = false;
        let m = render(Notification::AlertGroup { group: &g });
        assert_eq!(
            m[0].op,
            OutOp::Update {
                key: "alerts:4:slack:C1".into()
            }
        );
    }

    #[test]
    fn alert_group_and_storm_digest_snapshots() {
        use crate::alerts::digest::DigestView;
        use crate::alerts::post::GroupView;
        let g = GroupView::example();
        let m = render(Notification::AlertGroup { group: &g });
        assert_eq!(m.len(), 1, "the Slack destination only");
        insta::assert_json_snapshot!("alert_group", m[0].body);
        for (name, ended) in [("storm_digest", false), ("storm_digest_over", true)] {
            let d = DigestView::example(ended);
            let m = render(Notification::AlertDigest { digest: &d });
            assert_eq!(m.len(), 1);
            insta::assert_json_snapshot!(name, m[0].body);
        }
    }
}
