//! Slack's size limits, enforced before a message is sent, so Slack never
//! rejects a message for its size (`msg_too_long`, `invalid_blocks`). Pure.
//!
//! - message `text` ≤ 40,000 characters: truncated with a marker;
//! - section `text` ≤ 3,000 characters: split into several sections (code
//!   fences are closed and reopened across the cut), so content is kept;
//! - section `fields` ≤ 10, each ≤ 2,000 characters; header text ≤ 150;
//! - ≤ 50 blocks: the first 49 are kept and a context block says how many
//!   were dropped.

use crate::chat::text::byte_at;
pub use crate::chat::text::truncate;
use serde_json::{json, Map, Value};

/// Maximum characters of a message's top-level `text`.
pub const MAX_TEXT_CHARS: usize = 40_000;
/// Maximum blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Maximum characters of a section block's `text`.
pub const MAX_SECTION_CHARS: usize = 3_000;
/// Maximum characters of one section field.
pub const MAX_FIELD_CHARS: usize = 2_000;
/// Maximum fields of one section block.
pub const MAX_FIELDS: usize = 10;
/// Maximum characters of a header block's text.
pub const MAX_HEADER_CHARS: usize = 150;

const FENCE: &str = "```";
/// Room for closing (`\n```) and reopening (```\n) a code fence in a chunk.
const FENCE_ROOM: usize = 8;

/// `body` with every limit above enforced. Bodies within limits come back
/// unchanged; anything that is not a JSON object is returned as is.
pub fn fit(mut body: Value) -> Value {
    if let Some(obj) = body.as_object_mut() {
        if let Some(Value::String(text)) = obj.get_mut("text") {
            truncate(text, MAX_TEXT_CHARS);
        }
        if let Some(Value::Array(blocks)) = obj.get_mut("blocks") {
            let split = split_sections(std::mem::take(blocks));
            *blocks = cap_blocks(split);
        }
    }
    body
}

fn split_sections(blocks: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(blocks.len());
    for mut block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("section") => {
                fit_fields(&mut block);
                out.extend(split_section(block));
            }
            Some("header") => {
                if let Some(Value::String(t)) = block.pointer_mut("/text/text") {
                    truncate(t, MAX_HEADER_CHARS);
                }
                out.push(block);
            }
            _ => out.push(block),
        }
    }
    out
}

fn fit_fields(section: &mut Value) {
    if let Some(Value::Array(fields)) = section.get_mut("fields") {
        fields.truncate(MAX_FIELDS);
        for f in fields.iter_mut() {
            if let Some(Value::String(t)) = f.get_mut("text") {
                truncate(t, MAX_FIELD_CHARS);
            }
        }
    }
}

/// One section whose text is too long becomes several: the first keeps the
/// block's other parts (accessory, fields, block_id), the rest carry only text.
fn split_section(section: Value) -> Vec<Value> {
    let Some(text) = section.pointer("/text/text").and_then(Value::as_str) else {
        return vec![section];
    };
    if text.chars().count() <= MAX_SECTION_CHARS {
        return vec![section];
    }
    let chunks = split_text(text, MAX_SECTION_CHARS);
    let text_obj = section.get("text").cloned().unwrap_or_else(|| json!({}));
    let mut out = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut t = text_obj.clone();
        t["text"] = Value::String(chunk);
        if i == 0 {
            let mut first = section.clone();
            first["text"] = t;
            out.push(first);
        } else {
            let mut rest = Map::new();
            rest.insert("type".into(), "section".into());
            rest.insert("text".into(), t);
            out.push(Value::Object(rest));
        }
    }
    out
}

/// Splits `s` into chunks of at most `max` characters, preferring line then
/// word boundaries; a code fence open at a cut is closed and reopened.
pub fn split_text(s: &str, max: usize) -> Vec<String> {
    let room = max.saturating_sub(FENCE_ROOM).max(1);
    let mut out = Vec::new();
    let mut rest = s;
    let mut reopen = false;
    while !rest.is_empty() {
        let cut = cut_point(rest, room);
        let (head, tail) = rest.split_at(cut);
        let mut chunk = if reopen {
            format!("{FENCE}\n{head}")
        } else {
            head.to_string()
        };
        let open = chunk.matches(FENCE).count() % 2 == 1;
        reopen = open && !tail.is_empty();
        if reopen {
            chunk.push('\n');
            chunk.push_str(FENCE);
        }
        out.push(chunk);
        rest = tail;
    }
    out
}

/// Where to cut `s` so the head has at most `max` characters: after the last
/// newline, else after the last space, if that keeps at least half; else hard.
fn cut_point(s: &str, max: usize) -> usize {
    let hard = byte_at(s, max);
    if hard == s.len() {
        return hard;
    }
    let window = &s[..hard];
    let half = hard / 2;
    for sep in ['\n', ' '] {
        if let Some(i) = window.rfind(sep) {
            if i >= half {
                return i + 1;
            }
        }
    }
    hard
}

