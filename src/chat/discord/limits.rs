//! Discord's size limits, enforced before a message is sent, so Discord never
//! refuses one for its size (a 400 that would count toward its invalid-request
//! ban). Pure.
//!
//! - `content` ≤ 2,000 characters; embeds ≤ 10 per message;
//! - embed title ≤ 256, description ≤ 4,096, ≤ 25 fields, field name ≤ 256
//!   and value ≤ 1,024, footer ≤ 2,048, and ≤ 6,000 characters over all embeds;
//! - button labels ≤ 80, `custom_id` ≤ 100.
//!
//! Text that is too long is cut with a visible marker (`… [truncated N
//! chars]`), closing a code block the cut left open.

use crate::chat::text::truncate;
use serde_json::Value;

pub const MAX_CONTENT: usize = 2_000;
pub const MAX_EMBEDS: usize = 10;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4_096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1_024;
pub const MAX_FOOTER: usize = 2_048;
pub const MAX_EMBED_TOTAL: usize = 6_000;
pub const MAX_LABEL: usize = 80;
pub const MAX_CUSTOM_ID: usize = 100;

const FENCE: &str = "```";

/// `body` with every limit above enforced. Bodies within limits come back
/// unchanged; anything that is not a JSON object is returned as is.
pub fn fit(mut body: Value) -> Value {
    let Some(obj) = body.as_object_mut() else {
        return body;
    };
    if let Some(Value::String(c)) = obj.get_mut("content") {
        cut(c, MAX_CONTENT);
    }
    if let Some(Value::Array(embeds)) = obj.get_mut("embeds") {
        embeds.truncate(MAX_EMBEDS);
        embeds.iter_mut().for_each(fit_embed);
        fit_total(embeds);
    }
    if let Some(Value::Array(rows)) = obj.get_mut("components") {
        for c in rows
            .iter_mut()
            .flat_map(|r| r["components"].as_array_mut().into_iter().flatten())
        {
            cut_at(c, "label", MAX_LABEL);
            if let Some(Value::String(id)) = c.get_mut("custom_id") {
                // Ours are short (`approve:a12`); never send one Discord refuses.
                id.truncate(crate::chat::text::byte_at(id, MAX_CUSTOM_ID));
            }
        }
    }
    body
}

/// Cuts `s` to `max` characters with a marker, closing an open code block.
pub fn cut(s: &mut String, max: usize) {
    if s.chars().count() <= max {
        return;
    }
    let room = FENCE.len() + 1;
    truncate(s, max.saturating_sub(room));
    if s.matches(FENCE).count() % 2 == 1 {
        s.push('\n');
        s.push_str(FENCE);
    }
}

fn cut_at(v: &mut Value, key: &str, max: usize) {
    if let Some(Value::String(s)) = v.get_mut(key) {
        cut(s, max);
    }
}

fn fit_embed(e: &mut Value) {
    cut_at(e, "title", MAX_TITLE);
    cut_at(e, "description", MAX_DESCRIPTION);
    if let Some(footer) = e.get_mut("footer") {
        cut_at(footer, "text", MAX_FOOTER);
    }
    if let Some(Value::Array(fields)) = e.get_mut("fields") {
        fields.truncate(MAX_FIELDS);
        for f in fields {
            cut_at(f, "name", MAX_FIELD_NAME);
            cut_at(f, "value", MAX_FIELD_VALUE);
        }
    }
}

