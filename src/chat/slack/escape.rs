//! Slack mrkdwn escaping. Pure. Every dynamic string opsbot posts (target
//! responses, args, user text, health messages, reasons, names) goes through
//! here, so no text can become a mention (`<!channel>`, `<@U…>`), a link
//! (`<https://…|label>`), formatting, or break out of the code block it is
//! shown in.
//!
//! - [`text`]: Slack's own escaping: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`.
//!   For URLs, ids and fallback text; shown text uses [`literal`].
//! - [`literal`]: [`text`], and mrkdwn's formatting characters made literal,
//!   for dynamic text shown outside code (alert names, label values,
//!   summaries, names, reasons, comments). Slack has no backslash escape, so
//!   a formatting character is replaced by a lookalike: `*` → `∗` (U+2217),
//!   `~` → `∼` (U+223C), `` ` `` → `ˋ` (U+02CB), `_` → `ˍ` (U+02CD). Slack only
//!   formats at word boundaries (`disk_usage_high` shows as typed), so an
//!   `_` between two ASCII letters or digits is kept: identifiers, the values
//!   most often copied into a command, copy as they are. A `>` starting a
//!   line (a quote) gets an invisible soft hyphen (U+00AD) before it.
//!   Not a zero-width space around the character: Slack takes U+200B as a
//!   word boundary, so `x\u{200B}*\u{200B}y\u{200B}*\u{200B}z` *is* bold (the
//!   trick libraries use to force formatting inside a word).
//! - [`outside_code`]: for opsbot's own sentences with dynamic parts (replies):
//!   their `code spans` are kept (escaped with [`text`]), the rest is
//!   [`literal`]. An unpaired backtick is a lookalike.
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

/// Soft hyphen: invisible; keeps a `>` at the start of a line from quoting.
const SOFT_HYPHEN: char = '\u{AD}';

/// `s` escaped for mrkdwn: `&`, `<` and `>` as entities.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_text(&mut out, c);
    }
    out
}

fn push_text(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// The lookalike shown for a mrkdwn formatting character.
fn lookalike(c: char) -> Option<char> {
    match c {
        '*' => Some('∗'),
        '_' => Some('ˍ'),
        '~' => Some('∼'),
        '`' => Some('ˋ'),
        _ => None,
    }
}

/// `s` escaped for mrkdwn and shown as typed: no formatting, mention, link
/// or quote (see the module docs).
pub fn literal(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let word = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(char::is_ascii_alphanumeric)
    };
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let intraword = c == '_' && word(i.checked_sub(1)) && word(Some(i + 1));
        match lookalike(c) {
            Some(l) if !intraword => out.push(l),
            _ => {
                if c == '>' && (i == 0 || chars[i - 1] == '\n') {
                    out.push(SOFT_HYPHEN);
                }
                push_text(&mut out, c);
            }
        }
    }
    out
}

/// Opsbot's own text with dynamic parts: `code spans` kept, the rest
/// [`literal`].
pub fn outside_code(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    // An odd number of backticks: the last one opens no span.
    let paired = parts.len() % 2 == 1;
    let mut out = String::with_capacity(s.len() + 8);
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if i % 2 == 1 && (paired || !last) {
            out.push_str(&text(part));
        } else {
            out.push_str(&literal(part));
        }
        if !last {
            let unpaired = !paired && i + 2 == parts.len();
            out.push(if unpaired { 'ˋ' } else { '`' });
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

/// What the user typed, from Slack's escaped slash-command text: `&lt;` →
/// `<`, `&gt;` → `>`, `&amp;` → `&`, in one pass (`&amp;lt;` is `&lt;`, not
/// `<`; other `&` sequences stay), and what [`literal`] and [`code_block`]
/// put into text a person may copy back into a command undone: the
/// lookalikes become the characters they stand for (`∗` → `*`, `ˍ` → `_`,
/// `∼` → `~`, `ˋ` → `` ` ``) and the invisible U+200B and U+00AD are dropped,
/// so an alert name or a label value copied from opsbot's message matches.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let (c, len) = match c {
            '&' if rest.starts_with("&amp;") => (Some('&'), 5),
            '&' if rest.starts_with("&lt;") => (Some('<'), 4),
            '&' if rest.starts_with("&gt;") => (Some('>'), 4),
            ZWSP | SOFT_HYPHEN => (None, c.len_utf8()),
            c => (Some(unlookalike(c)), c.len_utf8()),
        };
        out.extend(c);
        rest = &rest[len..];
    }
    out
}

