//! Splitting chat text into words: whitespace-separated, with "double" and
//! 'single' quotes (and the smart quotes Slack substitutes for them).
//!
//! A quote only opens at the start of a word or right after `=` in a
//! `--key=` word, so apostrophes inside words (`don't`, `don’t`) stay literal.

use super::UsageError;

/// One word of the input, quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// The word with quotes removed and escapes resolved.
    pub text: String,
    /// Starts with an unquoted `--`: a flag, not a value.
    pub flag: bool,
}

impl Token {
    /// `--name` → (`name`, None); `--name=value` → (`name`, Some(`value`)).
    pub fn flag_parts(&self) -> Option<(&str, Option<&str>)> {
        if !self.flag {
            return None;
        }
        let body = self.text.get(2..).unwrap_or_default();
        Some(match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        })
    }
}

const DOUBLE: [char; 4] = ['"', '“', '”', '„'];
const SINGLE: [char; 3] = ['\'', '‘', '’'];

/// `"` or one of its typographic variants.
pub(crate) fn is_double_quote(c: char) -> bool {
    DOUBLE.contains(&c)
}

/// Any character the tokenizer may treat as a quote.
pub(crate) fn is_quote(c: char) -> bool {
    is_double_quote(c) || SINGLE.contains(&c)
}

/// Splits `text` into words. Fails only on an unterminated quote.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, UsageError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(tokens);
        }
        tokens.push(word(&mut chars)?);
    }
}

/// Reads one word, up to unquoted whitespace.
fn word(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Token, UsageError> {
    let mut text = String::new();
    let mut quoted = false;
    let mut flag = false;
    while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
        let may_open = !quoted && (text.is_empty() || (flag && text.ends_with('=')));
        if may_open && is_quote(c) {
            quoted = true;
            quoted_part(c, chars, &mut text)?;
            continue;
        }
        text.push(c);
        if !quoted && text == "--" {
            flag = true;
        }
    }
    Ok(Token { text, flag })
}

/// Reads up to the closing quote of the class of `open`, resolving `\"` and
/// `\\` inside double quotes.
fn quoted_part(
    open: char,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
) -> Result<(), UsageError> {
    let double = is_double_quote(open);
    let closes = |c: char| {
        if double {
            is_double_quote(c)
        } else {
            SINGLE.contains(&c)
        }
    };
    while let Some(c) = chars.next() {
        if double && c == '\\' {
            match chars.next_if(|n| *n == '\\' || is_double_quote(*n)) {
                Some(escaped) => out.push(escaped),
                None => out.push(c),
            }
        } else if closes(c) {
            return Ok(());
        } else {
            out.push(c);
        }
    }
    Err(UsageError::new(format!(
        "The quote `{open}` is never closed. Close it, or leave it out if you meant a literal quote."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        tokenize(s).unwrap().into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn splits_on_whitespace_and_quotes() {
        assert_eq!(words("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(words(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
        assert_eq!(words(r#""say \"hi\" \\ \n""#), [r#"say "hi" \ \n"#]);
        assert_eq!(words("“smart quotes” ‘too’"), ["smart quotes", "too"]);
        assert_eq!(words(r#""""#), [""]);
        assert_eq!(words("don't don’t"), ["don't", "don’t"]);
    }

    #[test]
    fn flags_keep_their_values() {
        let t = tokenize(r#"--grace=1h --note="a b" "--not-a-flag" -x"#).unwrap();
        assert_eq!(t[0].flag_parts(), Some(("grace", Some("1h"))));
        assert_eq!(t[1].flag_parts(), Some(("note", Some("a b"))));
        assert_eq!(t[2].flag_parts(), None);
        assert_eq!(t[3].flag_parts(), None);
        assert_eq!(tokenize("--").unwrap()[0].flag_parts(), Some(("", None)));
    }

    #[test]
    fn unterminated_quotes_are_refused() {
        for bad in [r#"""#, r#"a "b c"#, "'x", "“open", r#""ends with escape\""#] {
            assert!(tokenize(bad).is_err(), "{bad}");
        }
    }
}
