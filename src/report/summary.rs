//! The ticket-ready summary of a run ([`RunReport`]): who ran which playbook on which
//! tenant under which ticket, who approved, when it started and ended (UTC, the time of
//! every attempt added up), what happened to how many users, what is left for people
//! (manual queue, manual checks, users not started), and which audit records hold the
//! details. The lifecycle builds it at the end of each execution; it is written as
//! `summary.md` beside `results.csv`, printed as text, or as JSON under `--output json`.
//!
//! A resumed run's report is cumulative: step outcomes come from the journal (every attempt),
//! time, 429s and read-backs are summed over the attempts the run store recorded. An attempt
//! whose process died without recording its end (killed, power loss) adds no time: its end
//! is not known, and the report says how many there were.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use super::write::{Existing, ReportError, write_file};
use crate::engine::execute::StepResult;
use crate::engine::journal_key::StepKey;
use crate::engine::plan::Plan;
use crate::engine::refusal::Wholesale;
use crate::store::{Approval, Attempt, Outcome, RunId, RunRecord, RunStatus};
use crate::targeting::Bucket;

/// Everything the summary is made from, gathered by the lifecycle.
pub struct ReportInputs<'a> {
    /// The run as stored (id, tenant, playbook, plan hash, ticket).
    pub run: &'a RunRecord,
    /// The status the run was left in by this attempt.
    pub status: RunStatus,
    /// The plan.
    pub plan: &'a Plan,
    /// The playbook file, as stored with the run.
    pub playbook_path: &'a str,
    /// Every step result of this attempt (a resumed attempt replays earlier outcomes from the
    /// journal, so these cover every user started in any attempt).
    pub results: &'a [StepResult],
    /// True when the circuit breaker stopped the run.
    pub tripped: bool,
    /// True when an operator stopped the run (Ctrl-C).
    pub stopped: bool,
    /// Steps whose writes were refused wholesale (the run stopped for them).
    pub refused: &'a [Wholesale],
    /// Who executed it.
    pub operator: &'a str,
    /// The run's approvals (those of this plan that an execution consumed are listed).
    pub approvals: &'a [Approval],
    /// The run's execution attempts, this one's end recorded.
    pub attempts: &'a [Attempt],
    /// The audit trail's live file.
    pub trail: &'a Path,
    /// The run's folder (results.csv, summary.md, manual-queue.csv).
    pub out: &'a Path,
}

/// The summary of a run, for the incident ticket.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run.
    pub id: RunId,
    /// The incident ticket, when the run has one.
    pub ticket: Option<String>,
    /// How the run stands: finished, stopped or interrupted.
    pub status: RunStatus,
    /// What stopped it early: `operator` (Ctrl-C), `circuit_breaker`, or `refused_wholesale`
    /// (a step's writes were all refused: a missing permission or role); `None` otherwise.
    pub stopped_by: Option<&'static str>,
    /// The steps whose writes were refused wholesale in this attempt, with an example.
    pub refused: Vec<Wholesale>,
    /// The tenant's configured name.
    pub tenant: String,
    /// The playbook.
    pub playbook: PlaybookInfo,
    /// The plan hash approvals were bound to.
    pub plan_hash: String,
    /// Who executed the run (this attempt).
    pub operator: String,
    /// The approvals this run's execution consumed.
    pub approvers: Vec<Approver>,
    /// When the first attempt started (UTC).
    pub started_at: Option<Timestamp>,
    /// When this attempt ended (UTC).
    pub ended_at: Option<Timestamp>,
    /// Execution attempts (1, plus one per resume).
    pub attempts: usize,
    /// Attempts whose process died without recording an end (their time is not counted).
    pub attempts_unended: usize,
    /// Time spent executing, all attempts added up.
    pub seconds: f64,
    /// Users per bucket.
    pub buckets: Buckets,
    /// Users with steps, by how far they got.
    pub users: Users,
    /// Steps (one per user and step) by outcome, all steps together.
    pub outcomes: StepCounts,
    /// Steps by outcome, step by step, in the playbook's order.
    pub steps: Vec<StepLine>,
    /// Users left to people: privileged and hybrid users (`manual-queue.csv`).
    pub manual_queue: ManualQueue,
    /// Targets that resolved to no user.
    pub unresolved: usize,
    /// Breach-CSV rows that could not be read (the run was planned with `--skip-bad-rows`).
    pub bad_rows: usize,
    /// Writes whose outcome was lost and established by reading the tenant back.
    pub read_backs: u64,
    /// Responses Graph answered 429 (each was waited out and re-sent).
    pub throttled: u64,
    /// The notify steps: notices delivered, not sent (nothing to announce, nobody to reach,
    /// or recorded only), to check by hand, or failed.
    pub messages: Messages,
    /// Where the records of this run are in the audit trail.
    pub audit: AuditRange,
    /// The run's files.
    pub files: Files,
    /// The plan's warnings (scrambled users who cannot recover by SSPR).
    pub warnings: Vec<String>,
}