/// The embeds' text, as Discord counts it against [`MAX_EMBED_TOTAL`].
fn texts(e: &mut Value) -> Vec<&mut String> {
    let mut out = Vec::new();
    let Some(obj) = e.as_object_mut() else {
        return out;
    };
    for (k, v) in obj.iter_mut() {
        match (k.as_str(), v) {
            ("title" | "description", Value::String(s)) => out.push(s),
            ("footer" | "author", Value::Object(o)) => out.extend(
                o.iter_mut()
                    .filter(|(k, _)| *k == "text" || *k == "name")
                    .filter_map(|(_, v)| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    }),
            ),
            ("fields", Value::Array(fields)) => {
                for f in fields.iter_mut().filter_map(Value::as_object_mut) {
                    out.extend(
                        f.iter_mut()
                            .filter(|(k, _)| *k == "name" || *k == "value")
                            .filter_map(|(_, v)| match v {
                                Value::String(s) => Some(s),
                                _ => None,
                            }),
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// Cuts the longest texts until all embeds together fit.
fn fit_total(embeds: &mut [Value]) {
    loop {
        let mut all: Vec<&mut String> = embeds.iter_mut().flat_map(texts).collect();
        let total: usize = all.iter().map(|s| s.chars().count()).sum();
        if total <= MAX_EMBED_TOTAL {
            return;
        }
        let Some(longest) = all.iter_mut().max_by_key(|s| s.chars().count()) else {
            return;
        };
        let len = longest.chars().count();
        if len <= 64 {
            return; // nothing left worth cutting
        }
        let target = len.saturating_sub(total - MAX_EMBED_TOTAL).max(64);
        cut(longest, target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chars(v: &Value) -> usize {
        v.as_str().map_or(0, |s| s.chars().count())
    }

    #[test]
    fn bodies_within_limits_are_unchanged() {
        let b = json!({"content": "hi", "embeds": [{"title": "t", "fields": [{"name": "n", "value": "v"}]}],
                       "components": [{"type": 1, "components": [{"type": 2, "label": "Approve", "custom_id": "approve:a1"}]}]});
        assert_eq!(fit(b.clone()), b);
        assert_eq!(fit(json!("x")), json!("x"));
    }

    #[test]
    fn long_content_is_cut_with_a_marker_and_closed_code_block() {
        let long = format!("✅ ok\n```\n{}\n```", "x".repeat(5_000));
        let b = fit(json!({ "content": long }));
        let c = b["content"].as_str().unwrap();
        assert!(c.chars().count() <= MAX_CONTENT, "{}", c.chars().count());
        assert!(c.contains("[truncated"), "{c}");
        assert!(c.ends_with("\n```"), "the code block is closed");
        assert_eq!(c.matches(FENCE).count() % 2, 0);
    }

    #[test]
    fn embeds_fit_each_limit_and_the_total() {
        let field = |i: usize| json!({"name": format!("f{i}"), "value": "v".repeat(2_000)});
        let b = fit(json!({"embeds": [{
            "title": "t".repeat(300),
            "description": "d".repeat(5_000),
            "fields": (0..30).map(field).collect::<Vec<_>>(),
            "footer": {"text": "f".repeat(3_000)},
        }]}));
        let e = &b["embeds"][0];
        assert!(chars(&e["title"]) <= MAX_TITLE);
        assert!(chars(&e["description"]) <= MAX_DESCRIPTION);
        assert_eq!(e["fields"].as_array().unwrap().len(), MAX_FIELDS);
        assert!(e["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| chars(&f["value"]) <= MAX_FIELD_VALUE));
        let mut e = e.clone();
        let total: usize = texts(&mut e).iter().map(|s| s.chars().count()).sum();
        assert!(total <= MAX_EMBED_TOTAL, "{total}");
        let many = fit(json!({"embeds": vec![json!({"title": "t"}); 12]}));
        assert_eq!(many["embeds"].as_array().unwrap().len(), MAX_EMBEDS);
    }

    #[test]
    fn buttons_keep_within_limits() {
        let b = fit(json!({"components": [{"type": 1, "components": [
            {"type": 2, "label": "L".repeat(100), "custom_id": "c".repeat(150)}]}]}));
        let button = &b["components"][0]["components"][0];
        assert!(chars(&button["label"]) <= MAX_LABEL);
        assert_eq!(chars(&button["custom_id"]), MAX_CUSTOM_ID);
    }
}
