//! Semantic validation: the raw, parsed playbook becomes a [`Playbook`], or every problem
//! found is reported at the line and column of the node at fault.
//!
//! Each rule is one function. All rules run even after one fails, so one `validate` run
//! reports every semantic error of a file. Rules an SOC engineer relies on (see PLAYBOOKS.md,
//! "Semantic rules", for the reasoning behind each):
//!
//! - values in range (fractions, rates, TAP lifetime, batch size, ...);
//! - ids that must be GUIDs are GUIDs;
//! - `privileged.handling` is `manual` — privileged accounts are never reset automatically;
//! - at least one target and one step;
//! - a `temporary` password or a TAP is delivered by a later `notify` over a channel other than
//!   the user's own mailbox;
//! - `add_to_group` has an expiry;
//! - no step kind twice (unless the two `when:` exclude each other), no conflicting steps, no
//!   notify before the reset it announces.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};
use uuid::Uuid;

use super::diagnostic::{Diagnostic, Severity, SourceFile, offset_of};
use super::model::*;
use super::pattern::UpnPattern;
use super::raw::*;

mod step_rules;
mod steps;
#[cfg(test)]
mod tests;

pub use steps::DEFAULT_TAP_MINUTES;
use steps::steps;

/// Collects diagnostics for one file and turns node positions into byte spans.
pub(super) struct Ctx {
    src: Arc<SourceFile>,
    /// Errors found so far.
    pub errors: Vec<Diagnostic>,
    /// Warnings found so far.
    pub warnings: Vec<Diagnostic>,
    /// Templates named so far, with their positions.
    pub templates: Vec<TemplateUse>,
    /// Whether a step read so far creates a temporary password, and a Temporary Access Pass.
    secrets_before: (bool, bool),
}

/// Where a node is: byte offset and byte length in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    offset: usize,
    len: usize,
}

impl Ctx {
    pub(super) fn new(src: Arc<SourceFile>) -> Self {
        Ctx {
            src,
            errors: Vec::new(),
            warnings: Vec::new(),
            templates: Vec::new(),
            secrets_before: (false, false),
        }
    }

    /// The byte span of a node from its saphyr location.
    fn pos(&self, loc: &Location) -> Pos {
        let offset = offset_of(&self.src.text, loc.line(), loc.column());
        let span = loc.span();
        let len = span
            .byte_len()
            .filter(|_| span.byte_offset().is_some())
            .unwrap_or_else(|| span.len());
        Pos {
            offset,
            len: usize::try_from(len).unwrap_or(0),
        }
    }

    /// Remember that `name` is used as a template, for the checks after loading.
    fn use_template(&mut self, name: &SpStr, channels: &[Channel], purpose: TemplatePurpose) {
        let pos = self.at(name);
        self.templates.push(TemplateUse {
            template: name.value.clone(),
            channels: channels.to_vec(),
            purpose,
            span: pos.offset..pos.offset + pos.len,
        });
    }

    fn at<T>(&self, node: &Spanned<T>) -> Pos {
        self.pos(&node.referenced)
    }

    /// The position of `key` written at or after `from` (the start of the mapping that holds
    /// it); `from` itself when the key cannot be found (e.g. written through an alias).
    fn key(&self, from: Pos, key: &str) -> Pos {
        let text = &self.src.text;
        let window_end = (from.offset + 4096).min(text.len());
        let found = text
            .get(from.offset..window_end)
            .and_then(|w| w.find(key))
            .map(|i| from.offset + i);
        match found {
            Some(offset) => Pos {
                offset,
                len: key.len(),
            },
            None => from,
        }
    }

    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        let d = Diagnostic::at(&self.src, Severity::Error, pos.offset, pos.len, message);
        self.errors.push(d);
    }

    fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        let d = Diagnostic::at(&self.src, Severity::Warning, pos.offset, pos.len, message);
        self.warnings.push(d);
    }

    fn line(&self, pos: Pos) -> u32 {
        super::diagnostic::line_col(&self.src.text, pos.offset).0
    }
}

