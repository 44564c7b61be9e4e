//! Text helpers every platform's renderer and limits share. Pure.

/// Cuts `s` to at most `max` characters, ending with a marker that says how
/// many were cut.
pub fn truncate(s: &mut String, max: usize) {
    let total = s.chars().count();
    if total <= max {
        return;
    }
    let mut keep = max;
    let mut mark = String::new();
    while keep > 0 {
        mark = marker(total - keep);
        if keep + mark.chars().count() <= max {
            break;
        }
        keep -= 1;
    }
    s.truncate(byte_at(s, keep));
    s.push_str(&mark);
    if s.chars().count() > max {
        // `max` is smaller than the marker itself: keep what fits of it.
        s.truncate(byte_at(s, max));
    }
}

fn marker(cut: usize) -> String {
    format!("\n… [truncated {cut} chars]")
}

/// Byte index of the `n`th character of `s` (or its end).
pub fn byte_at(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}
