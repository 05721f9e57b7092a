//! Which language variant of a template a recipient gets, from their directory
//! `preferredLanguage` (an ISO 639-1 code with an optional region, `de-DE`; see
//! <https://learn.microsoft.com/graph/api/resources/user#properties>).

/// The language every template has, used when nothing closer exists.
pub const FALLBACK: &str = "en";

/// The variant of `available` for `wanted`: the exact tag (case-insensitive, `_` read as `-`),
/// then its primary language (`de-DE` → `de`), then [`FALLBACK`], then the first available.
pub fn choose<'a>(wanted: Option<&str>, available: &'a [String]) -> Option<&'a str> {
    let find = |tag: &str| {
        available
            .iter()
            .find(|a| a.eq_ignore_ascii_case(tag))
            .map(String::as_str)
    };
    let wanted = wanted.map(|w| w.trim().replace('_', "-"));
    let exact = wanted.as_deref().and_then(find);
    let primary = || {
        wanted
            .as_deref()
            .and_then(|w| w.split('-').next())
            .and_then(find)
    };
    exact
        .or_else(primary)
        .or_else(|| find(FALLBACK))
        .or_else(|| available.first().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_then_language_then_english() {
        let langs = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let both = langs(&["de", "en"]);
        assert_eq!(choose(Some("de-DE"), &both), Some("de"));
        assert_eq!(choose(Some("de_AT"), &both), Some("de"));
        assert_eq!(choose(Some("DE"), &both), Some("de"));
        assert_eq!(choose(Some("fr-FR"), &both), Some("en"));
        assert_eq!(choose(None, &both), Some("en"));
        assert_eq!(choose(Some(""), &both), Some("en"));
        let regional = langs(&["de", "de-CH", "en"]);
        assert_eq!(choose(Some("de-ch"), &regional), Some("de-CH"));
        assert_eq!(choose(Some("de-DE"), &regional), Some("de"));
        assert_eq!(choose(Some("fr"), &langs(&["nl"])), Some("nl"));
        assert_eq!(choose(Some("fr"), &[]), None);
    }
}
