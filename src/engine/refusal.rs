//! The stop for writes refused wholesale. An app that lacks a permission or a directory role
//! is refused every write of a step, user after user (HTTP 403, one Graph error code). The
//! circuit breaker would notice only after its window filled — 20 users burned. Here, when
//! the first [`WHOLESALE`] writes of a step in a run's attempt are all refused with the same
//! code, no new user starts, and the refused rows are kept open: nothing was applied, so
//! once the operator grants what is missing, `--resume` makes those writes as if for the
//! first time.
//!
//! While a step's verdict is open, a refused row is withheld: journaled without an outcome
//! (typed as refused), its user's pipeline paused. A write of the step that ends any other
//! way (or a refusal with another code) makes the verdict ordinary: the withheld rows are
//! recorded as the failures they are and their users' pipelines go on. At the end of the
//! attempt a verdict still open is wholesale: every write of that step was refused alike.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// Refusals of one step, all with the same code and nothing else in between, that stop a
/// run.
pub const WHOLESALE: usize = 5;

/// A refused write whose outcome is held back while its step's verdict is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    /// The user's object id.
    pub user_id: String,
    /// The step's journal key.
    pub key: String,
    /// The refusal, as the journal and the trail show it.
    pub detail: String,
}

/// A step whose writes were refused wholesale in this attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wholesale {
    /// The step's journal key (`0:reset_password`).
    pub step: String,
    /// The directory's error code, e.g. `Authorization_RequestDenied`.
    pub code: Option<String>,
    /// Users whose write of the step was refused (left to the resume).
    pub users: usize,
    /// One refusal as the directory gave it (status, code, message, request id).
    pub example: String,
}

/// What to do with a refused write.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep its row open and pause the user's pipeline.
    Withhold,
    /// Record it as failed, and these rows withheld earlier too.
    Record(Vec<Withheld>),
}

/// The verdict on one step's refusals.
#[derive(Debug)]
enum Verdict {
    /// Only refusals so far, with this code.
    Open {
        code: Option<String>,
        rows: Vec<Withheld>,
    },
    /// Something else happened to a write of the step: refusals are ordinary failures.
    Ordinary,
    /// Every write of the step was refused alike.
    Wholesale {
        code: Option<String>,
        rows: Vec<Withheld>,
    },
}

/// The refusal verdicts of one attempt of a run, per step.
#[derive(Debug)]
pub struct Refusals {
    /// Refusals that make a step's verdict wholesale.
    threshold: usize,
    /// Verdict per journal key.
    steps: Mutex<HashMap<String, Verdict>>,
    /// A step was judged wholesale: start no new user.
    tripped: AtomicBool,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals::new(WHOLESALE)
    }
}

impl Refusals {
    /// Verdicts that turn wholesale after `threshold` alike refusals.
    pub fn new(threshold: usize) -> Refusals {
        Refusals {
            threshold: threshold.max(1),
            steps: Mutex::new(HashMap::new()),
            tripped: AtomicBool::new(false),
        }
    }

