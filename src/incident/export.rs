//! PURE: an incident and its timeline as a postmortem skeleton (Markdown)
//! or JSON (`opsbot incident export <id> [--format md|json]`).

use super::{Event, Incident, Role};
use crate::clock::rfc3339;
use serde_json::{json, Value};

/// A Markdown postmortem skeleton: summary, roles, timeline, follow-ups, and
/// the sections a review fills in.
pub fn markdown(inc: &Incident, events: &[Event]) -> String {
    let mut out = format!("# Incident {} — {} {}\n\n", inc.label(), inc.level, inc.title);
    let line = |k: &str, v: String| format!("- **{k}:** {v}\n");
    out.push_str(&line("System", inc.profile.clone()));
    out.push_str(&line("State", inc.state.as_str().into()));
    out.push_str(&line(
        "Declared",
        format!("{} by {}", rfc3339(inc.declared_at), inc.declared_by),
    ));
    if let (Some(at), Some(by)) = (inc.acked_at, &inc.acked_by) {
        out.push_str(&line(
            "Acknowledged",
            format!(
                "{} by {by} (after {})",
                rfc3339(at),
                super::ago(at, inc.declared_at)
            ),
        ));
    }
    if let (Some(at), Some(by)) = (inc.resolved_at, &inc.resolved_by) {
        out.push_str(&line(
            "Resolved",
            format!(
                "{} by {by} (after {})",
                rfc3339(at),
                super::ago(at, inc.declared_at)
            ),
        ));
    }
    for r in Role::ALL {
        if let Some(p) = inc.role(r) {
            out.push_str(&line(r.as_str(), p.to_string()));
        }
    }
    if let Some(s) = &inc.summary {
        out.push_str(&format!("\n## Summary\n\n{s}\n"));
    }
    out.push_str("\n## Timeline\n\n| time (UTC) | what | who | detail |\n|---|---|---|---|\n");
    for e in events {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            rfc3339(e.at),
            e.kind,
            cell(&e.person),
            cell(&e.text)
        ));
    }
    out.push_str("\n## Follow-ups\n\n");
    let followups: Vec<&Event> = events.iter().filter(|e| e.kind == "followup").collect();
    if followups.is_empty() {
        out.push_str("- (none recorded)\n");
    }
    for f in followups {
        out.push_str(&format!("- [ ] {} ({})\n", f.text, f.person));
    }
    out.push_str("\n## Impact\n\n_To be written._\n\n## Root cause\n\n_To be written._\n\n## What went well / what did not\n\n_To be written._\n");
    out
}

/// Table cells: one line, no column breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

/// The incident and its timeline as JSON.
pub fn json(inc: &Incident, events: &[Event]) -> Value {
    json!({
        "id": inc.id,
        "profile": inc.profile,
        "level": inc.level,
        "title": inc.title,
        "state": inc.state.as_str(),
        "declared_at": rfc3339(inc.declared_at),
        "declared_by": inc.declared_by,
        "acked_at": inc.acked_at.map(rfc3339),
        "acked_by": inc.acked_by,
        "resolved_at": inc.resolved_at.map(rfc3339),
        "resolved_by": inc.resolved_by,
        "summary": inc.summary,
        "commander": inc.role(Role::Commander),
        "comms": inc.comms,
        "scribe": inc.scribe,
        "timeline": events.iter().map(|e| json!({
            "at": rfc3339(e.at), "kind": e.kind, "person": e.person, "text": e.text,
        })).collect::<Vec<_>>(),
        "followups": events.iter().filter(|e| e.kind == "followup").map(|e| &e.text).collect::<Vec<_>>(),
    })
}
