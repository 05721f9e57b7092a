//! The validated `triggers:` section: which playbook an incident from the SOC's tooling
//! starts (as a plan awaiting its approvals), on which tenant. Rules are tried in order; the
//! first that takes the incident wins. The playbook's own `trigger:` section still applies:
//! the incident's severity must reach its minimum, and a generic trigger's `kind` must be its
//! `incident`.
//!
//! ```yaml
//! triggers:
//!   - playbook: playbooks/credential-dump.yaml   # relative to this file
//!     tenant: contoso
//!     sources: [sentinel, splunk, generic]       # default: all three
//!     title_contains: credential                 # optional, case-insensitive
//!     tactics: [CredentialAccess]                # optional: any of them
//!     labels: [infostealer]                      # optional: any of them
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
            Ok(TriggerRule {
                playbook: resolve(base_dir, r.playbook),
                tenant: r.tenant,
                sources,
                title_contains: r.title_contains.map(|t| t.to_lowercase()),
                tactics: r.tactics,
                labels: r.labels,
            })
        })
        .collect()
}