/// Check `raw` and build the playbook. `base_dir` resolves relative CSV paths.
/// Returns `None` when an error was recorded in `ctx`.
pub(super) fn playbook(ctx: &mut Ctx, raw: RawPlaybook, base_dir: &Path) -> Option<Playbook> {
    let errors_before = ctx.errors.len();
    rule_required_keys(ctx, &raw);
    let name = raw
        .name
        .as_ref()
        .map(|n| check_name(ctx, n))
        .unwrap_or_default();
    let trigger = raw.trigger.as_ref().map(|t| trigger(ctx, t));
    let targets = raw
        .targets
        .as_ref()
        .map(|t| targets(ctx, t, base_dir))
        .unwrap_or_default();
    let exclude = raw
        .exclude
        .as_ref()
        .map(|e| exclude(ctx, e))
        .unwrap_or_default();
    let privileged = raw
        .privileged
        .as_ref()
        .map(|p| privileged(ctx, p))
        .unwrap_or_default();
    let guards = raw
        .guards
        .as_ref()
        .map(|g| guards(ctx, g))
        .unwrap_or_default();
    let rate_limit = raw
        .rate_limit
        .as_ref()
        .map(|r| rate_limit(ctx, r))
        .unwrap_or_default();
    let disabled_users = match raw.disabled_users {
        None | Some(RawDisabledUsers::Skip) => DisabledUsers::Skip,
        Some(RawDisabledUsers::RevokeOnly) => DisabledUsers::RevokeOnly,
    };
    let hybrid_users = match raw.hybrid_users {
        None | Some(RawHybridUsers::CloudActions) => HybridUsers::CloudActions,
        Some(RawHybridUsers::ManualOnly) => HybridUsers::ManualOnly,
    };
    let steps = raw
        .steps
        .as_ref()
        .map(|s| steps(ctx, s))
        .unwrap_or_default();
    let communications = raw
        .communications
        .as_ref()
        .map(|c| communications(ctx, c))
        .unwrap_or_default();
    if ctx.errors.len() > errors_before {
        return None;
    }
    Some(Playbook {
        name,
        description: raw.description,
        trigger,
        targets,
        exclude,
        privileged,
        guards,
        rate_limit,
        disabled_users,
        hybrid_users,
        steps: steps
            .into_iter()
            .map(|s| {
                let mut spec = s.spec;
                // The playbook's `out_of_band` holds for every notice it sends.
                if let Step::Notify { out_of_band, .. } = &mut spec.step {
                    *out_of_band |= communications.out_of_band;
                }
                spec
            })
            .collect(),
        communications,
        sha256: super::digest(ctx.src.text.as_bytes()),
    })
}

// ---------------------------------------------------------------------------------------------
// Scalars shared by several sections.

/// Rule: `name`, `targets` and `steps` are present. Reported at the start of the document,
/// one error per missing key.
fn rule_required_keys(ctx: &mut Ctx, raw: &RawPlaybook) {
    let start = Pos {
        offset: super::yaml::first_content(&ctx.src.text),
        len: 0,
    };
    for (key, present) in [
        ("name", raw.name.is_some()),
        ("targets", raw.targets.is_some()),
        ("steps", raw.steps.is_some()),
    ] {
        if !present {
            ctx.error(
                start,
                format!("missing key `{key}`: a playbook needs name, targets and steps"),
            );
        }
    }
}

/// Rule: `name` is a slug (letters, digits, `.`, `_`, `-`; starting with a letter or digit),
/// because it names runs, report files and audit records.
fn check_name(ctx: &mut Ctx, name: &SpStr) -> String {
    if !is_slug(&name.value) {
        ctx.error(
            ctx.at(name),
            format!(
                "name `{}` is not a slug: use letters, digits, `-`, `_` and `.`, starting with a letter or digit",
                name.value
            ),
        );
    }
    name.value.clone()
}

