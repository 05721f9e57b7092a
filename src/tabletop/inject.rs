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
    /// `throttle-storm[=SECONDS]`: another app drains the tenant's write bucket for that
    /// long (projected seconds, from the first write): Graph answers our writes 429.
    ThrottleStorm {
        /// Projected seconds, 1–300 (one tenant write window at most).
        seconds: f64,
    },
    /// `channel-outage=sms|email|teams`: that channel's provider is down for the run.
    ChannelOutage {
        /// The channel that is down.
        channel: Outage,
    },
    /// `privileged-in-list`: an active admin is among the targets.
    PrivilegedInList,
    /// `synced-user`: an on-premises synced (hybrid) user is among the targets.
    SyncedUser,
}

/// A channel an outage can take down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outage {
    /// Text messages (every SMS provider: Twilio and ACS).
    Sms,
    /// Mail (Graph `sendMail`).
    Email,
    /// The Teams workflow.
    Teams,
}

impl Outage {
    /// The playbook's name of the channel.
    pub fn as_str(self) -> &'static str {
        match self {
            Outage::Sms => "sms",
            Outage::Email => "email",
            Outage::Teams => "teams",
        }
    }

    /// The emulator's fault specification that stages the outage: the provider's 503 to
    /// every request (see `emulator::faults`).
    pub fn faults(self) -> &'static str {
        match self {
            Outage::Sms => "twilio_503=1,acs_503=1",
            Outage::Email => "mail_503=1",
            Outage::Teams => "teams_503=1",
        }
    }
}

/// The storm's length when `throttle-storm` gives none: a fifth of the tenant's write
/// window, long enough to stall every write in flight several times.
pub const DEFAULT_STORM_SECONDS: f64 = 60.0;

/// Why an inject could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InjectError {
    /// Not a known inject.
    #[error(
        "--inject {0}: unknown inject; this build knows no-mobile=PCT, silent-approver, \
         throttle-storm[=SECONDS], channel-outage=sms|email|teams, privileged-in-list and \
         synced-user"
    )]
    Unknown(String),
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
            ("throttle-storm", None) => Ok(Inject::ThrottleStorm {
                seconds: DEFAULT_STORM_SECONDS,
            }),
            ("throttle-storm", Some(v)) => {
                let seconds: f64 =
                    v.trim_end_matches('s')
                        .parse()
                        .map_err(|_| InjectError::Value {
                            spec: spec.to_owned(),
                            reason: "expected seconds, e.g. throttle-storm=60",
                        })?;
                if !(1.0..=300.0).contains(&seconds) {
                    return Err(InjectError::Value {
                        spec: spec.to_owned(),
                        reason: "a storm lasts between 1 and 300 seconds (one write window)",
                    });
                }
                Ok(Inject::ThrottleStorm { seconds })
            }
            ("channel-outage", Some(v)) => {
                let channel = match v {
                    "sms" => Outage::Sms,
                    "email" => Outage::Email,
                    "teams" => Outage::Teams,
                    _ => {
                        return Err(InjectError::Value {
                            spec: spec.to_owned(),
                            reason: "expected channel-outage=sms, email or teams",
                        });
                    }
                };
                Ok(Inject::ChannelOutage { channel })
            }
            ("channel-outage", None) => Err(InjectError::Value {
                spec: spec.to_owned(),
                reason: "name the channel: channel-outage=sms, email or teams",
            }),
            ("privileged-in-list", None) => Ok(Inject::PrivilegedInList),
            ("synced-user", None) => Ok(Inject::SyncedUser),
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
            Inject::ThrottleStorm { seconds } => format!(
                "another app drains the tenant's write quota for {seconds:.0} s (projected): \
                 Graph answers writes 429"
            ),
            Inject::ChannelOutage { channel } => format!(
                "the {} provider is down for the whole run (it answers 503)",
                channel.as_str()
            ),
            Inject::PrivilegedInList => {
                "an active administrator is in the list of targets".to_owned()
            }
            Inject::SyncedUser => {
                "an on-premises synced (hybrid) user is in the list of targets".to_owned()
            }
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
        assert_eq!(
            Inject::parse("throttle-storm"),
            Ok(Inject::ThrottleStorm {
                seconds: DEFAULT_STORM_SECONDS
            })
        );
        assert_eq!(
            Inject::parse("throttle-storm=90"),
            Ok(Inject::ThrottleStorm { seconds: 90.0 })
        );
        assert!(matches!(
            Inject::parse("throttle-storm=900"),
            Err(InjectError::Value { .. })
        ));
        assert_eq!(
            Inject::parse("channel-outage=sms"),
            Ok(Inject::ChannelOutage {
                channel: Outage::Sms
            })
        );
        assert!(matches!(
            Inject::parse("channel-outage=fax"),
            Err(InjectError::Value { .. })
        ));
        assert!(matches!(
            Inject::parse("channel-outage"),
            Err(InjectError::Value { .. })
        ));
        assert_eq!(
            Inject::parse("privileged-in-list"),
            Ok(Inject::PrivilegedInList)
        );
        assert_eq!(Inject::parse("synced-user"), Ok(Inject::SyncedUser));
        assert!(matches!(
            Inject::parse("synced-user=3"),
            Err(InjectError::Unknown(_))
        ));
        let err = Inject::parse("meteor").unwrap_err().to_string();
        assert!(err.contains("meteor") && err.contains("no-mobile"), "{err}");
    }
}
