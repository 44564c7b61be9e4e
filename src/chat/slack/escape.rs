//! Slack mrkdwn escaping. Pure. Every dynamic string opsbot posts (target
//! responses, args, user text, health messages, reasons, names) goes through
//! here, so no text can become a mention (`<!channel>`, `<@U…>`), a link
//! (`<https://…|label>`) or break out of the code block it is shown in.
//!
//! - [`text`]: Slack's own escaping: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`.
//! - [`code_block`]: escaped, then fenced with three backticks. A backtick
//!   next to another backtick, or at either end of the content, gets a
//!   zero-width space (U+200B) beside it, so no run of backticks in the
//!   content can close (or lengthen) the fence. It looks the same; a copy of
//!   the text carries the invisible U+200B.
//! - [`code`]: inline code; backticks become the lookalike `ˋ` (U+02CB),
//!   since a single backtick would end it.
//! - [`unescape`]: the reverse of [`text`], for incoming slash-command text.

/// Zero-width space: keeps adjacent backticks from forming a fence.
const ZWSP: char = '\u{200B}';

/// `s` escaped for mrkdwn: `&`, `<` and `>` as entities.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` escaped and fenced as a code block it cannot break out of.
pub fn code_block(s: &str) -> String {
    let escaped = text(s);
    let mut out = String::with_capacity(escaped.len() + 8);
    out.push_str("```");
    let mut prev: Option<char> = None;
    for c in escaped.chars() {
        // Before the content's first backtick (it would extend the opening
        // fence) and between two backticks.
        if c == '`' && prev.is_none_or(|p| p == '`') {
            out.push(ZWSP);
        }
        out.push(c);
        prev = Some(c);
    }
    if prev == Some('`') {
        out.push(ZWSP);
    }
    out.push_str("```");
    out
}

/// `s` escaped as inline code (`` `s` ``).
pub fn code(s: &str) -> String {
    format!("`{}`", text(s).replace('`', "ˋ"))
}

/// Slack's escaping undone: `&lt;` → `<`, `&gt;` → `>`, `&amp;` → `&`, in
/// one pass (`&amp;lt;` is `&lt;`, not `<`). Other `&` sequences stay.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (c, len) = if rest.starts_with("&amp;") {
            ('&', 5)
        } else if rest.starts_with("&lt;") {
            ('<', 4)
        } else if rest.starts_with("&gt;") {
            ('>', 4)
        } else {
            ('&', 1)
        };
        out.push(c);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_and_links_become_text() {
        assert_eq!(
            text("<!channel> <https://evil.example|runbook> & <@U1>"),
            "&lt;!channel&gt; &lt;https://evil.example|runbook&gt; &amp; &lt;@U1&gt;"
        );
        assert_eq!(text("plain *bold* `code`"), "plain *bold* `code`");
        // Already-escaped text is escaped again: it is shown as typed.
        assert_eq!(text("&lt;"), "&amp;lt;");
    }

    #[test]
    fn code_blocks_cannot_be_closed_from_inside() {
        let b = code_block("a```b\n<!here>");
        assert_eq!(b, "```a`\u{200B}`\u{200B}`b\n&lt;!here&gt;```");
        // The only runs of three backticks are the fences.
        assert_eq!(b.matches("```").count(), 2);
        for evil in ["```", "`", "``x``", "x`", "`x", "````````"] {
            let b = code_block(evil);
            let inner = &b[3..b.len() - 3];
            assert!(!inner.contains("``"), "{evil:?} → {b:?}");
            assert!(
                !inner.starts_with('`') && !inner.ends_with('`'),
                "{evil:?} → {b:?}"
            );
        }
        assert_eq!(code_block("ok"), "```ok```");
    }

    #[test]
    fn inline_code_keeps_one_span() {
        assert_eq!(code("a`b <x>"), "`aˋb &lt;x&gt;`");
    }

    #[test]
    fn unescape_reverses_slacks_escaping_once() {
        assert_eq!(unescape("a &lt;b&gt; &amp; c"), "a <b> & c");
        assert_eq!(unescape("&amp;lt;"), "&lt;");
        assert_eq!(unescape("AT&T &x; &"), "AT&T &x; &");
        assert_eq!(unescape(&text("<x> & y")), "<x> & y");
        assert_eq!(unescape("ünï &gt;"), "ünï >");
    }
}