fn is_slug(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Rule: group, role and object ids are GUIDs in the 8-4-4-4-12 form Graph uses.
fn guid(ctx: &mut Ctx, s: &SpStr, what: &str) -> Option<Uuid> {
    let parsed = (s.value.len() == 36)
        .then(|| Uuid::try_parse(&s.value).ok())
        .flatten();
    if parsed.is_none() {
        ctx.error(
            ctx.at(s),
            format!(
                "{what} `{}` is not a GUID (expected 8-4-4-4-12 hex digits, e.g. 0f7d3c52-9e4a-4c1b-a2f0-6d5e8b1c9a07)",
                s.value
            ),
        );
    }
    parsed
}

/// Rule: template names are plain file stems (no path, no `..`), so a playbook cannot make
/// the renderer read an arbitrary file.
fn template(ctx: &mut Ctx, s: &SpStr) -> String {
    let ok = is_slug(&s.value) && !s.value.contains("..");
    if !ok {
        ctx.error(
            ctx.at(s),
            format!(
                "template `{}` is not a template name: use letters, digits, `-` and `_` (a file in templates/, without extension)",
                s.value
            ),
        );
    }
    s.value.clone()
}

/// Rule: channels are known names, at least one, each at most once. `webhook` only in
/// `communications` (a per-user message needs a person at the other end).
fn channels(ctx: &mut Ctx, list: &SpList<String>, allow_webhook: bool) -> Vec<Channel> {
    if list.value.is_empty() {
        ctx.error(ctx.at(list), "channels is empty: name at least one channel");
    }
    let mut out: Vec<Channel> = Vec::new();
    for item in &list.value {
        let ch = match item.value.as_str() {
            "email" => Channel::Email,
            "sms" => Channel::Sms,
            "teams" => Channel::Teams,
            "webhook" if allow_webhook => Channel::Webhook,
            "webhook" => {
                ctx.error(
                    ctx.at(item),
                    "channel `webhook` is for run-level communications; a notify step needs email, sms or teams",
                );
                continue;
            }
            other => {
                let expected = if allow_webhook {
                    "email, sms, teams or webhook"
                } else {
                    "email, sms or teams"
                };
                ctx.error(
                    ctx.at(item),
                    format!("unknown channel `{other}`: expected {expected}"),
                );
                continue;
            }
        };
        if out.contains(&ch) {
            ctx.error(
                ctx.at(item),
                format!("channel `{}` is listed twice", ch.as_str()),
            );
        } else {
            out.push(ch);
        }
    }
    out
}

/// Rule: a value lies in its range; the message names the key and the range.
fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    ctx: &mut Ctx,
    value: &Spanned<T>,
    key: &str,
    ok: impl Fn(T) -> bool,
    range: &str,
) -> Option<T> {
    if ok(value.value) {
        Some(value.value)
    } else {
        ctx.error(
            ctx.at(value),
            format!("{key} must be {range}, found {}", value.value),
        );
        None
    }
}

