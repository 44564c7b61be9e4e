//! The wording of an approval card that every platform shows the same way
//! (expiry, status line). Pure; each renderer adds its own markup.

use crate::approval::{Approval, State};
use crate::clock::{rfc3339, Millis};

/// When `a` expires (or expired), for people: `in 15m (2023-11-14T22:28:20Z)`.
pub fn expiry(a: &Approval, now: Millis) -> String {
    if a.expires_at <= now {
        return format!("at {} (expired)", rfc3339(a.expires_at));
    }
    let left = std::time::Duration::from_secs(((a.expires_at - now) / 1000) as u64);
    format!("in {} ({})", crate::duration::format(left), rfc3339(a.expires_at))
}

/// What the preview found, for the card: the headline (`1 214 keys`) and
/// the samples, one per line; `None` without a preview. Raw text: each
/// renderer escapes it.
pub fn preview(a: &Approval) -> Option<(String, String)> {
    let p = a.preview.as_ref()?;
    let mut samples = p.samples.join("\n");
    if p.more_than_shown() {
        samples.push_str("\n…");
    }
    Some((p.headline(), samples.trim().to_string()))
}

/// Who decided and how it ended, or `None` while nobody voted. `name`
/// escapes people's names and reasons for the platform's markup.
pub fn status_line(a: &Approval, name: &dyn Fn(&str) -> String) -> Option<String> {
    let voters = a
        .votes
        .iter()
        .map(|v| name(&v.person))
        .collect::<Vec<_>>()
        .join(", ");
    let by = name(a.decided_by.as_deref().unwrap_or_default());
    let reason = a
        .result
        .as_deref()
        .map(|r| format!(": {}", name(r)))
        .unwrap_or_default();
    Some(match a.state {
        State::Pending if a.votes.is_empty() => return None,
        State::Pending => format!("👍 approved by {voters}; waiting for more"),
        State::Approved | State::Executing => format!("✅ approved by {voters} · running…"),
        State::Succeeded => format!("✅ approved by {voters} · succeeded"),
        State::Failed => format!("✅ approved by {voters} · ❌ failed"),
        State::Unknown => format!(
            "✅ approved by {voters} · ⚠️ result unknown (opsbot restarted while it ran): check the target before retrying"
        ),
        State::Rejected => format!("🚫 rejected by {by}{reason}"),
        State::Cancelled => format!("cancelled by {by}"),
        State::Expired => "⌛ expired without enough approvals".to_string(),
    })
}

/// The parts of an incident's card every platform shows the same way:
/// the title line, labelled fields, and whether it still offers buttons.
/// `esc` escapes dynamic strings for the platform's markup.
pub struct IncidentCard {
    pub title: String,
    pub fields: Vec<(&'static str, String)>,
    pub buttons: bool,
}

/// A colour per rank, most severe first (chat shows the profile's label).
pub fn incident_emoji(level: &str, inc: &crate::incident::Incident) -> &'static str {
    use crate::incident::State;
    if inc.state == State::Resolved {
        return "✅";
    }
    // The rank is not stored; the label's digit is a good guess for the
    // shipped scales (P0/P1/SEV1 red, P2/SEV2 orange, lower yellow/blue).
    match level
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>()
        .as_str()
    {
        "0" | "1" => "🔴",
        "2" => "🟠",
        "3" => "🟡",
        _ => "🔵",
    }
}

pub fn incident_card(
    inc: &crate::incident::Incident,
    ack_by: Option<Millis>,
    now: Millis,
    esc: &dyn Fn(&str) -> String,
) -> IncidentCard {
    use crate::incident::{Role, State};
    let title = format!(
        "{} {} {} · {}",
        incident_emoji(&inc.level, inc),
        esc(&inc.level),
        inc.label(),
        esc(&inc.title)
    );
    let mut fields = vec![("System", esc(&inc.profile))];
    let state = match inc.state {
        State::Open => "open, not acknowledged".to_string(),
        State::Acked => format!(
            "acknowledged by {} {} ago",
            esc(inc.acked_by.as_deref().unwrap_or("?")),
            crate::incident::ago(now, inc.acked_at.unwrap_or(now))
        ),
        State::Resolved => format!(
            "resolved by {} after {}",
            esc(inc.resolved_by.as_deref().unwrap_or("?")),
            crate::incident::ago(inc.resolved_at.unwrap_or(now), inc.declared_at)
        ),
    };
    fields.push(("State", state));
    fields.push((
        "Commander",
        inc.role(Role::Commander).map(esc).unwrap_or_else(|| "–".into()),
    ));
    if let Some(at) = ack_by {
        fields.push(("Ack by", rfc3339(at)));
    }
    fields.push((
        "Declared",
        format!("{} by {}", rfc3339(inc.declared_at), esc(&inc.declared_by)),
    ));
    if let Some(s) = &inc.summary {
        fields.push(("Summary", esc(s)));
    }
    IncidentCard {
        title,
        fields,
        buttons: inc.state != State::Resolved,
    }
}