/// The playbook a run was made from.
#[derive(Debug, Clone, Serialize)]
pub struct PlaybookInfo {
    /// Its `name`.
    pub name: String,
    /// The file (absolute when planned by this version).
    pub path: String,
    /// SHA-256 of the bytes that were validated and planned.
    pub sha256: String,
}

/// One approval an execution of the run consumed.
#[derive(Debug, Clone, Serialize)]
pub struct Approver {
    /// The approving operator.
    pub operator: String,
    /// Where the approval came from.
    pub origin: String,
    /// When.
    pub approved_at: Timestamp,
    /// The audit record that announced it.
    pub audit_seq: Option<u64>,
}

/// Users per bucket.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Buckets {
    /// Through the automated steps.
    pub automated: usize,
    /// Holders of critical roles: manual queue.
    pub privileged: usize,
    /// Synced from on-premises: passwords in the manual queue.
    pub hybrid: usize,
    /// Disabled accounts.
    pub disabled: usize,
    /// Never touched (break-glass, runner accounts, exclusions).
    pub excluded: usize,
    /// Written to by an earlier run within the playbook's window: not written again.
    pub remediated: usize,
}

/// Users with steps, by how far they got.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Users {
    /// Users the plan gave steps.
    pub with_steps: usize,
    /// Users whose steps all ran.
    pub done: usize,
    /// Users not started, or not finished (a stopped, tripped or refused run; resume to do
    /// them).
    pub not_started: usize,
    /// Users with at least one failed step or one in manual check.
    pub with_problems: usize,
}

/// Steps by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepCounts {
    /// Done.
    pub succeeded: usize,
    /// Refused or impossible; not retried.
    pub failed: usize,
    /// Fate unknown even after reading back: someone must check.
    pub manual_check: usize,
    /// Condition false or not applicable; nothing written.
    pub skipped: usize,
    /// Not applied: its user was not started, or stopped before this step.
    pub not_started: usize,
}

impl StepCounts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::ManualCheck => self.manual_check += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

/// One step's outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    /// The step's key (`1:reset_password`).
    pub step: String,
    /// What it does.
    pub description: String,
    /// Its outcomes, one per user.
    #[serde(flatten)]
    pub counts: StepCounts,
}

/// The manual queue.
#[derive(Debug, Clone, Serialize)]
pub struct ManualQueue {
    /// Users in it.
    pub users: usize,
    /// `manual-queue.csv`.
    pub path: PathBuf,
}

/// The notify steps' messages.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Messages {
    /// Delivered over at least one channel.
    pub delivered: usize,
    /// Not sent: an earlier step failed (nothing to announce), no address for the channel,
    /// or only recorded (benchmarks).
    pub not_sent: usize,
    /// A person must look: no manager, a mobile number that does not parse, a lost secret,
    /// or a message that may have been sent before an interruption.
    pub to_check: usize,
    /// Delivery failed.
    pub failed: usize,
}

/// The run's records in the audit trail: from the first attempt's `run.execute` to this
/// attempt's `run.end` (other runs' records may be interleaved; each of this run's names it
/// as `subject` or `details.run`). Approvals are before it, at their own seqs.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRange {
    /// The live trail file.
    pub trail: PathBuf,
    /// The first record.
    pub first_seq: Option<u64>,
    /// The last record.
    pub last_seq: Option<u64>,
}

/// The run's files.
#[derive(Debug, Clone, Serialize)]
pub struct Files {
    /// The folder.
    pub dir: PathBuf,
    /// `results.csv`: one row per (user, step).
    pub results: PathBuf,
    /// `summary.md`: this summary.
    pub summary: PathBuf,
}

