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