/// A thread message with its mentions: `mention` renders a user id of the
/// platform; people without an identity there are named.
pub fn with_mentions(
    text: &str,
    mentions: &[crate::engine::Mention],
    platform: &str,
    mention: &dyn Fn(&str) -> String,
    esc: &dyn Fn(&str) -> String,
) -> String {
    if mentions.is_empty() {
        return text.to_string();
    }
    let who: Vec<String> = mentions
        .iter()
        .map(|m| match m.on(platform) {
            Some(id) => mention(id),
            None => esc(&m.person),
        })
        .collect();
    format!("{text} {}", who.join(", "))
}

/// The outbox messages of an incident notification on `platform`, one per
/// destination there: the card (posted under its key, or edited) or a post
/// in the card's thread. `card` and `post` build the platform's bodies;
/// other notifications give nothing.
pub fn incident_messages(
    platform: &str,
    n: &crate::engine::Notification<'_>,
    card: &dyn Fn(&crate::incident::Incident, Option<Millis>) -> serde_json::Value,
    post: &dyn Fn(&crate::incident::Incident, &str, &[crate::engine::Mention]) -> serde_json::Value,
) -> Vec<crate::store::OutMessage> {
    use crate::engine::Notification;
    use crate::store::{card_key, OutMessage, OutOp, Thread};
    let (incident, body, op): (_, _, &dyn Fn(String) -> OutOp) = match *n {
        Notification::IncidentCard {
            incident,
            ack_by,
            new,
        } => (
            incident,
            card(incident, ack_by),
            if new {
                &|key| OutOp::Post {
                    key: Some(key),
                    thread: None,
                    fallback: None,
                }
            } else {
                &|key| OutOp::Update { key }
            },
        ),
        Notification::IncidentThread {
            incident,
            text,
            mentions,
        } => (incident, post(incident, text, mentions), &|key| OutOp::Post {
            key: None,
            thread: Some(Thread::Key(key)),
            fallback: None,
        }),
        _ => return Vec::new(),
    };
    incident
        .destinations
        .iter()
        .filter(|d| d.platform == platform)
        .map(|d| OutMessage {
            platform: platform.into(),
            channel: d.channel.clone(),
            op: op(card_key(incident.id, d)),
            body: body.clone(),
        })
        .collect()
}

/// The messages of an alert group's view on `platform`: posted under its
/// key in each destination there when new, else edits of those.
pub fn alert_group_messages(
    platform: &str,
    g: &crate::alerts::post::GroupView,
    body: serde_json::Value,
) -> Vec<crate::store::OutMessage> {
    g.destinations
        .iter()
        .filter(|d| d.platform == platform)
        .map(|d| {
            let key = crate::alerts::post::message_key(g.id, d);
            keyed_message(platform, &d.channel, key, g.new, body.clone())
        })
        .collect()
}

/// A message under `key` in `channel`: posted when `new`, else an edit.
fn keyed_message(
    platform: &str,
    channel: &str,
    key: String,
    new: bool,
    body: serde_json::Value,
) -> crate::store::OutMessage {
    use crate::store::OutOp;
    crate::store::OutMessage {
        platform: platform.into(),
        channel: channel.into(),
        op: if new {
            OutOp::Post {
                key: Some(key),
                thread: None,
                fallback: None,
            }
        } else {
            OutOp::Update { key }
        },
        body,
    }
}

