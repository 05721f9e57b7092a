//! Journal keys as types. A step's key is its position in the playbook and its name,
//! written `index:name` (the plan and the journal store that text); a removal attempt of a
//! temporary membership is keyed after the step that made it. The text form is made and
//! read here only.

use std::fmt;

use crate::playbook::{Playbook, Step};

/// The journal key of one playbook step: `index:name`, e.g. `1:reset_password`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepKey {
    /// Position of the step in the playbook.
    pub index: usize,
    /// The step's name (`reset_password`, `add_to_group`, ...).
    pub name: String,
}

impl StepKey {
    /// The key of the playbook's `index`-th step.
    pub fn of(index: usize, step: &Step) -> StepKey {
        StepKey {
            index,
            name: step.key().to_owned(),
        }
    }

    /// Read a key from its text form; `None` when it is not `index:name`.
    pub fn parse(text: &str) -> Option<StepKey> {
        let (index, name) = text.split_once(':')?;
        if name.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(StepKey {
            index: index.parse().ok()?,
            name: name.to_owned(),
        })
    }

    /// The playbook step this key names, when the playbook has it at that position.
    pub fn step<'a>(&self, playbook: &'a Playbook) -> Option<&'a Step> {
        let spec = playbook.steps.get(self.index)?;
        (spec.step.key() == self.name).then_some(&spec.step)
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.index, self.name)
    }
}

/// The journal key of the `attempt`-th try (from 1) to end the membership the step keyed
/// `of_step` made: `<of_step>#expire.<attempt>`. Never parsed: a removal row says which
/// step it is about in its typed facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalKey<'a> {
    /// The `add_to_group` step's key.
    pub of_step: &'a str,
    /// Which attempt.
    pub attempt: usize,
}

impl fmt::Display for RemovalKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#expire.{}", self.of_step, self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_keys_round_trip_and_reject_other_text() {
        let key = StepKey {
            index: 12,
            name: "add_to_group".into(),
        };
        assert_eq!(key.to_string(), "12:add_to_group");
        assert_eq!(StepKey::parse("12:add_to_group"), Some(key));
        for bad in [
            "",
            "x:reset_password",
            "1",
            "1:",
            "-1:revoke_sessions",
            ":a",
        ] {
            assert_eq!(StepKey::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn removal_keys_name_their_step_and_attempt() {
        let key = RemovalKey {
            of_step: "2:add_to_group",
            attempt: 3,
        };
        assert_eq!(key.to_string(), "2:add_to_group#expire.3");
    }
}
