//! Scenario injects: what goes wrong on purpose in an exercise (`--inject SPEC`), so the
//! report can show how the playbook copes.

use serde::Serialize;

/// One inject.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Inject {
    /// `no-mobile=PCT`: that share of the tenant's users has no `mobilePhone`.
    NoMobile {
        /// Percent of users, 0–100.
        percent: f64,
    },
    /// `silent-approver`: one of the approvers the playbook requires never answers.
    SilentApprover,
}

/// Why an inject could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InjectError {
    /// Not a known inject.
    #[error("--inject {0}: unknown inject; this build knows no-mobile=PCT and silent-approver")]
    Unknown(String),
    /// A known inject this build cannot stage yet.
    #[error("--inject {0}: not available in this build (known: no-mobile=PCT, silent-approver)")]
    NotYet(String),
    /// A value out of range.
    #[error("--inject {spec}: {reason}")]
    Value {
        /// The inject as given.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Inject {
    /// Parse one `--inject` value.
    pub fn parse(spec: &str) -> Result<Inject, InjectError> {
        let (kind, value) = match spec.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        match (kind, value) {
            ("no-mobile", Some(v)) => {
                let percent: f64 =
                    v.trim_end_matches('%')
                        .parse()
                        .map_err(|_| InjectError::Value {
                            spec: spec.to_owned(),
                            reason: "expected a percentage, e.g. no-mobile=10",
                        })?;
                if !(0.0..=100.0).contains(&percent) {
                    return Err(InjectError::Value {
                        spec: spec.to_owned(),
                        reason: "the percentage must be between 0 and 100",
                    });
                }
                Ok(Inject::NoMobile { percent })
            }
            ("silent-approver", None) => Ok(Inject::SilentApprover),
            ("throttle-storm" | "channel-outage" | "privileged-in-list" | "synced-user", _) => {
                Err(InjectError::NotYet(spec.to_owned()))
            }
            _ => Err(InjectError::Unknown(spec.to_owned())),
        }
    }

    /// What the inject does, for the report.
    pub fn describe(&self) -> String {
        match self {
            Inject::NoMobile { percent } => {
                format!("{percent}% of the tenant's users have no mobile number on record")
            }
            Inject::SilentApprover => "one required approver never answers".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_parse_and_bad_ones_are_named() {
        assert_eq!(
            Inject::parse("no-mobile=12.5%"),
            Ok(Inject::NoMobile { percent: 12.5 })
        );
        assert_eq!(Inject::parse("silent-approver"), Ok(Inject::SilentApprover));
        assert!(matches!(
            Inject::parse("no-mobile=140"),
            Err(InjectError::Value { .. })
        ));
        assert!(matches!(
            Inject::parse("throttle-storm"),
            Err(InjectError::NotYet(_))
        ));
        let err = Inject::parse("meteor").unwrap_err().to_string();
        assert!(err.contains("meteor") && err.contains("no-mobile"), "{err}");
    }
}