/// Parse a duration such as `30m`, `72h` or `7d`.
pub(super) fn parse_duration(s: &str) -> Option<Duration> {
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(unit_at);
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Shortest allowed `add_to_group.expiry`.
const MIN_EXPIRY: Duration = Duration::from_secs(10 * 60);
/// Longest allowed `add_to_group.expiry`: past 90 days a "temporary" membership is permanent.
const MAX_EXPIRY: Duration = Duration::from_secs(90 * 86_400);

// ---------------------------------------------------------------------------------------------
// Sections.

fn trigger(ctx: &mut Ctx, t: &RawTrigger) -> Trigger {
    if !is_slug(&t.incident.value) {
        ctx.error(
            ctx.at(&t.incident),
            format!(
                "trigger.incident `{}` is not a slug: use letters, digits, `-` and `_`, e.g. credential_dump",
                t.incident.value
            ),
        );
    }
    Trigger {
        incident: t.incident.value.clone(),
        severity: match t.severity {
            None | Some(RawSeverity::Low) => Severity_::Low,
            Some(RawSeverity::Medium) => Severity_::Medium,
            Some(RawSeverity::High) => Severity_::High,
            Some(RawSeverity::Critical) => Severity_::Critical,
        },
    }
}

use super::model::Severity as Severity_;

/// Rules: at least one target; each source well-formed; `all_users` makes the others redundant
/// (warning).
fn targets(ctx: &mut Ctx, list: &SpList<RawTargetItem>, base_dir: &Path) -> Vec<Target> {
    if list.value.is_empty() {
        ctx.error(
            ctx.at(list),
            "targets is empty: name at least one source (csv, group, filter, risky_users or all_users)",
        );
    }
    let mut out = Vec::new();
    for item in &list.value {
        let target = match &item.value.0 {
            RawTarget::Csv(csv) => {
                if csv.path.value.trim().is_empty() {
                    ctx.error(ctx.at(&csv.path), "csv.path is empty");
                }
                let column = match &csv.column {
                    Some(c) if c.value.trim().is_empty() => {
                        ctx.error(ctx.at(c), "csv.column is empty");
                        String::new()
                    }
                    Some(c) => c.value.clone(),
                    None => "upn".to_owned(),
                };
                Target::Csv {
                    path: resolve(base_dir, &csv.path.value),
                    column,
                }
            }
            RawTarget::Group(g) => Target::Group {
                id: guid(ctx, &g.id, "group.id").unwrap_or_default(),
                transitive: g.transitive.unwrap_or(false),
            },
            RawTarget::Filter(f) => {
                if f.value.trim().is_empty() {
                    ctx.error(ctx.at(f), "filter is empty: write an OData $filter expression, e.g. \"department eq 'Finance'\"");
                }
                Target::Filter(f.value.clone())
            }
            RawTarget::RiskyUsers(r) => Target::RiskyUsers {
                levels: risky_levels(ctx, r.0.levels.as_ref()),
            },
            RawTarget::AllUsers(_) => Target::AllUsers,
        };
        out.push(target);
    }
    if list.value.len() > 1
        && let Some(all) = list
            .value
            .iter()
            .find(|t| matches!(t.value.0, RawTarget::AllUsers(_)))
    {
        let pos = ctx.key(ctx.at(all), "all_users");
        ctx.warn(
            pos,
            "all_users already includes every user: the other target sources add nothing",
        );
    }
    out
}

fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

/// Rule: `risky_users.levels` are low, medium or high (`none` is not a risk), at least one.
/// Default: `[high]`.
fn risky_levels(ctx: &mut Ctx, levels: Option<&SpList<String>>) -> Vec<RiskLevel> {
    let Some(levels) = levels else {
        return vec![RiskLevel::High];
    };
    if levels.value.is_empty() {
        ctx.error(
            ctx.at(levels),
            "risky_users.levels is empty: name at least one of low, medium, high",
        );
    }
    let mut out = Vec::new();
    for l in &levels.value {
        match RiskLevel::parse(&l.value) {
            Some(RiskLevel::None) | None => ctx.error(
                ctx.at(l),
                format!(
                    "`{}` is not a risky-user level: expected low, medium or high",
                    l.value
                ),
            ),
            Some(level) => out.push(level),
        }
    }
    out
}

/// Rules: break-glass entries are UPNs or object ids; groups are GUIDs; UPN patterns are
/// globs without whitespace that do not match everyone.
fn exclude(ctx: &mut Ctx, e: &RawExclude) -> Exclude {
    let mut out = Exclude::default();
    for bg in &e.break_glass {
        let v = bg.value.trim();
        if v.contains('@') && !v.contains(char::is_whitespace) {
            out.break_glass.push(AccountRef::Upn(v.to_owned()));
        } else if v.len() == 36
            && let Ok(id) = Uuid::try_parse(v)
        {
            out.break_glass.push(AccountRef::Id(id));
        } else {
            ctx.error(
                ctx.at(bg),
                format!(
                    "break_glass entry `{}` is neither a UPN (name@domain) nor an object id (GUID)",
                    bg.value
                ),
            );
        }
    }
    for g in &e.groups {
        if let Some(id) = guid(ctx, g, "exclude.groups entry") {
            out.groups.push(id);
        }
    }
    for p in &e.upn_patterns {
        match UpnPattern::new(&p.value) {
            None => ctx.error(
                ctx.at(p),
                format!("upn pattern `{}` is empty or contains whitespace", p.value),
            ),
            Some(pat) if pat.matches_everything() => ctx.error(
                ctx.at(p),
                format!(
                    "upn pattern `{}` matches every user and would exclude the whole tenant",
                    p.value
                ),
            ),
            Some(pat) => out.upn_patterns.push(pat),
        }
    }
    out
}

/// Rules: `handling` is `manual` (the only handling: privileged accounts are never reset
/// automatically); `roles` is `critical` or a non-empty list of role template GUIDs.
fn privileged(ctx: &mut Ctx, p: &RawPrivileged) -> Privileged {
    if let Some(h) = &p.handling
        && h.value != "manual"
    {
        ctx.error(
            ctx.at(h),
            format!(
                "privileged.handling must be `manual`, found `{}`: privileged accounts are never reset automatically, they go to the manual queue",
                h.value
            ),
        );
    }
    let roles = match &p.roles {
        None => PrivilegedRoles::Critical,
        Some(r) => match &r.value {
            RawRoles::Keyword(k) if k == "critical" => PrivilegedRoles::Critical,
            RawRoles::Keyword(k) => {
                ctx.error(
                    ctx.at(r),
                    format!(
                        "privileged.roles must be `critical` or a list of role template ids, found `{k}`"
                    ),
                );
                PrivilegedRoles::Critical
            }
            RawRoles::Ids(ids) => {
                if ids.is_empty() {
                    ctx.error(
                        ctx.at(r),
                        "privileged.roles is an empty list: no account would count as privileged; use `critical` or list role template ids",
                    );
                }
                PrivilegedRoles::TemplateIds(
                    ids.iter()
                        .filter_map(|id| guid(ctx, id, "role template id"))
                        .collect(),
                )
            }
        },
    };
    Privileged {
        roles,
        include_eligible: p.include_eligible.unwrap_or(true),
    }
}

/// Rules: `max_users` ≥ 1; `max_fraction_of_tenant` in (0, 1]; `stop_when_error_rate_above`
/// in [0, 1]; `approvals_required` in 0..=10.
fn guards(ctx: &mut Ctx, g: &RawGuards) -> Guards {
    let mut out = Guards::default();
    if let Some(v) = &g.max_users {
        out.max_users = in_range(ctx, v, "guards.max_users", |n| n >= 1, "at least 1");
    }
    if let Some(v) = &g.max_fraction_of_tenant
        && let Some(f) = in_range(
            ctx,
            v,
            "guards.max_fraction_of_tenant",
            |f| f > 0.0 && f <= 1.0,
            "in (0, 1] (a fraction: 0.5 is half the tenant)",
        )
    {
        out.max_fraction_of_tenant = f;
    }
    if let Some(v) = &g.stop_when_error_rate_above
        && let Some(f) = in_range(
            ctx,
            v,
            "guards.stop_when_error_rate_above",
            |f| (0.0..=1.0).contains(&f),
            "in [0, 1] (a fraction: 0.05 is 5%)",
        )
    {
        out.stop_when_error_rate_above = f;
    }
    if let Some(v) = &g.approvals_required
        && let Some(n) = in_range(
            ctx,
            v,
            "guards.approvals_required",
            |n| n <= 10,
            "between 0 and 10",
        )
    {
        out.approvals_required = n;
    }
    if let Some(v) = &g.remediated_within {
        match parse_duration(&v.value) {
            Some(window) if window <= MAX_REMEDIATED_WITHIN => out.remediated_within = window,
            _ => ctx.error(
                ctx.at(v),
                format!(
                    "guards.remediated_within must be a duration up to 30d such as `24h` (`0m` \
                     looks back at nothing), found `{}`",
                    v.value
                ),
            ),
        }
    }
    if let Some(v) = &g.include_remediated {
        out.include_remediated = v.value;
    }
    out
}

/// Longest `guards.remediated_within`.
const MAX_REMEDIATED_WITHIN: Duration = Duration::from_secs(30 * 86_400);

/// Rules: `max_writes_per_second` in (0, 20] (Graph's write quota per app is 20/s; a playbook
/// can only slow down); `max_in_flight` in 1..=64; `batch_size` in 1..=20 (the `$batch` limit),
/// with a warning that it changes nothing: each directory write goes on its own.
fn rate_limit(ctx: &mut Ctx, r: &RawRateLimit) -> RateLimit {
    if let Some(size) = &r.batch_size {
        let pos = ctx.at(size);
        ctx.warn(
            pos,
            "rate_limit.batch_size has no effect: resetctl sends each directory write as its own \
             request, so each is journaled, and resumed, on its own; remove it",
        );
    }
    RateLimit {
        max_writes_per_second: r.max_writes_per_second.as_ref().and_then(|v| {
            in_range(
                ctx,
                v,
                "rate_limit.max_writes_per_second",
                |f| f > 0.0 && f <= 20.0,
                "in (0, 20] (Graph allows 20 writes/s per app)",
            )
        }),
        max_in_flight: r.max_in_flight.as_ref().and_then(|v| {
            in_range(
                ctx,
                v,
                "rate_limit.max_in_flight",
                |n| (1..=64).contains(&n),
                "between 1 and 64",
            )
        }),
        batch_size: r.batch_size.as_ref().and_then(|v| {
            in_range(
                ctx,
                v,
                "rate_limit.batch_size",
                |n| (1..=20).contains(&n),
                "between 1 and 20 (Graph's $batch limit)",
            )
        }),
    }
}

fn communications(ctx: &mut Ctx, c: &RawCommunications) -> Communications {
    let mut msg = |m: &Option<RawMessage>, key: &'static str| {
        m.as_ref().map(|m| {
            let message = Message {
                template: template(ctx, &m.template),
                channels: channels(ctx, &m.channels, true),
            };
            let purpose = TemplatePurpose::RunLevel(key);
            ctx.use_template(&m.template, &message.channels, purpose);
            message
        })
    };
    let mut out = Communications {
        soc_summary: msg(&c.soc_summary, "soc_summary"),
        manual_queue: msg(&c.manual_queue, "manual_queue"),
        helpdesk_brief: msg(&c.helpdesk_brief, "helpdesk_brief"),
        out_of_band: c.out_of_band.as_ref().is_some_and(|b| b.value),
        ..Communications::default()
    };
    if let Some(v) = &c.deliver_within {
        match parse_duration(&v.value) {
            Some(within) if within >= Duration::from_secs(60) && within <= MAX_DELIVER_WITHIN => {
                out.deliver_within = within
            }
            _ => ctx.error(
                ctx.at(v),
                format!(
                    "communications.deliver_within must be a duration from 1m to 24h such as \
                     `15m`, found `{}`",
                    v.value
                ),
            ),
        }
    }
    out
}

/// Longest `communications.deliver_within`: a notice a day late is no longer a notice.
const MAX_DELIVER_WITHIN: Duration = Duration::from_secs(24 * 3600);
