//! The validated `triggers:` section: which playbook an incident from the SOC's tooling
//! starts (as a plan awaiting its approvals), on which tenant. Rules are tried in order; the
//! first that takes the incident wins. The playbook's own `trigger:` section still applies:
//! the incident's severity must reach its minimum, and a generic trigger's `kind` must be its
//! `incident`.
//!
//! `execute: true` lets a rule's incident execute its plan at once, through the same gate as
//! any run (guards, overlaps with unfinished runs, preflight), never past it: it is accepted
//! only on a rule whose playbook requires no approvals (`guards.approvals_required: 0`), which
//! is checked here, when the configuration is loaded, against the playbook as it is now, and
//! again when an incident arrives. Default: false (the trigger makes a plan only).
//!
//! ```yaml
//! triggers:
//!   - playbook: playbooks/credential-dump.yaml   # relative to this file
//!     tenant: contoso
//!     sources: [sentinel, splunk, generic]       # default: all three
//!     title_contains: credential                 # optional, case-insensitive
//!     tactics: [CredentialAccess]                # optional: any of them
//!     labels: [infostealer]                      # optional: any of them
//!     execute: false                             # optional; true needs approvals_required: 0
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::ConfigError;
use super::channels::invalid;
use super::tenant::resolve;

/// One raw rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub playbook: PathBuf,
    pub tenant: String,
    #[serde(default)]
    pub sources: Vec<Spanned<String>>,
    pub title_contains: Option<String>,
    #[serde(default)]
    pub tactics: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub execute: Option<Spanned<bool>>,
}

/// One trigger rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRule {
    /// The playbook (resolved against the configuration's directory).
    pub playbook: PathBuf,
    /// The configured tenant it plans on.
    pub tenant: String,
    /// The sources it takes (`sentinel`, `splunk`, `generic`).
    pub sources: Vec<String>,
    /// The incident's title must contain this (lower-case), when set.
    pub title_contains: Option<String>,
    /// The incident must carry one of these tactics, when any are named.
    pub tactics: Vec<String>,
    /// The incident must carry one of these labels, when any are named.
    pub labels: Vec<String>,
    /// The incident's plan executes at once (through the gate) instead of waiting for an
    /// operator: only where the playbook requires no approvals.
    pub execute: bool,
}

const SOURCES: [&str; 3] = ["sentinel", "splunk", "generic"];

pub(crate) fn from_raw(
    raw: Vec<Spanned<RawRule>>,
    base_dir: Option<&Path>,
) -> Result<Vec<TriggerRule>, ConfigError> {
    raw.into_iter()
        .map(|rule| {
            let r = rule.value;
            let mut sources = Vec::new();
            for s in r.sources {
                if !SOURCES.contains(&s.value.as_str()) {
                    return Err(invalid(
                        "triggers: sources are `sentinel`, `splunk` and `generic`".into(),
                        &s.referenced,
                    ));
                }
                sources.push(s.value);
            }
            if sources.is_empty() {
                sources = SOURCES.iter().map(|s| (*s).to_owned()).collect();
            }
            let playbook = resolve(base_dir, r.playbook);
            let execute = match r.execute {
                Some(flag) if flag.value => {
                    executable(&playbook).map_err(|m| invalid(m, &flag.referenced))?;
                    true
                }
                _ => false,
            };
            Ok(TriggerRule {
                playbook,
                execute,
                tenant: r.tenant,
                sources,
                title_contains: r.title_contains.map(|t| t.to_lowercase()),
                tactics: r.tactics,
                labels: r.labels,
            })
        })
        .collect()
}

/// Whether the playbook at `path` may run straight from a trigger: it must load and require
/// no approvals (a trigger never stands in for an approver).
fn executable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    match crate::playbook::load(path) {
        Ok(loaded) => match loaded.playbook.guards.approvals_required {
            0 => Ok(()),
            n => Err(format!(
                "triggers: `execute: true` is refused: {shown} requires {n} approval(s) \
                 (guards.approvals_required), and a trigger never stands in for an approver; \
                 remove `execute` so the incident makes a plan to approve"
            )),
        },
        Err(diagnostics) => Err(format!(
            "triggers: `execute: true` needs {shown} to load, to check it requires no \
             approvals; it has {} error(s) (`resetctl validate {shown}`)",
            diagnostics.errors.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigErrorKind, Env};

    fn shipped(name: &str) -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("playbooks")
            .join(name)
            .display()
            .to_string()
    }

    fn parse(yaml: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(
            yaml,
            Some(Path::new("/etc/resetctl/resetctl.yaml")),
            &Env::from_pairs(Vec::<(String, String)>::new()),
        )
    }

    #[test]
    fn execute_defaults_to_false_and_is_taken_where_no_approval_is_required() {
        let dump = shipped("credential-dump.yaml");
        let config = parse(&format!(
            "triggers:\n  - {{ playbook: {dump}, tenant: demo }}\n"
        ))
        .unwrap();
        assert!(!config.triggers[0].execute);
        let config = parse(&format!(
            "triggers:\n  - {{ playbook: {dump}, tenant: demo, execute: true }}\n"
        ))
        .unwrap();
        assert!(config.triggers[0].execute);
    }

    #[test]
    fn execute_on_a_playbook_that_requires_approvals_is_refused_at_its_position() {
        let spray = shipped("password-spray.yaml");
        let err = parse(&format!(
            "triggers:\n  - playbook: {spray}\n    tenant: demo\n    execute: true\n"
        ))
        .unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Invalid);
        let shown = err.to_string();
        assert!(
            shown.starts_with(
                "/etc/resetctl/resetctl.yaml:4:14: triggers: `execute: true` is refused"
            ),
            "{shown}"
        );
        assert!(shown.contains("requires 1 approval"), "{shown}");
        // `execute: false` says what the default says.
        parse(&format!(
            "triggers:\n  - {{ playbook: {spray}, tenant: demo, execute: false }}\n"
        ))
        .unwrap();
        // A playbook that does not load cannot be shown to need no approvals.
        let err = parse(
            "triggers:\n  - { playbook: /nonexistent/pb.yaml, tenant: demo, execute: true }\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("needs /nonexistent/pb.yaml to load"),
            "{err}"
        );
    }
}
