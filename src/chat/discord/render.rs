//! What opsbot posts to Discord for each engine notification. Pure:
//! notification (reply, approval snapshot, where the request came from) →
//! outbox messages (Discord message JSON built with serenity's builders).
//!
//! A slash command is acknowledged with a deferred response; its answer
//! (the result, or the approval card) edits that response through the
//! interaction's webhook (`OutOp::Respond`), which Discord keeps open for 15
//! minutes; later answers go to the channel with the bot token. Refusals of
//! button clicks are ephemeral followups, which only the webhook can send.
//! Cards are edited with the bot token (`OutOp::Update`), however old.

use crate::approval::{Approval, State};
use crate::chat::card::{self, expiry, status_line};
use crate::clock::Millis;
use crate::engine::{Notification, Outcome, Renderer, Reply};
use crate::incident::{Incident, State as IncidentState};
use crate::store::{OutMessage, OutOp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use serenity::all::{ButtonStyle, CreateActionRow, CreateButton, CreateEmbed, CreateEmbedFooter};

/// The platform name of Discord's origins and outbox rows.
pub const PLATFORM: &str = "discord";

/// How long Discord accepts answers through an interaction's token.
pub const TOKEN_TTL_MS: Millis = 15 * 60 * 1000;

/// `flags` of a message only its recipient sees.
pub const EPHEMERAL: u64 = 1 << 6;

/// Where a Discord request came from: everything needed to answer it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub user: String,
    pub channel: String,
    pub kind: OriginKind,
    /// The interaction's token (answers through its webhook) and until when
    /// Discord accepts it.
    pub token: String,
    pub expires_at: Millis,
    /// The deferred response is visible only to the user (built-ins such as
    /// `/approve`): every answer to it stays private.
    pub private: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginKind {
    /// A slash command (acknowledged with a deferred response).
    Command,
    /// A button on a card (acknowledged with a deferred update).
    Component,
}

/// The reply handle stored with an answer (`OutOp::Respond`); read by `api`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    pub token: String,
    pub expires_at: Millis,
    pub to: Target,
}

/// What an answer through the webhook does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Edits the deferred response (`@original`).
    Original,
    /// A new (ephemeral) followup message.
    Followup,
}

/// Discord's [`Renderer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscordRenderer;