impl RunReport {
    /// Build the summary from what the lifecycle gathered.
    pub fn new(inputs: ReportInputs<'_>) -> RunReport {
        let plan = inputs.plan;
        let mut steps: Vec<StepLine> = plan
            .steps
            .iter()
            .map(|s| StepLine {
                step: s.key.clone(),
                description: s.description.clone(),
                counts: StepCounts::default(),
            })
            .collect();
        let line_of = |steps: &mut Vec<StepLine>, key: &str| -> usize {
            match steps.iter().position(|l| l.step == key) {
                Some(i) => i,
                None => {
                    steps.push(StepLine {
                        step: key.to_owned(),
                        description: key.to_owned(),
                        counts: StepCounts::default(),
                    });
                    steps.len() - 1
                }
            }
        };
        let mut messages = Messages::default();
        let mut ended = std::collections::HashSet::new();
        let mut with_problems = std::collections::HashSet::new();
        for r in inputs.results {
            let i = line_of(&mut steps, &r.step);
            steps[i].counts.add(r.outcome);
            ended.insert((r.user_id.as_str(), r.step.as_str()));
            if matches!(r.outcome, Outcome::Failed | Outcome::ManualCheck) {
                with_problems.insert(r.user_id.as_str());
            }
            if StepKey::parse(&r.step).is_some_and(|k| k.name == "notify") {
                match r.outcome {
                    Outcome::Succeeded => messages.delivered += 1,
                    Outcome::Skipped => messages.not_sent += 1,
                    Outcome::ManualCheck => messages.to_check += 1,
                    Outcome::Failed => messages.failed += 1,
                }
            }
        }
        let mut users = Users {
            with_problems: with_problems.len(),
            ..Users::default()
        };
        // A (user, step) without a result was not applied, as `results.csv` lists it.
        for user in plan.users.iter().filter(|u| !u.steps.is_empty()) {
            users.with_steps += 1;
            let left: Vec<&String> = user
                .steps
                .iter()
                .filter(|key| !ended.contains(&(user.id.as_str(), key.as_str())))
                .collect();
            if left.is_empty() {
                users.done += 1;
                continue;
            }
            users.not_started += 1;
            for key in left {
                let i = line_of(&mut steps, key);
                steps[i].counts.not_started += 1;
            }
        }
        let outcomes = steps.iter().fold(StepCounts::default(), |mut all, l| {
            all.succeeded += l.counts.succeeded;
            all.failed += l.counts.failed;
            all.manual_check += l.counts.manual_check;
            all.skipped += l.counts.skipped;
            all.not_started += l.counts.not_started;
            all
        });
        let buckets = Buckets {
            automated: plan.count(Bucket::Automated),
            privileged: plan.count(Bucket::Privileged),
            hybrid: plan.count(Bucket::Hybrid),
            disabled: plan.count(Bucket::Disabled),
            excluded: plan.count(Bucket::Excluded),
            remediated: plan.count(Bucket::Remediated),
        };
        let run = inputs.run;
        let approvers = inputs
            .approvals
            .iter()
            .filter(|a| a.plan_hash == run.plan_hash && a.consumed_at.is_some())
            .map(|a| Approver {
                operator: a.operator.clone(),
                origin: a.origin.clone(),
                approved_at: a.approved_at,
                audit_seq: a.audit.as_ref().map(|(seq, _)| *seq),
            })
            .collect();
        let attempts = inputs.attempts;
        let ended: Vec<_> = attempts
            .iter()
            .filter_map(|a| a.end.as_ref().map(|end| (a, end)))
            .collect();
        let seconds = ended
            .iter()
            .map(|(a, end)| {
                end.ended_at
                    .duration_since(a.started_at)
                    .as_secs_f64()
                    .max(0.0)
            })
            .sum();
        let last = attempts.last();
        let stopped_by = if !inputs.refused.is_empty() {
            Some("refused_wholesale")
        } else if inputs.tripped {
            Some("circuit_breaker")
        } else if inputs.stopped || inputs.status == RunStatus::Interrupted {
            Some("operator")
        } else {
            None
        };
        RunReport {
            id: run.id.clone(),
            ticket: run.ticket.clone(),
            status: inputs.status,
            stopped_by,
            refused: inputs.refused.to_vec(),
            tenant: run.tenant.clone(),
            playbook: PlaybookInfo {
                name: run.playbook_name.clone(),
                path: inputs.playbook_path.to_owned(),
                sha256: plan.playbook_sha256.clone(),
            },
            plan_hash: run.plan_hash.clone(),
            operator: inputs.operator.to_owned(),
            approvers,
            started_at: attempts.first().map(|a| a.started_at),
            ended_at: last.and_then(|a| a.end.as_ref()).map(|e| e.ended_at),
            attempts: attempts.len(),
            attempts_unended: attempts.len() - ended.len(),
            seconds,
            buckets,
            users,
            outcomes,
            steps,
            manual_queue: ManualQueue {
                users: buckets.privileged + buckets.hybrid,
                path: inputs.out.join("manual-queue.csv"),
            },
            unresolved: plan.unresolved.len(),
            bad_rows: plan.bad_rows.len(),
            read_backs: ended.iter().map(|(_, e)| e.read_backs).sum(),
            throttled: ended.iter().map(|(_, e)| e.throttled).sum(),
            messages,
            audit: AuditRange {
                trail: inputs.trail.to_path_buf(),
                first_seq: attempts.iter().find_map(|a| a.first_seq),
                last_seq: last.and_then(|a| a.end.as_ref()).and_then(|e| e.last_seq),
            },
            files: Files {
                dir: inputs.out.to_path_buf(),
                results: inputs.out.join("results.csv"),
                summary: inputs.out.join("summary.md"),
            },
            warnings: plan
                .recovery
                .as_ref()
                .map(|r| r.warnings())
                .unwrap_or_default(),
        }
    }