/// A storm digest's one message, if it is for `platform`: posted when new,
/// else an edit.
pub fn alert_digest_messages(
    platform: &str,
    d: &crate::alerts::digest::DigestView,
    body: serde_json::Value,
) -> Vec<crate::store::OutMessage> {
    if d.platform != platform {
        return Vec::new();
    }
    let key = crate::alerts::digest::message_key(d.storm, &d.platform, &d.channel);
    vec![keyed_message(platform, &d.channel, key, d.new, body)]
}

/// A storm digest's text: totals, counts by alert name and severity, the
/// largest groups, "and N more", incidents opened, and what happens next.
/// `esc` escapes text for the platform.
pub fn alert_digest_text(d: &crate::alerts::digest::DigestView, esc: &dyn Fn(&str) -> String) -> String {
    let counts = |f: i64, r: i64| {
        let mut t = format!("{f} firing");
        if r > 0 {
            t.push_str(&format!(" · {r} resolved"));
        }
        t
    };
    let (icon, what) = if d.ended {
        ("✅", "Alert storm over")
    } else {
        ("🌩️", "Alert storm")
    };
    let mut t = format!(
        "{icon} {what}: {} alerts in {} groups — {}",
        d.total(),
        d.groups,
        counts(d.firing, d.resolved)
    );
    t.push_str(
        "
By alert:",
    );
    for n in &d.names {
        t.push_str(&format!(
            "
• {}",
            esc(&n.name)
        ));
        if let Some(s) = &n.severity {
            t.push_str(&format!(" [{}]", esc(s)));
        }
        t.push_str(&format!(": {}", counts(n.firing, n.resolved)));
    }
    if d.more_names > 0 {
        t.push_str(&format!(
            "
… and {} more alert names",
            d.more_names
        ));
    }
    t.push_str(
        "
Largest groups:",
    );
    for g in &d.top {
        t.push_str(&format!(
            "
• {} / {}: {}",
            esc(&g.route),
            esc(&g.key),
            counts(g.firing, g.resolved)
        ));
    }
    if d.more_groups > 0 {
        t.push_str(&format!(
            "
… and {} more groups",
            d.more_groups
        ));
    }
    if d.incidents > 0 {
        t.push_str(&format!(
            "
🚨 {} incidents opened",
            d.incidents
        ));
    }
    t.push_str(if d.ended {
        "
Groups listed here get their own message again when they next change."
    } else {
        "
One message per group resumes when the channel is calm; every alert is stored."
    });
    t
}

/// An alert group's text: the headline, one line per listed alert (✓ when
/// resolved, severity, summary, who acknowledged it, the silence covering
/// it, links) and "and N more". `esc` escapes text for the platform,
/// `link(url, label)` writes a link.
pub fn alert_group_text(
    g: &crate::alerts::post::GroupView,
    esc: &dyn Fn(&str) -> String,
    link: &dyn Fn(&str, &str) -> String,
) -> String {
    let mut t = esc(&g.headline());
    for l in &g.lines {
        let mark = if l.resolved { "✓" } else { "•" };
        t.push_str(&format!("\n{mark} {}", esc(&l.name)));
        if let Some(s) = &l.severity {
            t.push_str(&format!(" [{}]", esc(s)));
        }
        if let Some(s) = &l.summary {
            t.push_str(&format!(": {}", esc(s)));
        }
        if l.resolved {
            t.push_str(" (resolved)");
        }
        if let Some(by) = &l.acknowledged_by {
            t.push_str(&format!(" 👀 acknowledged by {}", esc(by)));
        }
        if let Some((id, until)) = l.silenced {
            t.push_str(&format!(
                " 🔕 silenced by {} until {}",
                crate::alerts::silence::label(id),
                crate::clock::rfc3339(until)
            ));
        }
        let links: Vec<String> = [
            (&l.generator_url, "source"),
            (&l.dashboard_url, "dashboard"),
            (&l.silence_url, "silence"),
        ]
        .into_iter()
        .filter_map(|(u, label)| u.as_deref().filter(|u| is_web(u)).map(|u| link(u, label)))
        .collect();
        if !links.is_empty() {
            t.push_str(&format!(" · {}", links.join(" · ")));
        }
    }
    if g.more() > 0 {
        t.push_str(&format!("\n… and {} more", g.more()));
    }
    t
}

/// Only http(s) links are written as links.
fn is_web(u: &str) -> bool {
    u.starts_with("https://") || u.starts_with("http://")
}
