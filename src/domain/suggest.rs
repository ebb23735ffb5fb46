//! Did-you-mean: the closest of a set of known names to one that was not
//! found, for messages that suggest the fix ("did you mean `crm-lookup`?").
//! One rule for every kind of name — references, fields, tenants — so
//! front ends only render the suggestion.

/// The candidate closest to `wanted`, if one is close enough to be a
/// likely typo: a normalised Damerau–Levenshtein similarity of at least
/// 0.6, or `wanted` being a prefix of it. Ties go to the first in order.
pub fn closest<'a, I>(wanted: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(&'a str, f64)> = None;
    for c in candidates {
        if c == wanted {
            continue;
        }
        let score = if c.starts_with(wanted) && wanted.len() >= 3 {
            0.9_f64.max(strsim::normalized_damerau_levenshtein(wanted, c))
        } else {
            strsim::normalized_damerau_levenshtein(wanted, c)
        };
        if score >= 0.6 && best.is_none_or(|(_, b)| score > b) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}

/// `did you mean `NAME`?` for the closest candidate, if any.
pub fn did_you_mean<'a, I>(wanted: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(wanted, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_name_and_strangers_find_nothing() {
        let names = ["crm-lookup", "refund-bot", "support-bot"];
        assert_eq!(closest("crm-lokup", names), Some("crm-lookup"));
        assert_eq!(closest("refundbot", names), Some("refund-bot"));
        assert_eq!(closest("suport-bot", names), Some("support-bot"));
        assert_eq!(closest("billing", names), None);
        assert_eq!(closest("crm-lookup", names), None);
        assert_eq!(
            did_you_mean("instructons", ["description", "instructions"]).as_deref(),
            Some("did you mean `instructions`?")
        );
    }
}