fn cap_blocks(mut blocks: Vec<Value>) -> Vec<Value> {
    if blocks.len() <= MAX_BLOCKS {
        return blocks;
    }
    let dropped = blocks.len() - (MAX_BLOCKS - 1);
    blocks.truncate(MAX_BLOCKS - 1);
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("… {dropped} more blocks truncated")}],
    }));
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Value {
        json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    }

    fn section_texts(body: &Value) -> Vec<String> {
        body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "section")
            .map(|b| b["text"]["text"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn small_bodies_are_unchanged() {
        let body = json!({"text": "hi", "blocks": [section("hello"), {"type": "divider"}]});
        assert_eq!(fit(body.clone()), body);
        assert_eq!(fit(json!("not an object")), json!("not an object"));
    }

    #[test]
    fn long_text_is_truncated_with_a_marker() {
        let body = fit(json!({"text": "x".repeat(50_000)}));
        let t = body["text"].as_str().unwrap();
        assert_eq!(t.chars().count(), MAX_TEXT_CHARS);
        let cut = 50_000 - t.matches('x').count();
        assert!(
            t.ends_with(&format!("… [truncated {cut} chars]")),
            "{}",
            &t[t.len() - 40..]
        );
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        let mut s = "é".repeat(100);
        truncate(&mut s, 60);
        assert_eq!(s.chars().count(), 60);
        assert!(s.starts_with("éé"));
        let mut exact = "é".repeat(60);
        truncate(&mut exact, 60);
        assert_eq!(exact, "é".repeat(60));
    }

    #[test]
    fn long_sections_are_split_without_losing_content() {
        let lines: Vec<String> = (0..400).map(|i| format!("line {i:04} of the output")).collect();
        let text = lines.join("\n");
        let body = fit(json!({"blocks": [section(&text)]}));
        let parts = section_texts(&body);
        assert!(parts.len() >= 4, "{}", parts.len());
        for p in &parts {
            assert!(p.chars().count() <= MAX_SECTION_CHARS);
        }
        assert_eq!(parts.concat(), text, "cut at newlines, nothing lost");
        assert!(parts[0].ends_with('\n'), "prefers line boundaries");
    }

    #[test]
    fn the_first_part_keeps_accessory_and_block_id() {
        let mut s = section(&"word ".repeat(1_000));
        s["block_id"] = json!("b1");
        s["accessory"] = json!({"type": "button", "text": {"type": "plain_text", "text": "Go"}});
        let body = fit(json!({"blocks": [s]}));
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["block_id"], "b1");
        assert!(blocks[0].get("accessory").is_some());
        assert!(blocks[1].get("block_id").is_none() && blocks[1].get("accessory").is_none());
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    }

    #[test]
    fn code_fences_are_closed_and_reopened_across_a_cut() {
        let text = format!("Output:\n```\n{}```", "0123456789 ".repeat(600));
        let parts = split_text(&text, MAX_SECTION_CHARS);
        assert!(parts.len() >= 3);
        for p in &parts {
            assert!(p.chars().count() <= MAX_SECTION_CHARS);
            assert_eq!(p.matches(FENCE).count() % 2, 0, "balanced: {p:.40}");
        }
        assert!(parts[1].starts_with("```\n"));
    }

    #[test]
    fn unbreakable_text_is_cut_hard() {
        let parts = split_text(&"x".repeat(7_000), MAX_SECTION_CHARS);
        assert_eq!(parts.concat(), "x".repeat(7_000));
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_SECTION_CHARS));
    }

    #[test]
    fn too_many_blocks_keep_49_and_say_how_many_were_dropped() {
        let blocks: Vec<Value> = (0..60).map(|i| section(&format!("s{i}"))).collect();
        let body = fit(json!({"text": "t", "blocks": blocks}));
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert_eq!(blocks[48]["text"]["text"], "s48");
        assert_eq!(blocks[49]["type"], "context");
        assert_eq!(blocks[49]["elements"][0]["text"], "… 11 more blocks truncated");
    }

    #[test]
    fn splitting_that_overflows_the_block_cap_is_capped() {
        let blocks: Vec<Value> = (0..30).map(|_| section(&"y".repeat(9_000))).collect();
        let body = fit(json!({"blocks": blocks}));
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert!(blocks[49]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("more blocks truncated"));
    }

    #[test]
    fn fields_and_headers_are_fitted() {
        let fields: Vec<Value> = (0..12)
            .map(|_| json!({"type": "mrkdwn", "text": "f".repeat(2_500)}))
            .collect();
        let body = fit(json!({"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "h".repeat(200)}},
            {"type": "section", "fields": fields},
        ]}));
        assert_eq!(
            body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            MAX_HEADER_CHARS
        );
        let fields = body["blocks"][1]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), MAX_FIELDS);
        assert!(fields
            .iter()
            .all(|f| f["text"].as_str().unwrap().chars().count() <= MAX_FIELD_CHARS));
    }
}