impl Renderer for DiscordRenderer {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    fn render(&self, n: &Notification<'_>, now: Millis) -> Vec<OutMessage> {
        match *n {
            Notification::Reply {
                origin,
                reply,
                approval,
            } => parse_origin(&origin.data)
                .map(|o| messages(reply, approval, &o))
                .unwrap_or_default(),
            Notification::ApprovalOpened { approval } => {
                let Some(o) = approval.origin.as_ref().and_then(|o| parse_origin(&o.data)) else {
                    return Vec::new();
                };
                let key = Some(card_key(approval.id));
                let op = match (o.kind, o.private) {
                    // The card is the command's answer: it replaces "thinking…".
                    (OriginKind::Command, false) => respond(&o, Target::Original, key, None),
                    _ => OutOp::Post {
                        key,
                        thread: None,
                        fallback: None,
                    },
                };
                vec![msg(&o.channel, op, card(approval, None, now))]
            }
            Notification::ApprovalChanged { approval, result } => {
                vec![card_update(approval, result, now)]
            }
            Notification::Scheduled {
                origin,
                reply,
                key,
                edit,
            } => parse_origin(&origin.data)
                .map(|o| vec![scheduled(&o, reply, key, edit)])
                .unwrap_or_default(),
            Notification::Guided {
                origin,
                reply,
                key,
                edit,
                waits,
            } => parse_origin(&origin.data)
                .map(|o| vec![guided(&o, reply, key, edit, waits)])
                .unwrap_or_default(),
            Notification::Interrupted { origin, text } => match parse_origin(&origin.data) {
                Some(o) => {
                    let notice = format!(
                        "⚠️ opsbot restarted while handling `{}`; its result is unknown. Check the target before retrying.",
                        code_span(text)
                    );
                    vec![answer(&o, &notice)]
                }
                None => Vec::new(),
            },
            Notification::AlertGroup { group } => {
                let link = |u: &str, label: &str| {
                    format!("[{label}](<{}>)", u.replace('>', "%3E").replace(')', "%29"))
                };
                let content = card::alert_group_text(group, &escape, &link);
                let body = json!({ "content": content, "allowed_mentions": no_pings() });
                card::alert_group_messages(PLATFORM, group, body)
            }
            Notification::AlertDigest { digest } => {
                let content = card::alert_digest_text(digest, &escape);
                let body = json!({ "content": content, "allowed_mentions": no_pings() });
                card::alert_digest_messages(PLATFORM, digest, body)
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

/// A post in an incident's thread: pings exactly the people it pages, and
/// names the thread to start from the card if there is none yet.
fn thread_post(incident: &Incident, text: &str, mentions: &[crate::engine::Mention]) -> Value {
    let users: Vec<&str> = mentions.iter().filter_map(|m| m.on(PLATFORM)).collect();
    let content = card::with_mentions(
        &escape(text),
        mentions,
        PLATFORM,
        &|id| format!("<@{id}>"),
        &escape,
    );
    json!({
        "content": content,
        "allowed_mentions": { "parse": [], "users": users },
        THREAD_NAME: thread_name(incident),
    })
}

/// A field of a thread message's body that is not Discord's: the name of
/// the thread to start from the card when it does not exist yet (the API
/// client removes it before sending).
pub const THREAD_NAME: &str = "opsbot_thread_name";

/// A thread's name: at most 100 characters.
fn thread_name(inc: &Incident) -> String {
    let name = format!("{} {} {}", inc.label(), inc.level, inc.title);
    name.chars().take(100).collect()
}

/// An incident's card: an embed with Ack / Resolve buttons until resolved.
pub fn incident_card(inc: &Incident, ack_by: Option<Millis>, now: Millis) -> Value {
    let c = card::incident_card(inc, ack_by, now, &escape);
    let mut embed = CreateEmbed::new()
        .title(c.title.chars().take(256).collect::<String>())
        .color(match inc.state {
            IncidentState::Open => 0xE74C3C,
            IncidentState::Acked => 0xF1C40F,
            IncidentState::Resolved => 0x2ECC71,
        });
    for (k, v) in &c.fields {
        embed = embed.field(*k, v, true);
    }
    embed = embed.footer(CreateEmbedFooter::new("updates and pages in the thread"));
    let label = inc.label();
    let mut buttons = Vec::new();
    if inc.state == IncidentState::Open {
        buttons.push(
            CreateButton::new(format!("incident_ack:{label}"))
                .label("Ack")
                .style(ButtonStyle::Success),
        );
    }
    if c.buttons {
        buttons.push(
            CreateButton::new(format!("incident_resolve:{label}"))
                .label("Resolve")
                .style(ButtonStyle::Secondary),
        );
    }
    let components = if buttons.is_empty() {
        Vec::new()
    } else {
        vec![CreateActionRow::Buttons(buttons)]
    };
    json!({
        "content": "",
        "embeds": [embed],
        "components": components,
        "allowed_mentions": no_pings(),
    })
}

fn parse_origin(data: &str) -> Option<Origin> {
    match serde_json::from_str(data) {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::error!(error = %e, "a Discord origin could not be read; its answer is dropped");
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

fn respond(o: &Origin, to: Target, key: Option<String>, user: Option<String>) -> OutOp {
    let handle = Handle {
        token: o.token.clone(),
        expires_at: o.expires_at,
        to,
    };
    OutOp::Respond {
        handle: serde_json::to_string(&handle).unwrap_or_default(),
        key,
        user,
    }
}

/// A scheduled run's message: a watch's first one answers the command (it
/// replaces "thinking…", under `key`); its edits, and a follow-up's result
/// (long after the interaction's token expired), go to the channel.
fn scheduled(o: &Origin, reply: &Reply, key: Option<&str>, edit: bool) -> OutMessage {
    let key_owned = key.map(str::to_string);
    let op = match (key_owned, edit) {
        (Some(k), true) => OutOp::Update { key: k },
        (Some(k), false) if o.kind == OriginKind::Command => {
            respond(o, Target::Original, Some(k), private_to(o))
        }
        (key, _) => OutOp::Post {
            key,
            thread: None,
            fallback: None,
        },
    };
    msg(&o.channel, op, result(&reply.text, reply.outcome, &o.user))
}

/// A guided run's message, posted in the request's channel, then edited;
/// Done and Abort buttons while it waits (removed once it ended).
fn guided(o: &Origin, reply: &Reply, key: &str, edit: bool, waits: Option<(&str, usize)>) -> OutMessage {
    let op = match edit {
        true => OutOp::Update { key: key.to_string() },
        false => OutOp::Post {
            key: Some(key.to_string()),
            thread: None,
            fallback: None,
        },
    };
    let mut body = result(&reply.text, reply.outcome, &o.user);
    body["components"] = match waits {
        Some((id, step)) => json!([{ "type": 1, "components": [
            { "type": 2, "style": 3, "label": format!("Done: step {step}"), "custom_id": format!("guided_done:{id} {step}") },
            { "type": 2, "style": 4, "label": "Abort", "custom_id": format!("guided_abort:{id}") },
        ]}]),
        None => json!([]),
    };
    msg(&o.channel, op, body)
}

/// The key of an approval's card, so later edits find it.
pub fn card_key(id: i64) -> String {
    format!("approval:{id}")
}

/// Messages answering `reply` where `origin` asked (see the module docs).
pub fn messages(reply: &Reply, approval: Option<&Approval>, origin: &Origin) -> Vec<OutMessage> {
    // A private answer to a click is for the clicker alone: it leaves the
    // clicked message as it is.
    if reply.private && origin.kind == OriginKind::Component {
        return vec![answer(origin, &reply.text)];
    }
    match (reply.outcome, approval) {
        // The card posted for the new approval is the answer.
        (Outcome::ApprovalRequested, Some(a)) if has_card(a) => Vec::new(),
        // A click is answered by its card, unless it was refused.
        (Outcome::Done | Outcome::Failed, Some(a)) if origin.kind == OriginKind::Component && has_card(a) => {
            Vec::new()
        }
        (Outcome::Usage | Outcome::NotPermitted, _) | (_, Some(_)) => {
            vec![answer(origin, &reply.text)]
        }
        (outcome, None) => vec![msg(
            &origin.channel,
            respond(origin, Target::Original, None, private_to(origin)),
            result(&reply.text, outcome, &origin.user),
        )],
    }
}

/// Only the user sees the answer to a private deferral.
fn private_to(o: &Origin) -> Option<String> {
    o.private.then(|| o.user.clone())
}

/// A plain answer to the request's author: it edits a command's deferred
/// response (private if that was), or follows up on a click ephemerally.
fn answer(o: &Origin, text: &str) -> OutMessage {
    let (op, body) = match o.kind {
        OriginKind::Command => (respond(o, Target::Original, None, private_to(o)), plain(text)),
        OriginKind::Component => {
            let mut body = plain(text);
            body["flags"] = json!(EPHEMERAL);
            (respond(o, Target::Followup, None, Some(o.user.clone())), body)
        }
    };
    msg(&o.channel, op, body)
}

/// Approvals requested from Discord have a card there; others do not.
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

/// Mentions are shown but never ping anyone.
fn no_pings() -> Value {
    json!({ "parse": [] })
}

fn plain(text: &str) -> Value {
    json!({ "content": escape_outside_code(text), "allowed_mentions": no_pings() })
}

fn result(text: &str, outcome: Outcome, user: &str) -> Value {
    let icon = if outcome == Outcome::Failed { "❌" } else { "✅" };
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut content = format!("{icon} {}", escape_outside_code(first));
    if !rest.trim().is_empty() {
        content.push_str(&format!("\n{}", code_block(rest)));
    }
    content.push_str(&format!("\n-# requested by <@{user}>"));
    json!({ "content": content, "allowed_mentions": no_pings() })
}

/// The approval card: an embed with the exact request, requester, risk and
/// expiry, and either the buttons (pending) or the decision and result.
pub fn card(a: &Approval, result: Option<&str>, now: Millis) -> Value {
    let label = a.label();
    let mut embed = CreateEmbed::new()
        .title(format!("Approval {label}"))
        .description(code_block(&a.display))
        .color(color(a.state))
        .field("Requested by", escape(&a.requester), true)
        .field("Risk", format!("`{}`", code_span(&a.risk)), true)
        .field(
            "Approvals",
            format!(
                "{} of {} from {}",
                a.votes.len(),
                a.needed,
                escape(&a.roles.join(", "))
            ),
            true,
        )
        .field("Expires", expiry(a, now), false);
    if let Some((headline, samples)) = card::preview(a) {
        let value = if samples.is_empty() {
            escape(&headline)
        } else {
            format!("{}\n{}", escape(&headline), code_block(&samples))
        };
        embed = embed.field("Preview", value, false);
    }
    if let Some(status) = status_line(a, &escape) {
        embed = embed.field("Status", status, false);
    }
    if let Some(r) = result.filter(|r| !r.trim().is_empty()) {
        embed = embed.field("Result", code_block(r), false);
    }
    embed = embed.footer(CreateEmbedFooter::new(format!("{label} · {}", a.state.as_str())));
    // An empty list removes the buttons when the card is edited.
    let components = if a.state == State::Pending {
        vec![CreateActionRow::Buttons(vec![
            CreateButton::new(format!("approve:{label}"))
                .label("Approve")
                .style(ButtonStyle::Success),
            CreateButton::new(format!("reject:{label}"))
                .label("Reject")
                .style(ButtonStyle::Danger),
        ])]
    } else {
        Vec::new()
    };
    json!({
        "content": "",
        "embeds": [embed],
        "components": components,
        "allowed_mentions": no_pings(),
    })
}

fn color(s: State) -> u32 {
    match s {
        State::Pending => 0xF1C40F,
        State::Approved | State::Executing => 0x3498DB,
        State::Succeeded => 0x2ECC71,
        State::Failed | State::Rejected => 0xE74C3C,
        State::Unknown => 0xE67E22,
        State::Expired | State::Cancelled => 0x95A5A6,
    }
}

/// `text` with Discord markdown made literal: `*bold*`, `_x_`, `~~x~~`,
/// `||spoiler||`, `[masked](links)`, `<@mentions>`, and headings, quotes
/// and lists at the start of a line.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut line_start = true;
    for c in text.chars() {
        let special = matches!(c, '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<')
            || (line_start && matches!(c, '#' | '>' | '-'));
        if special {
            out.push('\\');
        }
        out.push(c);
        line_start = c == '\n' || (line_start && c == ' ');
    }
    out
}

/// Engine text keeps its `code spans`; everything outside them is escaped.
pub fn escape_outside_code(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                part.to_string()
            } else {
                escape(part)
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// A code block that no backticks inside can close early.
pub fn code_block(text: &str) -> String {
    format!("```\n{}\n```", text.replace("```", "`\u{200b}``"))
}

/// Text for inside a `code span` (a backtick would end it).
fn code_span(text: &str) -> String {
    text.replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Vote;
    use crate::origin::Origin as Stored;

    fn origin(kind: OriginKind) -> Origin {
        Origin {
            user: "111".into(),
            channel: "C1".into(),
            kind,
            token: "tok".into(),
            expires_at: TOKEN_TTL_MS,
            private: false,
        }
    }

    fn stored(o: &Origin) -> Stored {
        Stored::new(PLATFORM, serde_json::to_string(o).unwrap())
    }

    fn approval(state: State) -> Approval {
        let mut a = crate::approval::example(state);
        a.requester_identity = "discord:111".into();
        a.channel = Some("C1".into());
        a.needed = 1;
        a.expires_at = 900_000;
        a.origin = Some(stored(&origin(OriginKind::Command)));
        a
    }

    fn render(n: Notification<'_>) -> Vec<OutMessage> {
        DiscordRenderer.render(&n, 0)
    }

    fn reply_to(o: &Origin, reply: &Reply, a: Option<&Approval>) -> Vec<OutMessage> {
        render(Notification::Reply {
            origin: &stored(o),
            reply,
            approval: a,
        })
    }

    fn handle(op: &OutOp) -> Handle {
        match op {
            OutOp::Respond { handle, .. } => serde_json::from_str(handle).unwrap(),
            other => panic!("not an answer through the webhook: {other:?}"),
        }
    }

    #[test]
    fn a_card_shows_the_preview_with_its_samples_escaped() {
        let a = crate::approval::with_example_preview(approval(State::Pending));
        let m = render(Notification::ApprovalOpened { approval: &a });
        insta::assert_json_snapshot!("approval_card_preview", m[0].body);
    }

    #[test]
    fn a_new_approval_edits_the_deferred_response_into_a_card_with_buttons() {
        let a = approval(State::Pending);
        let m = render(Notification::ApprovalOpened { approval: &a });
        assert!(
            matches!(&m[..], [OutMessage { op: OutOp::Respond { key: Some(k), user: None, .. }, .. }] if k == "approval:7")
        );
        assert_eq!(handle(&m[0].op).to, Target::Original);
        insta::assert_json_snapshot!("approval_card_pending", m[0].body);
        let r = Reply::new(Outcome::ApprovalRequested, "approval requested: a7").with_approval(7);
        assert!(reply_to(&origin(OriginKind::Command), &r, Some(&a)).is_empty());
        assert!(m[0].body["components"][0]["components"][0]["custom_id"]
            .as_str()
            .is_some_and(|id| id == "approve:a7"));
    }

    #[test]
    fn refusals_are_ephemeral_and_results_update_the_card() {
        let a = approval(State::Pending);
        let r = Reply::new(Outcome::NotPermitted, "refused: you requested a7").with_approval(7);
        let m = reply_to(&origin(OriginKind::Component), &r, Some(&a));
        assert!(
            matches!(&m[..], [OutMessage { op: OutOp::Respond { user: Some(u), .. }, .. }] if u == "111")
        );
        assert_eq!(handle(&m[0].op).to, Target::Followup);
        assert_eq!(m[0].body["flags"], EPHEMERAL);

        let mut done = approval(State::Succeeded);
        done.votes.push(Vote {
            person: "bob".into(),
            identity: "discord:222".into(),
            at: 1,
        });
        let r = Reply::new(Outcome::Done, "Retried 37").with_approval(7);
        assert!(
            reply_to(&origin(OriginKind::Component), &r, Some(&done)).is_empty(),
            "a click is answered by the card alone"
        );
        let mut typed = origin(OriginKind::Command);
        typed.private = true;
        let m = reply_to(&typed, &r, Some(&done));
        assert!(
            matches!(&m[..], [OutMessage { op: OutOp::Respond { user: Some(u), .. }, .. }] if u == "111"),
            "typed /approve gets a private answer: {m:?}"
        );
        let m = render(Notification::ApprovalChanged {
            approval: &done,
            result: Some("Retried 37"),
        });
        assert!(matches!(&m[..], [OutMessage { op: OutOp::Update { key }, .. }] if key == "approval:7"));
        assert_eq!(m[0].body["components"], json!([]), "buttons are removed");
        insta::assert_json_snapshot!("approval_card_succeeded", m[0].body);
    }

    #[test]
    fn cards_say_what_a_restart_left_unknown() {
        let mut a = approval(State::Unknown);
        a.votes.push(Vote {
            person: "bob".into(),
            identity: "discord:222".into(),
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
    fn approvals_from_elsewhere_have_no_discord_card() {
        let mut a = approval(State::Succeeded);
        a.origin = Some(Stored::new("slack", String::new()));
        assert!(!has_card(&a));
        let r = Reply::new(Outcome::Done, "Retried 37").with_approval(7);
        let mut typed = origin(OriginKind::Command);
        typed.private = true;
        let m = reply_to(&typed, &r, Some(&a));
        assert_eq!(m.len(), 1);
        assert!(m[0].body.to_string().contains("Retried 37"));
    }

    #[test]
    fn plain_results_edit_the_deferred_response() {
        let r = Reply::new(Outcome::Done, "ok\nline 2");
        let m = reply_to(&origin(OriginKind::Command), &r, None);
        assert!(matches!(
            &m[0].op,
            OutOp::Respond {
                key: None,
                user: None,
                ..
            }
        ));
        assert_eq!(handle(&m[0].op).to, Target::Original);
        insta::assert_json_snapshot!("result_done", m[0].body);
        let failed = Reply::new(Outcome::Failed, "`/queue stats` failed: connection refused");
        insta::assert_json_snapshot!(
            "result_failed",
            reply_to(&origin(OriginKind::Command), &failed, None)[0].body
        );
    }

    #[test]
    fn a_guided_run_s_message_has_done_and_abort_while_it_waits_and_none_after() {
        let o = stored(&origin(OriginKind::Command));
        let r = Reply::new(
            Outcome::Done,
            "⏸ `/dr drill` waits at step 2 of 5\n✓ 1/5 POST /api/stop",
        );
        let guided = |edit: bool, waits: Option<(&'static str, usize)>| {
            render(Notification::Guided {
                origin: &o,
                reply: &r,
                key: "guided:g1a2b3c4d",
                edit,
                waits,
            })
        };
        let first = guided(false, Some(("g1a2b3c4d", 2)));
        assert!(
            matches!(&first[..], [OutMessage { op: OutOp::Post { key: Some(k), .. }, .. }] if k == "guided:g1a2b3c4d"),
            "posted in the channel under its key: {first:?}"
        );
        let ids: Vec<&str> = first[0].body["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["custom_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["guided_done:g1a2b3c4d 2", "guided_abort:g1a2b3c4d"]);
        let ended = guided(true, None);
        assert_eq!(
            ended[0].op,
            OutOp::Update {
                key: "guided:g1a2b3c4d".into()
            }
        );
        assert_eq!(
            ended[0].body["components"],
            json!([]),
            "the buttons go once it ended"
        );
    }

    #[test]
    fn a_watch_message_answers_the_command_then_is_edited_and_a_follow_up_posted() {
        let o = stored(&origin(OriginKind::Command));
        let r = Reply::new(Outcome::Done, "👀 `/deploy watch` · watch ended\nphase: 100%");
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
            matches!(&first[0].op, OutOp::Respond { key: Some(k), .. } if k == "watch:1"),
            "it replaces thinking…: {first:?}"
        );
        assert_eq!(handle(&first[0].op).to, Target::Original);
        let edit = scheduled(Some("watch:1"), true);
        assert_eq!(
            edit[0].op,
            OutOp::Update {
                key: "watch:1".into()
            }
        );
        insta::assert_json_snapshot!("watch_edit", edit[0].body);
        let later = scheduled(None, false);
        assert!(matches!(
            &later[..],
            [OutMessage {
                op: OutOp::Post {
                    key: None,
                    thread: None,
                    ..
                },
                ..
            }]
        ));
    }

    #[test]
    fn interrupted_requests_are_reported_to_their_author() {
        let m = render(Notification::Interrupted {
            origin: &stored(&origin(OriginKind::Component)),
            text: "/queue retry ai-analysis",
        });
        assert!(
            matches!(&m[..], [OutMessage { op: OutOp::Respond { user: Some(u), .. }, .. }] if u == "111")
        );
        assert!(m[0].body.to_string().contains("result is unknown"));
    }

    #[test]
    fn dynamic_text_cannot_format_link_or_ping() {
        assert_eq!(
            escape("*bold* _i_ ~~s~~ ||sp||"),
            r"\*bold\* \_i\_ \~\~s\~\~ \|\|sp\|\|"
        );
        assert_eq!(escape("[click](https://x)"), r"\[click\](https://x)");
        assert_eq!(escape("# h\n> q\n- l a-b"), "\\# h\n\\> q\n\\- l a-b");
        assert_eq!(escape("<@123> @everyone"), r"\<@123> @everyone");
        assert_eq!(escape_outside_code("run `/x *y*` *now*"), r"run `/x *y*` \*now\*");
        assert_eq!(code_block("a```b"), "```\na`\u{200b}``b\n```");
        let body = plain("@everyone");
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    }

    #[test]
    fn formatting_in_dynamic_text_stays_literal() {
        use crate::alerts::post::GroupView;
        let g = GroupView::hostile_example();
        let m = render(Notification::AlertGroup { group: &g });
        insta::assert_json_snapshot!("alert_group_hostile", m[0].body);
        assert_eq!(m[0].body["allowed_mentions"], json!({"parse": []}));
        let mut a = crate::approval::hostile_example();
        a.origin = Some(stored(&origin(OriginKind::Command)));
        let m = render(Notification::ApprovalOpened { approval: &a });
        insta::assert_json_snapshot!("approval_card_hostile", m[0].body);
    }

    #[test]
    fn incident_cards_and_thread_posts() {
        let inc = crate::incident::example();
        let card = render(Notification::IncidentCard {
            incident: &inc,
            ack_by: Some(300_000),
            new: true,
        });
        assert_eq!(card.len(), 1, "only the Discord destination: {card:?}");
        assert_eq!(card[0].channel, "999");
        insta::assert_json_snapshot!("discord_incident_card_open", card[0].body);
        let mentions = crate::incident::example_mentions();
        let post = render(Notification::IncidentThread {
            incident: &inc,
            text: "📟 paging @everyone",
            mentions: &mentions,
        });
        assert_eq!(
            post[0].op,
            OutOp::Post {
                key: None,
                thread: Some(crate::store::Thread::Key("incident:7:discord:999".into())),
                fallback: None
            }
        );
        let body = &post[0].body;
        assert_eq!(
            body["allowed_mentions"],
            json!({"parse": [], "users": ["111"]}),
            "only alice is pinged"
        );
        assert_eq!(body["content"], r"📟 paging @everyone <@111>, dave\_\*x\*");
        assert_eq!(body[THREAD_NAME], "#7 P0 checkout <down> & *bold*");
    }

    #[test]
    fn alert_group_and_storm_digest_snapshots() {
        use crate::alerts::digest::DigestView;
        use crate::alerts::post::GroupView;
        let g = GroupView::example();
        let m = render(Notification::AlertGroup { group: &g });
        assert_eq!(m.len(), 1, "the Discord destination only");
        insta::assert_json_snapshot!("alert_group", m[0].body);
        for (name, ended) in [("storm_digest", false), ("storm_digest_over", true)] {
            let mut d = DigestView::example(ended);
            d.platform = PLATFORM.into();
            d.channel = "9".into();
            let m = render(Notification::AlertDigest { digest: &d });
            assert_eq!(m.len(), 1);
            insta::assert_json_snapshot!(name, m[0].body);
        }
    }
}