    fn steps(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verdict>> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a step was judged wholesale: no new user starts.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Whether step `key` is refused wholesale: its writes are not sent any more.
    pub fn refused(&self, key: &str) -> bool {
        matches!(self.steps().get(key), Some(Verdict::Wholesale { .. }))
    }

    /// A write of `row.key` was refused with `code`.
    pub fn denied(&self, row: Withheld, code: Option<String>) -> Decision {
        let mut steps = self.steps();
        let verdict = steps.entry(row.key.clone()).or_insert(Verdict::Open {
            code: code.clone(),
            rows: Vec::new(),
        });
        match verdict {
            Verdict::Ordinary => Decision::Record(Vec::new()),
            Verdict::Wholesale { rows, .. } => {
                rows.push(row);
                Decision::Withhold
            }
            Verdict::Open { code: first, rows } if *first == code => {
                rows.push(row);
                if rows.len() >= self.threshold {
                    let rows = std::mem::take(rows);
                    tracing::error!(
                        message = "Every write of a step was refused alike: stopping the run.",
                        step = %rows[0].key,
                        refused = rows.len(),
                        code = code.as_deref().unwrap_or("")
                    );
                    *verdict = Verdict::Wholesale { code, rows };
                    self.tripped.store(true, Ordering::SeqCst);
                }
                Decision::Withhold
            }
            Verdict::Open { .. } => match std::mem::replace(verdict, Verdict::Ordinary) {
                Verdict::Open { rows, .. } => Decision::Record(rows),
                _ => Decision::Record(Vec::new()),
            },
        }
    }

    /// A write of step `key` ended other than refused: its refusals are ordinary. The rows
    /// withheld so far are returned, to be recorded as failed.
    pub fn decided(&self, key: &str) -> Vec<Withheld> {
        let mut steps = self.steps();
        match steps.get_mut(key) {
            None => {
                steps.insert(key.to_owned(), Verdict::Ordinary);
                Vec::new()
            }
            Some(verdict @ Verdict::Open { .. }) => {
                match std::mem::replace(verdict, Verdict::Ordinary) {
                    Verdict::Open { rows, .. } => rows,
                    _ => Vec::new(),
                }
            }
            Some(_) => Vec::new(),
        }
    }

    /// End of the attempt: a verdict still open is wholesale. Returns every wholesale step.
    pub fn finish(&self) -> Vec<Wholesale> {
        let mut steps = self.steps();
        for verdict in steps.values_mut() {
            if let Verdict::Open { code, rows } = verdict
                && !rows.is_empty()
            {
                let (code, rows) = (code.take(), std::mem::take(rows));
                *verdict = Verdict::Wholesale { code, rows };
                self.tripped.store(true, Ordering::SeqCst);
            }
        }
        let mut out: Vec<Wholesale> = steps
            .iter()
            .filter_map(|(key, verdict)| match verdict {
                Verdict::Wholesale { code, rows } => Some(Wholesale {
                    step: key.clone(),
                    code: code.clone(),
                    users: rows.len(),
                    example: rows.first().map(|r| r.detail.clone()).unwrap_or_default(),
                }),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.step.cmp(&b.step));
        out
    }

    /// Users with a row withheld under a wholesale verdict: not done in this attempt.
    pub fn withheld_users(&self) -> HashSet<String> {
        self.steps()
            .values()
            .filter_map(|verdict| match verdict {
                Verdict::Wholesale { rows, .. } | Verdict::Open { rows, .. } => Some(rows),
                Verdict::Ordinary => None,
            })
            .flatten()
            .map(|row| row.user_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENIED: Option<&str> = Some("Authorization_RequestDenied");

    fn row(user: u32, key: &str) -> Withheld {
        Withheld {
            user_id: format!("u{user}"),
            key: key.into(),
            detail: format!("denied u{user}"),
        }
    }

    fn code(c: Option<&str>) -> Option<String> {
        c.map(str::to_owned)
    }

    #[test]
    fn alike_refusals_of_a_step_turn_wholesale_at_the_threshold() {
        let r = Refusals::new(3);
        for user in 0..2 {
            assert_eq!(r.denied(row(user, "0:a"), code(DENIED)), Decision::Withhold);
            assert!(!r.tripped());
        }
        assert_eq!(r.denied(row(2, "0:a"), code(DENIED)), Decision::Withhold);
        assert!(r.tripped() && r.refused("0:a") && !r.refused("1:b"));
        // Users in flight refused afterwards are withheld with them.
        assert_eq!(r.denied(row(3, "0:a"), code(DENIED)), Decision::Withhold);
        assert_eq!(r.withheld_users().len(), 4);
        let wholesale = r.finish();
        assert_eq!(wholesale.len(), 1);
        assert_eq!(wholesale[0].users, 4);
        assert_eq!(wholesale[0].code.as_deref(), DENIED);
        assert_eq!(wholesale[0].example, "denied u0");
    }

    #[test]
    fn another_outcome_makes_refusals_ordinary_and_releases_the_withheld() {
        let r = Refusals::new(3);
        assert_eq!(r.denied(row(0, "0:a"), code(DENIED)), Decision::Withhold);
        assert_eq!(r.denied(row(1, "0:a"), code(DENIED)), Decision::Withhold);
        let released = r.decided("0:a");
        assert_eq!(released, [row(0, "0:a"), row(1, "0:a")]);
        // From now on a refusal of this step is recorded at once.
        for user in 2..10 {
            assert_eq!(
                r.denied(row(user, "0:a"), code(DENIED)),
                Decision::Record(Vec::new())
            );
        }
        assert!(!r.tripped());
        assert!(r.finish().is_empty());
        assert!(r.withheld_users().is_empty());
    }

    #[test]
    fn a_refusal_with_another_code_is_not_alike() {
        let r = Refusals::new(3);
        assert_eq!(r.denied(row(0, "0:a"), code(DENIED)), Decision::Withhold);
        assert_eq!(
            r.denied(row(1, "0:a"), code(Some("Other_Code"))),
            Decision::Record(vec![row(0, "0:a")])
        );
        assert!(!r.tripped());
    }

    #[test]
    fn steps_are_judged_apart_and_an_open_verdict_is_wholesale_at_the_end() {
        let r = Refusals::new(5);
        assert!(r.decided("0:a").is_empty());
        assert_eq!(r.denied(row(0, "1:b"), code(DENIED)), Decision::Withhold);
        assert_eq!(r.denied(row(0, "0:a"), None), Decision::Record(Vec::new()));
        assert!(!r.tripped());
        let wholesale = r.finish();
        assert!(r.tripped());
        assert_eq!(wholesale.len(), 1);
        assert_eq!(wholesale[0].step, "1:b");
        assert_eq!(r.withheld_users(), HashSet::from(["u0".to_owned()]));
    }
}
