//! Did-you-mean: the nearest candidate within a few edits (`strsim`).

/// Edit distance from `input` to `candidate` (case-insensitive, transpositions
/// count as one edit) when it is small enough to look like a typo; a candidate
/// that starts with a 3+ character input counts as one edit away.
pub(crate) fn distance(input: &str, candidate: &str) -> Option<usize> {
    let input = input.to_lowercase();
    let candidate = candidate.to_lowercase();
    let len = input.chars().count();
    let limit = (len / 3).clamp(1, 3);
    // Optimal string alignment: adjacent transpositions count as one edit,
    // without the per-call alphabet map of full Damerau-Levenshtein.
    let mut d = strsim::osa_distance(&input, &candidate);
    if len >= 3 && candidate.starts_with(&input) {
        d = d.min(1);
    }
    (d <= limit && d < candidate.chars().count()).then_some(d)
}

/// The candidate nearest to `input`, if any is close enough; ties go to the
/// earlier candidate.
pub(crate) fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if let Some(d) = distance(input, c) {
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos() {
        let subs = ["stats", "pause", "resume", "clean", "retry"];
        assert_eq!(closest("retyr", subs), Some("retry"));
        assert_eq!(closest("PAUSE", subs), Some("pause"));
        assert_eq!(closest("res", subs), Some("resume"));
        assert_eq!(closest("frobnicate", subs), None);
        assert_eq!(closest("", subs), None);
        assert_eq!(closest("x", ["y"]), None);
    }
}