    /// True when every planned step of every user ended well (succeeded or skipped).
    pub fn complete_success(&self) -> bool {
        let o = &self.outcomes;
        o.failed == 0 && o.manual_check == 0 && o.not_started == 0
    }

    /// The summary as Markdown, for `summary.md` and tickets. Every value that came from
    /// outside (names, paths) is escaped, so it cannot break the tables or add links.
    pub fn markdown(&self) -> String {
        let ticket = self.ticket.as_deref().map_or_else(|| "none".into(), esc);
        let facts = [
            ("Ticket", ticket),
            ("Status", esc(&self.status_text())),
            ("Tenant", esc(&self.tenant)),
            (
                "Playbook",
                format!(
                    "{} (`{}`)",
                    esc(&self.playbook.name),
                    code(&self.playbook.path)
                ),
            ),
            ("Playbook SHA-256", format!("`{}`", self.playbook.sha256)),
            ("Plan hash", format!("`{}`", self.plan_hash)),
            ("Operator", esc(&self.operator)),
            ("Approvers", self.approvers_text()),
            ("Started (UTC)", time(self.started_at)),
            ("Ended (UTC)", time(self.ended_at)),
            ("Time", self.time_text()),
            (
                "Audit records",
                format!(
                    "seq {} to {} of `{}`",
                    seq(self.audit.first_seq),
                    seq(self.audit.last_seq),
                    code(&self.audit.trail.display().to_string())
                ),
            ),
        ];
        let mut md = format!(
            "# resetctl run {}\n\n| field | value |\n|---|---|\n",
            self.id
        );
        for (label, value) in facts {
            let _ = writeln!(md, "| {label} | {value} |");
        }
        let b = &self.buckets;
        let _ = writeln!(md, "\n## Users\n\n| bucket | users |\n|---|---:|");
        for (name, n) in [
            ("automated", b.automated),
            ("privileged (manual queue)", b.privileged),
            ("hybrid (manual queue)", b.hybrid),
            ("disabled", b.disabled),
            ("excluded", b.excluded),
            ("remediated by an earlier run", b.remediated),
            ("unresolved targets", self.unresolved),
        ] {
            let _ = writeln!(md, "| {name} | {n} |");
        }
        if self.bad_rows > 0 {
            let _ = writeln!(md, "| unreadable CSV rows | {} |", self.bad_rows);
        }
        let u = &self.users;
        let _ = writeln!(
            md,
            "\n{} users had steps: {} done, {} not started, {} with a failed step or one to check by hand.",
            u.with_steps, u.done, u.not_started, u.with_problems
        );
        let _ = writeln!(
            md,
            "\n## Steps\n\n| step | succeeded | failed | manual check | skipped | not started |\n|---|---:|---:|---:|---:|---:|"
        );
        for line in &self.steps {
            let c = &line.counts;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                esc(&line.description),
                c.succeeded,
                c.failed,
                c.manual_check,
                c.skipped,
                c.not_started
            );
        }
        let o = &self.outcomes;
        let _ = writeln!(
            md,
            "| **all steps** | {} | {} | {} | {} | {} |",
            o.succeeded, o.failed, o.manual_check, o.skipped, o.not_started
        );
        let m = &self.messages;
        let _ = writeln!(md, "\n## Follow-up\n");
        let _ = writeln!(
            md,
            "- Manual queue: {} users in `{}`",
            self.manual_queue.users,
            code(&self.manual_queue.path.display().to_string())
        );
        let _ = writeln!(
            md,
            "- Read-backs: {} (writes whose answer was lost, settled by reading the tenant)",
            self.read_backs
        );
        let _ = writeln!(
            md,
            "- Graph 429s: {} (each waited out and re-sent)",
            self.throttled
        );
        for warning in &self.warnings {
            let _ = writeln!(md, "- Warning: {}", esc(warning));
        }
        let _ = writeln!(
            md,
            "- Notices: {} delivered, {} not sent, {} to check, {} failed",
            m.delivered, m.not_sent, m.to_check, m.failed
        );
        for refused in &self.refused {
            let _ = writeln!(
                md,
                "- Step `{}` refused wholesale for {} users ({}): nothing refused was applied; \
                 grant what is missing (`resetctl doctor`), then resume",
                code(&refused.step),
                refused.users,
                esc(refused.code.as_deref().unwrap_or("no error code"))
            );
        }
        if self.users.not_started > 0 {
            let _ = writeln!(
                md,
                "- {} users not started or not finished: `resetctl run --resume {}`",
                self.users.not_started, self.id
            );
        }
        let _ = writeln!(
            md,
            "- Per-user results: `{}`",
            code(&self.files.results.display().to_string())
        );
        md
    }

    /// The summary as terminal text, one figure a line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<14}{value}");
        };
        line("status", self.status_text());
        if let Some(ticket) = &self.ticket {
            line("ticket", ticket.clone());
        }
        line("tenant", self.tenant.clone());
        line(
            "playbook",
            format!(
                "{} ({}, sha256 {})",
                self.playbook.name,
                self.playbook.path,
                &self.playbook.sha256[..self.playbook.sha256.len().min(12)]
            ),
        );
        line("operator", self.operator.clone());
        line("approvers", self.approvers_plain());
        line(
            "UTC",
            format!("{} to {}", time(self.started_at), time(self.ended_at)),
        );
        line("time", self.time_text());
        let b = &self.buckets;
        line(
            "buckets",
            format!(
                "automated {}, privileged {}, hybrid {}, disabled {}, excluded {}, remediated {}; \
                 unresolved {}",
                b.automated,
                b.privileged,
                b.hybrid,
                b.disabled,
                b.excluded,
                b.remediated,
                self.unresolved
            ),
        );
        let u = &self.users;
        line(
            "users",
            format!(
                "{} with steps: {} done, {} not started, {} with problems",
                u.with_steps, u.done, u.not_started, u.with_problems
            ),
        );
        let o = &self.outcomes;
        line(
            "steps",
            format!(
                "succeeded {}, failed {}, manual check {}, skipped {}, not started {}",
                o.succeeded, o.failed, o.manual_check, o.skipped, o.not_started
            ),
        );
        for l in &self.steps {
            let c = &l.counts;
            line(
                "",
                format!(
                    "{}: {} ok, {} failed, {} to check, {} skipped, {} not started",
                    l.description, c.succeeded, c.failed, c.manual_check, c.skipped, c.not_started
                ),
            );
        }
        line(
            "manual queue",
            format!(
                "{} users ({})",
                self.manual_queue.users,
                self.manual_queue.path.display()
            ),
        );
        for refused in &self.refused {
            line(
                "refused",
                format!(
                    "step {} for {} users ({}); nothing refused was applied",
                    refused.step,
                    refused.users,
                    refused.code.as_deref().unwrap_or("no error code")
                ),
            );
        }
        for warning in &self.warnings {
            line("warning", warning.clone());
        }
        line("read-backs", self.read_backs.to_string());
        line(
            "429s",
            format!(
                "{} (Graph throttled; each was waited out and re-sent)",
                self.throttled
            ),
        );
        let m = &self.messages;
        line(
            "messages",
            format!(
                "{} delivered, {} not sent, {} to check, {} failed",
                m.delivered, m.not_sent, m.to_check, m.failed
            ),
        );
        line(
            "audit",
            format!(
                "seq {} to {} ({})",
                seq(self.audit.first_seq),
                seq(self.audit.last_seq),
                self.audit.trail.display()
            ),
        );
        line("results", self.files.results.display().to_string());
        line("summary", self.files.summary.display().to_string());
        if self.users.not_started > 0 {
            line(
                "resume",
                format!("resetctl run --resume {} (not started users)", self.id),
            );
        }
        out
    }

    fn status_text(&self) -> String {
        match (self.status, self.stopped_by) {
            (RunStatus::Finished, _) if self.complete_success() => "finished".into(),
            (RunStatus::Finished, _) => "finished with problems".into(),
            (RunStatus::Stopped, Some("refused_wholesale")) => {
                "stopped: a step's writes were refused wholesale (a missing permission or role); \
                 nothing refused was applied"
                    .into()
            }
            (RunStatus::Stopped, Some("circuit_breaker")) => {
                "stopped by the circuit breaker (the error rate passed the playbook's threshold)"
                    .into()
            }
            (RunStatus::Stopped, _) => {
                "stopped by the operator: users in flight finished, no new user started".into()
            }
            (RunStatus::Interrupted, _) => {
                "interrupted by the operator: users in flight were cut off".into()
            }
            (status, _) => status.as_str().into(),
        }
    }

    fn time_text(&self) -> String {
        let mut text = format!("{:.1} s", self.seconds);
        if self.attempts > 1 {
            let _ = write!(text, " over {} attempts", self.attempts);
        }
        if self.attempts_unended > 0 {
            let _ = write!(
                text,
                " ({} attempt(s) died without recording an end; their time is not counted)",
                self.attempts_unended
            );
        }
        text
    }

    fn approvers_plain(&self) -> String {
        if self.approvers.is_empty() {
            return "none".into();
        }
        self.approvers
            .iter()
            .map(|a| format!("{} ({})", a.operator, a.approved_at))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn approvers_text(&self) -> String {
        if self.approvers.is_empty() {
            return "none".into();
        }
        self.approvers
            .iter()
            .map(|a| {
                format!(
                    "{} at {} (audit seq {})",
                    esc(&a.operator),
                    a.approved_at,
                    seq(a.audit_seq)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Write `summary.md` at `path`.
pub fn write_summary(
    report: &RunReport,
    path: &Path,
    existing: Existing,
) -> Result<(), ReportError> {
    let text = report.markdown();
    write_file(path, existing, |out| {
        std::io::Write::write_all(out, text.as_bytes())
    })
}

fn time(at: Option<Timestamp>) -> String {
    at.map_or_else(
        || "unknown".into(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

fn seq(seq: Option<u64>) -> String {
    seq.map_or_else(|| "?".into(), |s| s.to_string())
}

/// Text for inside a Markdown code span: a backquote would end the span, a line break or
/// `|` the table row.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '`' => out.push('\''),
            // GitHub tables take `\|` as a pipe even inside a code span.
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Text from outside as Markdown that renders as itself: Markdown's punctuation escaped,
/// control characters shown as `U+XXXX`.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "U+{:04X}", c as u32);
        } else {
            if matches!(
                c,
                '\\' | '`' | '*' | '_' | '|' | '<' | '>' | '[' | ']' | '#'
            ) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::{Estimate, PlannedStep, PlannedUser};
    use crate::store::AttemptEnd;

    fn user(id: &str, bucket: Bucket, steps: &[&str]) -> PlannedUser {
        PlannedUser {
            id: id.into(),
            upn: format!("{id}@contoso.com"),
            display_name: id.into(),
            bucket,
            reason: "r".into(),
            risk_level: None,
            roles: vec![],
            steps: steps
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
        }
    }

    fn step(key: &str) -> PlannedStep {
        PlannedStep {
            key: key.into(),
            description: format!("do {key}"),
            requests_per_user: 1,
            budget: crate::engine::plan::Budget::DirectoryWrite,
        }
    }

    fn result(user: &str, step: &str, outcome: Outcome) -> StepResult {
        StepResult {
            user_id: user.into(),
            upn: format!("{user}@contoso.com"),
            step: step.into(),
            outcome,
            detail: None,
            at: Timestamp::UNIX_EPOCH,
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_report_counts_users_steps_messages_and_time_over_attempts() {
        let keys = ["0:reset_password", "1:notify"];
        let plan = Plan {
            unusable_mobiles: 0,
            resolved_by: None,
            recovery: Some(crate::engine::recovery::Recovery {
                buckets: vec![],
                scrambled_not_sspr_capable: 3,
                unread: None,
            }),
            playbook_name: "p".into(),
            playbook_sha256: "ab".repeat(32),
            tenant: "t".into(),
            tenant_users: 9,
            steps: vec![step(keys[0]), step(keys[1])],
            users: vec![
                user("a", Bucket::Automated, &keys),
                user("b", Bucket::Automated, &keys),
                user("c", Bucket::Automated, &keys),
                user("p", Bucket::Privileged, &[]),
                user("h", Bucket::Hybrid, &[]),
                user("x", Bucket::Excluded, &[]),
            ],
            unresolved: vec![],
            bad_rows: vec![],
            estimate: Estimate::from_quota(&[], 0, 1),
        };
        let run = RunRecord {
            id: RunId("r1".into()),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
            playbook_name: "p".into(),
            playbook_path: "/p.yaml".into(),
            tenant: "t".into(),
            plan_hash: "h".into(),
            status: RunStatus::Stopped,
            ticket: Some("INC-1".into()),
        };
        let results = [
            result("a", keys[0], Outcome::Succeeded),
            result("a", keys[1], Outcome::Skipped),
            result("b", keys[0], Outcome::Failed),
            result("b", keys[1], Outcome::Skipped),
        ];
        let approval = |operator: &str, hash: &str, consumed: bool| Approval {
            operator: operator.into(),
            plan_hash: hash.into(),
            approved_at: at("2025-12-31T23:00:00Z"),
            origin: "cli".into(),
            audit: Some((3, "x".into())),
            consumed_at: consumed.then(|| at("2026-01-01T00:00:00Z")),
        };
        let approvals = [
            approval("alice", "h", true),
            approval("bob", "other", true),
            approval("carol", "h", false),
        ];
        let end = |ended: &str, seq| AttemptEnd {
            ended_at: at(ended),
            status: RunStatus::Stopped,
            throttled: 2,
            read_backs: 1,
            last_seq: Some(seq),
        };
        let attempts = [
            Attempt {
                n: 1,
                started_at: at("2026-01-01T00:00:00Z"),
                end: Some(end("2026-01-01T00:01:00Z", 20)),
                first_seq: Some(5),
            },
            // Died without an end: no time counted.
            Attempt {
                n: 2,
                started_at: at("2026-01-01T01:00:00Z"),
                end: None,
                first_seq: Some(30),
            },
            Attempt {
                n: 3,
                started_at: at("2026-01-01T02:00:00Z"),
                end: Some(end("2026-01-01T02:00:30Z", 60)),
                first_seq: Some(40),
            },
        ];
        let report = RunReport::new(ReportInputs {
            run: &run,
            status: RunStatus::Stopped,
            plan: &plan,
            playbook_path: "/p.yaml",
            results: &results,
            tripped: false,
            stopped: true,
            refused: &[],
            operator: "op",
            approvals: &approvals,
            attempts: &attempts,
            trail: Path::new("/d/audit.jsonl"),
            out: Path::new("/d/runs/r1"),
        });
        assert_eq!(report.seconds, 90.0);
        assert_eq!((report.attempts, report.attempts_unended), (3, 1));
        assert_eq!(report.started_at, Some(at("2026-01-01T00:00:00Z")));
        assert_eq!(report.ended_at, Some(at("2026-01-01T02:00:30Z")));
        assert_eq!((report.throttled, report.read_backs), (4, 2));
        assert_eq!(
            (report.audit.first_seq, report.audit.last_seq),
            (Some(5), Some(60))
        );
        let approvers: Vec<_> = report
            .approvers
            .iter()
            .map(|a| a.operator.as_str())
            .collect();
        assert_eq!(approvers, ["alice"], "only consumed approvals of this plan");
        assert_eq!(
            (
                report.users.with_steps,
                report.users.done,
                report.users.not_started
            ),
            (3, 2, 1)
        );
        assert_eq!(report.users.with_problems, 1);
        assert_eq!(
            report.steps[0].counts,
            StepCounts {
                succeeded: 1,
                failed: 1,
                not_started: 1,
                ..StepCounts::default()
            }
        );
        assert_eq!(report.outcomes.not_started, 2);
        assert_eq!(report.messages.not_sent, 2);
        assert_eq!(report.manual_queue.users, 2);
        assert_eq!(report.buckets.excluded, 1);
        assert_eq!(report.stopped_by, Some("operator"));
        assert!(!report.complete_success());
        let md = report.markdown();
        assert!(md.contains("| Ticket | INC-1 |"), "{md}");
        assert!(
            md.contains("60.0 s") || md.contains("90.0 s over 3 attempts"),
            "{md}"
        );
        assert!(md.contains("1 attempt(s) died"), "{md}");
        assert!(md.contains("seq 5 to 60"), "{md}");
        assert!(
            md.contains("- Warning: 3 user(s) get a scrambled password but are not SSPR-capable"),
            "{md}"
        );
        let text = report.text();
        assert!(text.contains("resetctl run --resume r1"), "{text}");
        assert!(
            text.contains("3 user(s) get a scrambled password but are not SSPR-capable"),
            "{text}"
        );
    }

    #[test]
    fn a_user_paused_on_a_refused_step_is_not_done_and_its_steps_left_are_counted() {
        let keys = ["0:reset_password", "1:revoke_sessions"];
        let plan = Plan {
            unusable_mobiles: 0,
            resolved_by: None,
            recovery: None,
            playbook_name: "p".into(),
            playbook_sha256: "ab".repeat(32),
            tenant: "t".into(),
            tenant_users: 2,
            steps: vec![step(keys[0]), step(keys[1])],
            users: vec![
                user("a", Bucket::Automated, &keys),
                user("b", Bucket::Automated, &keys),
            ],
            unresolved: vec![],
            bad_rows: vec![],
            estimate: Estimate::from_quota(&[], 0, 1),
        };
        let run = RunRecord {
            id: RunId("r2".into()),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
            playbook_name: "p".into(),
            playbook_path: "/p.yaml".into(),
            tenant: "t".into(),
            plan_hash: "h".into(),
            status: RunStatus::Stopped,
            ticket: None,
        };
        // `a` finished; `b` ran its first step, then paused on the refused second one.
        let results = [
            result("a", keys[0], Outcome::Succeeded),
            result("a", keys[1], Outcome::Succeeded),
            result("b", keys[0], Outcome::Succeeded),
        ];
        let refused = [Wholesale {
            step: keys[1].into(),
            code: Some("Authorization_RequestDenied".into()),
            users: 1,
            example: "HTTP 403".into(),
        }];
        let report = RunReport::new(ReportInputs {
            run: &run,
            status: RunStatus::Stopped,
            plan: &plan,
            playbook_path: "/p.yaml",
            results: &results,
            tripped: false,
            stopped: false,
            refused: &refused,
            operator: "op",
            approvals: &[],
            attempts: &[],
            trail: Path::new("/d/audit.jsonl"),
            out: Path::new("/d/runs/r2"),
        });
        assert_eq!((report.users.done, report.users.not_started), (1, 1));
        assert_eq!(report.steps[1].counts.not_started, 1);
        assert_eq!(report.outcomes.succeeded, 3);
        assert_eq!(report.stopped_by, Some("refused_wholesale"));
        assert!(report.markdown().contains("refused wholesale for 1 users"));
        assert_eq!(report.seconds, 0.0, "no attempt recorded, no time");
    }

    #[test]
    fn names_and_paths_cannot_break_the_markdown() {
        assert_eq!(esc("a|b*c_[x](y)"), "a\\|b\\*c\\_\\[x\\](y)");
        assert_eq!(esc("line\nbreak"), "lineU+000Abreak");
        assert_eq!(code("/tmp/a`b|c\n"), "/tmp/a'b\\|c?");
    }
}
