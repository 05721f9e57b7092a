//! UPN glob patterns for `exclude.upn_patterns` (`svc-*@contoso.com`): `*` matches any run of
//! characters, `?` exactly one; everything else matches itself, ignoring case.

/// A validated UPN glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpnPattern {
    /// The pattern, lower-cased.
    glob: Vec<char>,
    /// The pattern as written, for plans and reports.
    text: String,
}

impl UpnPattern {
    /// A pattern from its text; `None` when it is empty or contains whitespace.
    pub fn new(text: &str) -> Option<UpnPattern> {
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return None;
        }
        Some(UpnPattern {
            glob: text.to_lowercase().chars().collect(),
            text: text.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches every UPN (only `*`s).
    pub fn matches_everything(&self) -> bool {
        self.glob.iter().all(|&c| c == '*')
    }

    /// Whether `upn` matches, ignoring case.
    pub fn matches(&self, upn: &str) -> bool {
        let s: Vec<char> = upn.to_lowercase().chars().collect();
        // Iterative glob matching with single-star backtracking: linear in practice.
        let (mut p, mut i) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while i < s.len() {
            if p < self.glob.len() && (self.glob[p] == '?' || self.glob[p] == s[i]) {
                p += 1;
                i += 1;
            } else if p < self.glob.len() && self.glob[p] == '*' {
                star = Some((p, i));
                p += 1;
            } else if let Some((sp, si)) = star {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            } else {
                return false;
            }
        }
        self.glob[p..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_case_insensitively() {
        let p = UpnPattern::new("svc-*@contoso.com").unwrap();
        assert!(p.matches("svc-backup@contoso.com"));
        assert!(p.matches("SVC-@Contoso.com"));
        assert!(!p.matches("svc-backup@contoso.com.evil"));
        assert!(!p.matches("ann@contoso.com"));
        let q = UpnPattern::new("a?c*@*.com").unwrap();
        assert!(q.matches("abc@x.com"));
        assert!(q.matches("abcdef@x.y.com"));
        assert!(!q.matches("ac@x.com"));
        assert!(UpnPattern::new("**").unwrap().matches_everything());
        assert!(!p.matches_everything());
        assert!(UpnPattern::new("a b").is_none());
        assert!(UpnPattern::new("").is_none());
    }
}