/// The formatting character a lookalike stands for (the reverse of
/// [`lookalike`]).
fn unlookalike(c: char) -> char {
    match c {
        '∗' => '*',
        'ˍ' => '_',
        '∼' => '~',
        'ˋ' => '`',
        c => c,
    }
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
    fn formatting_characters_in_dynamic_text_are_shown_as_typed() {
        assert_eq!(literal("*x* _y_ ~z~ `w`"), "∗x∗ ˍyˍ ∼z∼ ˋwˋ");
        assert_eq!(
            literal("<!channel> & <@U1>"),
            "&lt;!channel&gt; &amp; &lt;@U1&gt;"
        );
        // Identifiers copy as they are: Slack does not format inside words.
        assert_eq!(literal("disk_usage_high job_2"), "disk_usage_high job_2");
        // At a word's edge, next to punctuation or another marker, it could.
        assert_eq!(literal("_prod_ a__b x_ (_y_)"), "ˍprodˍ aˍˍb xˍ (ˍyˍ)");
        assert_eq!(literal("a*b*c a~b"), "a∗b∗c a∼b");
        // Zero-width spaces are boundaries to Slack, not letters.
        assert_eq!(literal("a\u{200B}_b"), "a\u{200B}ˍb");
        // No quotes: a `>` starting a line gets an invisible soft hyphen.
        assert_eq!(literal("> a\n> b c > d"), "\u{AD}&gt; a\n\u{AD}&gt; b c &gt; d");
        assert_eq!(literal("ünï plain"), "ünï plain");
        for evil in ["*x*", "_y_", "~z~", "`v`", "*_~`"] {
            let out = literal(evil);
            assert!(!out.contains(['*', '_', '~', '`']), "{evil:?} → {out:?}");
        }
    }

    #[test]
    fn outside_code_keeps_opsbots_code_spans() {
        assert_eq!(
            outside_code("`/alerts silence *x*` failed: *prod* <!here>"),
            "`/alerts silence *x*` failed: ∗prod∗ &lt;!here&gt;"
        );
        assert_eq!(outside_code("`a<b>` _c_ `d`"), "`a&lt;b&gt;` ˍcˍ `d`");
        // An unpaired backtick opens nothing.
        assert_eq!(outside_code("`ok` it`s *x*"), "`ok` itˋs ∗x∗");
        assert_eq!(outside_code("one ` two"), "one ˋ two");
        assert_eq!(outside_code("plain"), "plain");
        assert_eq!(outside_code(""), "");
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

    #[test]
    fn text_copied_from_opsbot_s_messages_reads_back_as_it_was() {
        // What a person sees in a message and pastes back into a command.
        for typed in [
            "name=~\"_disk.*\"",
            "a*b _c_ ~d~ `e`",
            "> quoted\n> twice",
            "disk_usage_high",
        ] {
            assert_eq!(unescape(&literal(typed)), typed, "{typed:?}");
            assert_eq!(unescape(&outside_code(typed)), typed, "{typed:?}");
        }
        let block = code_block("a```b``");
        assert_eq!(unescape(&block[3..block.len() - 3]), "a```b``");
        assert_eq!(unescape("x\u{200B}y\u{AD}z ∗ ˍ ∼ ˋ"), "xyz * _ ~ `");
    }
}
