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

use super::condition::{self, Condition};
use super::diagnostic::{Diagnostic, Severity, SourceFile, offset_of};
use super::model::*;
use super::pattern::UpnPattern;
use super::raw::*;

/// Collects diagnostics for one file and turns node positions into byte spans.
pub(super) struct Ctx {
    src: Arc<SourceFile>,
    /// Errors found so far.
    pub errors: Vec<Diagnostic>,
    /// Warnings found so far.
    pub warnings: Vec<Diagnostic>,
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
    let name = check_name(ctx, &raw.name);
    let trigger = raw.trigger.as_ref().map(|t| trigger(ctx, t));
    let targets = targets(ctx, &raw.targets, base_dir);
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
    let steps = steps(ctx, &raw.steps);
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
        steps: steps.into_iter().map(|s| s.spec).collect(),
        communications,
    })
}

// ---------------------------------------------------------------------------------------------
// Scalars shared by several sections.

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
    out
}

/// Rules: `max_writes_per_second` in (0, 20] (Graph's write quota per app is 20/s; a playbook
/// can only slow down); `max_in_flight` in 1..=64; `batch_size` in 1..=20 (the `$batch` limit).
fn rate_limit(ctx: &mut Ctx, r: &RawRateLimit) -> RateLimit {
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
    let mut msg = |m: &Option<RawMessage>| {
        m.as_ref().map(|m| Message {
            template: template(ctx, &m.template),
            channels: channels(ctx, &m.channels, true),
        })
    };
    Communications {
        soc_summary: msg(&c.soc_summary),
        manual_queue: msg(&c.manual_queue),
        helpdesk_brief: msg(&c.helpdesk_brief),
    }
}

// ---------------------------------------------------------------------------------------------
// Steps.

/// A checked step with the positions the cross-step rules point at.
#[derive(Debug)]
struct Checked {
    spec: StepSpec,
    /// The step key (`reset_password`) in the file.
    key: Pos,
}

/// Every step and the rules across steps.
fn steps(ctx: &mut Ctx, list: &SpList<RawStep>) -> Vec<Checked> {
    if list.value.is_empty() {
        ctx.error(
            ctx.at(list),
            "steps is empty: the playbook would do nothing; add at least one step",
        );
    }
    let checked: Vec<Checked> = list
        .value
        .iter()
        .filter_map(|item| step(ctx, item))
        .collect();
    rule_duplicate_steps(ctx, &checked);
    rule_temporary_secret_delivery(ctx, &checked);
    rule_keep_with_reregistration(ctx, &checked);
    rule_notify_before_reset(ctx, &checked);
    rule_scramble_keeps_a_way_back(ctx, &checked);
    checked
}

const STEP_NAMES: &str = "revoke_sessions, reset_password, require_mfa_reregistration, temporary_access_pass, add_to_group, confirm_compromised, notify";

/// One step: exactly one step key, its options, its condition.
fn step(ctx: &mut Ctx, item: &Spanned<RawStep>) -> Option<Checked> {
    let start = ctx.at(item);
    match &item.value {
        RawStep::Name(name) => {
            let step = match name.as_str() {
                "revoke_sessions" => Step::RevokeSessions,
                "confirm_compromised" => Step::ConfirmCompromised,
                "require_mfa_reregistration" => Step::RequireMfaReregistration {
                    remove: MethodType::ALL.to_vec(),
                },
                "temporary_access_pass" => Step::TemporaryAccessPass {
                    lifetime_minutes: DEFAULT_TAP_MINUTES,
                    usable_once: true,
                },
                "reset_password" => {
                    ctx.error(start, "reset_password needs options: write `reset_password: { mode: scramble }` (or temporary, keep)");
                    return None;
                }
                "add_to_group" => {
                    ctx.error(start, "add_to_group needs options: write `add_to_group: { group_id: <GUID>, expiry: 72h }`");
                    return None;
                }
                "notify" => {
                    ctx.error(start, "notify needs options: write `notify: { template: <name>, channels: [email] }`");
                    return None;
                }
                other => {
                    ctx.error(
                        start,
                        format!("unknown step `{other}`: expected one of {STEP_NAMES}"),
                    );
                    return None;
                }
            };
            Some(Checked {
                spec: StepSpec { step, when: None },
                key: start,
            })
        }
        RawStep::Map(map) => step_map(ctx, start, map),
    }
}

/// Default `temporary_access_pass.lifetime_minutes`: one hour.
pub const DEFAULT_TAP_MINUTES: u32 = 60;

fn step_map(ctx: &mut Ctx, start: Pos, m: &RawStepMap) -> Option<Checked> {
    let mut found: Vec<(&'static str, Pos)> = Vec::new();
    let mut step = None;
    if let Some(s) = &m.revoke_sessions {
        found.push(("revoke_sessions", ctx.at(s)));
        step = Some(Step::RevokeSessions);
    }
    if let Some(s) = &m.reset_password {
        found.push(("reset_password", ctx.at(s)));
        step = Some(reset_password(ctx, start, s));
    }
    if let Some(s) = &m.require_mfa_reregistration {
        found.push(("require_mfa_reregistration", ctx.at(s)));
        step = Some(reregistration(ctx, &s.value.0));
    }
    if let Some(s) = &m.temporary_access_pass {
        found.push(("temporary_access_pass", ctx.at(s)));
        step = Some(tap(ctx, &s.value.0));
    }
    if let Some(s) = &m.add_to_group {
        found.push(("add_to_group", ctx.at(s)));
        step = add_to_group(ctx, start, &s.value);
    }
    if let Some(s) = &m.confirm_compromised {
        found.push(("confirm_compromised", ctx.at(s)));
        step = Some(Step::ConfirmCompromised);
    }
    if let Some(s) = &m.notify {
        found.push(("notify", ctx.at(s)));
        step = Some(notify(ctx, &s.value));
    }
    let when = m.when.as_ref().and_then(|w| when(ctx, w));
    match found.as_slice() {
        [] => {
            ctx.error(
                start,
                format!("a step needs one action: expected one of {STEP_NAMES}"),
            );
            None
        }
        [(name, _)] => {
            let key = ctx.key(start, name);
            step.map(|step| Checked {
                spec: StepSpec { step, when },
                key,
            })
        }
        [(first, _), (second, _), ..] => {
            let pos = ctx.key(start, second);
            ctx.error(
                pos,
                format!(
                    "one step per list item: `{second}` is in the same item as `{first}`; start it with its own `- `"
                ),
            );
            None
        }
    }
}

/// Rules: `temporary` must force a change (otherwise someone else knows a lasting password);
/// `keep` must force a change (otherwise the step does nothing) and gets a warning about Graph
/// ignoring force-change flags sent without a password.
fn reset_password(ctx: &mut Ctx, start: Pos, s: &Spanned<RawResetPassword>) -> Step {
    let r = &s.value;
    let force_change = r.force_change.as_ref().is_none_or(|f| f.value);
    let require_mfa = r.require_mfa.as_ref().is_none_or(|f| f.value);
    let mode = match r.mode.value {
        RawPasswordMode::Scramble => PasswordMode::Scramble,
        RawPasswordMode::Temporary => PasswordMode::Temporary,
        RawPasswordMode::Keep => PasswordMode::Keep,
    };
    let force_pos = r
        .force_change
        .as_ref()
        .map(|f| ctx.at(f))
        .unwrap_or_else(|| ctx.at(&r.mode));
    if mode == PasswordMode::Temporary && !force_change {
        ctx.error(
            force_pos,
            "reset_password mode `temporary` needs force_change: true: a temporary password that is never changed stays known to whoever delivered or read it",
        );
    }
    if mode == PasswordMode::Keep {
        if !force_change {
            ctx.error(
                force_pos,
                "reset_password mode `keep` with force_change: false changes nothing; use force_change: true or another mode",
            );
        }
        let _ = start;
        ctx.warn(
            ctx.at(&r.mode),
            "reset_password mode `keep` sends no new password; Graph has been reported to accept a force-change flag without a password and ignore it (microsoft-graph-docs#4267): check the result on a test account, or prefer `scramble`",
        );
    }
    Step::ResetPassword {
        mode,
        force_change,
        require_mfa,
    }
}

/// Rules: `remove` names known method types, at least one, never `password`.
fn reregistration(ctx: &mut Ctx, r: &RawReregistration) -> Step {
    let Some(list) = &r.remove else {
        return Step::RequireMfaReregistration {
            remove: MethodType::ALL.to_vec(),
        };
    };
    if list.value.is_empty() {
        ctx.error(
            ctx.at(list),
            "require_mfa_reregistration.remove is empty: name the method types to remove, or leave `remove` out to remove all",
        );
    }
    let mut remove = Vec::new();
    for m in &list.value {
        if m.value == "password" {
            ctx.error(
                ctx.at(m),
                "require_mfa_reregistration cannot remove `password`: the password is not an MFA method; use reset_password",
            );
            continue;
        }
        match MethodType::parse(&m.value) {
            Some(t) if remove.contains(&t) => {
                ctx.error(ctx.at(m), format!("method `{}` is listed twice", m.value));
            }
            Some(t) => remove.push(t),
            None => ctx.error(
                ctx.at(m),
                format!(
                    "unknown method type `{}`: expected one of {}",
                    m.value,
                    MethodType::ALL.map(MethodType::as_str).join(", ")
                ),
            ),
        }
    }
    Step::RequireMfaReregistration { remove }
}

/// Rule: `lifetime_minutes` in 10..=43200 (Graph's bounds).
fn tap(ctx: &mut Ctx, t: &RawTap) -> Step {
    let lifetime_minutes = t
        .lifetime_minutes
        .as_ref()
        .and_then(|v| {
            in_range(
                ctx,
                v,
                "temporary_access_pass.lifetime_minutes",
                |n| (10..=43_200).contains(&n),
                "between 10 and 43200 (Graph's limits)",
            )
        })
        .unwrap_or(DEFAULT_TAP_MINUTES);
    Step::TemporaryAccessPass {
        lifetime_minutes,
        usable_once: t.usable_once.unwrap_or(true),
    }
}

/// Rules: `group_id` is a GUID; `expiry` is required (a temporary group membership that is never
/// removed is a permanent hole, e.g. in Conditional Access) and between 10m and 90d.
fn add_to_group(ctx: &mut Ctx, start: Pos, g: &RawAddToGroup) -> Option<Step> {
    let group_id = guid(ctx, &g.group_id, "add_to_group.group_id");
    let expiry = match &g.expiry {
        None => {
            let pos = ctx.key(start, "add_to_group");
            ctx.error(
                pos,
                "add_to_group needs an expiry (e.g. `expiry: 72h`): a membership that is never removed turns a temporary exception into a permanent one",
            );
            None
        }
        Some(e) => match parse_duration(&e.value) {
            None => {
                ctx.error(
                    ctx.at(e),
                    format!(
                        "expiry `{}` is not a duration: write a number and a unit, e.g. 30m, 72h or 7d",
                        e.value
                    ),
                );
                None
            }
            Some(d) if !(MIN_EXPIRY..=MAX_EXPIRY).contains(&d) => {
                ctx.error(
                    ctx.at(e),
                    format!("expiry `{}` must be between 10m and 90d", e.value),
                );
                None
            }
            Some(d) => Some(d),
        },
    };
    Some(Step::AddToGroup {
        group_id: group_id?,
        expiry: expiry?,
    })
}

fn notify(ctx: &mut Ctx, n: &RawNotify) -> Step {
    Step::Notify {
        template: template(ctx, &n.template),
        channels: channels(ctx, &n.channels, false),
        to: match n.to.as_ref().map(|t| t.value) {
            None | Some(RawRecipient::User) => Recipient::User,
            Some(RawRecipient::Manager) => Recipient::Manager,
        },
    }
}

/// Rule: a `when:` parses and type-checks; the error points at the column inside the
/// expression.
fn when(ctx: &mut Ctx, w: &SpStr) -> Option<Condition> {
    match condition::parse(&w.value) {
        Ok(c) => Some(c),
        Err(e) => {
            let node = ctx.at(w);
            let pos = locate_in_scalar(&ctx.src.text, node, &w.value, e.offset, e.len);
            ctx.error(pos, format!("when: {}", e.message));
            None
        }
    }
}

/// The file position of byte `offset` of a scalar's value. Exact for plain and simply-quoted
/// one-line scalars; for others (escapes, folded lines) the scalar's own position.
fn locate_in_scalar(text: &str, node: Pos, value: &str, offset: usize, len: usize) -> Pos {
    let quote = match text.as_bytes().get(node.offset) {
        Some(b'"') | Some(b'\'') => 1,
        _ => 0,
    };
    let start = node.offset + quote;
    let matches_source = text.get(start..start + value.len()) == Some(value);
    if matches_source {
        Pos {
            offset: start + offset,
            len: len.max(1),
        }
    } else {
        node
    }
}

// ---------------------------------------------------------------------------------------------
// Rules across steps.

/// Rule: a step kind appears once. Exceptions: `notify` (different template or recipient) and
/// `add_to_group` (different group); and any two steps whose `when:` exclude each other
/// (`when: has_mobile` / `when: not has_mobile`), which are alternatives, not repeats.
fn rule_duplicate_steps(ctx: &mut Ctx, steps: &[Checked]) {
    for (i, later) in steps.iter().enumerate() {
        let Some(first) = steps[..i]
            .iter()
            .find(|earlier| same_action(&earlier.spec.step, &later.spec.step))
        else {
            continue;
        };
        let exclusive = match (&first.spec.when, &later.spec.when) {
            (Some(a), Some(b)) => a.excludes(b),
            _ => false,
        };
        if exclusive {
            continue;
        }
        let what = later.spec.step.key();
        let line = ctx.line(first.key);
        let hint = if what == "notify" || what == "add_to_group" {
            "the same action twice".to_owned()
        } else {
            format!(
                "a second {what} would run it twice for the same user; to choose between two variants give them `when:` conditions that exclude each other (`when: X` and `when: not X`)"
            )
        };
        ctx.error(
            later.key,
            format!("duplicate step `{what}` (first on line {line}): {hint}"),
        );
    }
}

/// Whether two steps count as the same action for the duplicate rule.
fn same_action(a: &Step, b: &Step) -> bool {
    match (a, b) {
        (
            Step::Notify {
                template: t1,
                to: r1,
                ..
            },
            Step::Notify {
                template: t2,
                to: r2,
                ..
            },
        ) => t1 == t2 && r1 == r2,
        (Step::AddToGroup { group_id: g1, .. }, Step::AddToGroup { group_id: g2, .. }) => g1 == g2,
        _ => a.key() == b.key(),
    }
}

/// Whether a notify step can carry a secret: it does not go (only) to the user's own mailbox,
/// which an attacker may be reading. SMS, Teams, or anything to the manager qualify.
fn delivers_secret(step: &Step) -> bool {
    matches!(step, Step::Notify { channels, to, .. }
        if *to == Recipient::Manager || channels.iter().any(|c| matches!(c, Channel::Sms | Channel::Teams)))
}

/// Rule: `reset_password` with mode `temporary` and `temporary_access_pass` need a LATER
/// notify step that can carry a secret (see [`delivers_secret`]) and reaches every user the
/// step applies to (see [`covers`]); otherwise nobody legitimate learns the secret, or it lands
/// in a mailbox the attacker may read.
fn rule_temporary_secret_delivery(ctx: &mut Ctx, steps: &[Checked]) {
    for (i, s) in steps.iter().enumerate() {
        let what = match s.spec.step {
            Step::ResetPassword {
                mode: PasswordMode::Temporary,
                ..
            } => "reset_password mode `temporary`",
            Step::TemporaryAccessPass { .. } => "temporary_access_pass",
            _ => continue,
        };
        let carriers: Vec<Option<&Condition>> = steps[i + 1..]
            .iter()
            .filter(|n| delivers_secret(&n.spec.step))
            .map(|n| n.spec.when.as_ref())
            .collect();
        if carriers.is_empty() {
            ctx.error(
                s.key,
                format!("{what} needs a later notify step over sms or teams, or to: manager: the secret must not go only to the mailbox of an account that may be compromised"),
            );
        } else if !covers(s.spec.when.as_ref(), &carriers) {
            ctx.error(
                s.key,
                format!("{what} is not delivered to every user it applies to: the notify steps that can carry it (sms, teams, or to: manager) have `when:` conditions that do not cover this step's; give one the same condition as this step, or none"),
            );
        }
    }
}

/// Whether notify steps under `carriers` conditions reach every user for whom `step` holds.
/// Conservative and syntactic: a carrier without condition, with the step's own condition or
/// one of its `and`-ed parts, or two carriers whose conditions exclude each other (`X` / `not X`).
fn covers(step: Option<&Condition>, carriers: &[Option<&Condition>]) -> bool {
    let conjuncts = |c: &Condition| {
        let mut parts = Vec::new();
        let mut stack = vec![c.clone()];
        while let Some(c) = stack.pop() {
            match c {
                Condition::And(a, b) => {
                    stack.push(*a);
                    stack.push(*b);
                }
                other => parts.push(other),
            }
        }
        parts
    };
    let step_parts = step.map(conjuncts).unwrap_or_default();
    carriers.iter().any(|c| match c {
        None => true,
        Some(c) => step == Some(*c) || step_parts.contains(c),
    }) || carriers.iter().enumerate().any(|(i, a)| {
        carriers[i + 1..].iter().any(|b| match (a, b) {
            (Some(a), Some(b)) => a.excludes(b),
            _ => false,
        })
    })
}

/// Rule: `require_mfa_reregistration` together with `reset_password` mode `keep` is a conflict:
/// the old (possibly leaked) password stays valid while the MFA methods are gone, so whoever
/// knows the password registers their own methods at the forced change.
fn rule_keep_with_reregistration(ctx: &mut Ctx, steps: &[Checked]) {
    let keep = steps.iter().find(|s| {
        matches!(
            s.spec.step,
            Step::ResetPassword {
                mode: PasswordMode::Keep,
                ..
            }
        )
    });
    let Some(keep) = keep else { return };
    let line = ctx.line(keep.key);
    for s in steps {
        if matches!(s.spec.step, Step::RequireMfaReregistration { .. }) {
            ctx.error(
                s.key,
                format!("require_mfa_reregistration conflicts with reset_password mode `keep` (line {line}): with the old password still valid and the MFA methods removed, whoever knows the password registers their own; use mode scramble or temporary"),
            );
        }
    }
}

/// Rule: a notify step must not come before a `reset_password` or `temporary_access_pass`
/// step: it would announce (or fail to carry) a reset that has not happened, and warn an
/// attacker reading the mailbox before the reset lands. `revoke_sessions` before
/// `reset_password` is allowed (see PLAYBOOKS.md).
fn rule_notify_before_reset(ctx: &mut Ctx, steps: &[Checked]) {
    for (i, s) in steps.iter().enumerate() {
        if !matches!(s.spec.step, Step::Notify { .. }) {
            continue;
        }
        let later_reset = steps[i + 1..].iter().find(|r| {
            matches!(
                r.spec.step,
                Step::ResetPassword { .. } | Step::TemporaryAccessPass { .. }
            )
        });
        if let Some(r) = later_reset {
            let line = ctx.line(r.key);
            ctx.error(
                s.key,
                format!(
                    "notify comes before the {} step it announces (line {line}): move it after",
                    r.spec.step.key()
                ),
            );
        }
    }
}

/// The methods self-service password reset verifies users with.
const SSPR_METHODS: [MethodType; 3] = [
    MethodType::Phone,
    MethodType::Email,
    MethodType::MicrosoftAuthenticator,
];

/// Rule (warning): `scramble` relies on self-service password reset, which verifies users with
/// their phone, email or Authenticator; removing those too, without issuing a
/// `temporary_access_pass`, leaves users no self-service way back in (every one of them calls
/// the helpdesk).
fn rule_scramble_keeps_a_way_back(ctx: &mut Ctx, steps: &[Checked]) {
    let scrambles = steps.iter().any(|s| {
        matches!(
            s.spec.step,
            Step::ResetPassword {
                mode: PasswordMode::Scramble,
                ..
            }
        )
    });
    let tap = steps
        .iter()
        .any(|s| matches!(s.spec.step, Step::TemporaryAccessPass { .. }));
    if !scrambles || tap {
        return;
    }
    for s in steps {
        if let Step::RequireMfaReregistration { remove } = &s.spec.step
            && SSPR_METHODS.iter().all(|m| remove.contains(m))
        {
            ctx.warn(
                s.key,
                "require_mfa_reregistration removes phone, email and microsoftAuthenticator while reset_password scrambles: users recover a scrambled password through SSPR, which needs those methods; without a temporary_access_pass every user will need the helpdesk",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Loaded, load_str};
    use super::*;

    const HEAD: &str =
        "name: t\ntargets:\n  - all_users: {}\nguards: { max_fraction_of_tenant: 1.0 }\n";

    /// Load `HEAD` + `rest`; the errors as (line, column, message).
    fn errors(rest: &str) -> Vec<(u32, u32, String)> {
        let text = format!("{HEAD}{rest}");
        match load_str("t.yaml", &text) {
            Ok(_) => Vec::new(),
            Err(d) => d
                .errors
                .iter()
                .map(|e| (e.line, e.column, e.message.clone()))
                .collect(),
        }
    }

    fn ok(rest: &str) -> Loaded {
        let text = format!("{HEAD}{rest}");
        load_str("t.yaml", &text).unwrap_or_else(|d| panic!("{:#?}", d.errors))
    }

    fn one_error(rest: &str) -> (u32, u32, String) {
        let e = errors(rest);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.into_iter().next().unwrap()
    }

    #[test]
    fn valid_minimal_playbook_builds() {
        let l = ok("steps:\n  - revoke_sessions\n  - reset_password: { mode: scramble }\n");
        assert_eq!(l.playbook.steps.len(), 2);
        assert_eq!(l.playbook.targets, vec![Target::AllUsers]);
        assert_eq!(l.playbook.guards.max_fraction_of_tenant, 1.0);
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn name_is_a_slug() {
        let e = errors("steps: [revoke_sessions]\n").len();
        assert_eq!(e, 0);
        let l = load_str(
            "t.yaml",
            "name: 'a b'\ntargets: [all_users: {}]\nsteps: [revoke_sessions]\n",
        )
        .unwrap_err();
        assert_eq!((l.errors[0].line, l.errors[0].column), (1, 7));
        assert!(l.errors[0].message.contains("not a slug"));
    }

    #[test]
    fn empty_steps() {
        let (l, c, m) = one_error("steps: []\n");
        assert_eq!((l, c), (5, 8));
        assert!(m.contains("steps is empty"), "{m}");
    }

    #[test]
    fn empty_targets() {
        let e = load_str("t.yaml", "name: t\ntargets: []\nsteps: [revoke_sessions]\n").unwrap_err();
        assert_eq!((e.errors[0].line, e.errors[0].column), (2, 10));
        assert!(e.errors[0].message.contains("targets is empty"));
    }

    #[test]
    fn guard_ranges() {
        let e = load_str(
            "t.yaml",
            "name: t\ntargets: [all_users: {}]\nsteps: [revoke_sessions]\nguards:\n  max_users: 0\n  max_fraction_of_tenant: 0\n  stop_when_error_rate_above: 1.5\n  approvals_required: 11\n",
        )
        .unwrap_err();
        let got: Vec<_> = e.errors.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(got, vec![(5, 14), (6, 27), (7, 31), (8, 23)]);
        assert!(
            e.errors[1]
                .message
                .contains("max_fraction_of_tenant must be in (0, 1]")
        );
        assert!(e.errors[2].message.contains("found 1.5"));
    }

    #[test]
    fn fraction_of_one_is_allowed_and_error_rate_zero_is_allowed() {
        ok("steps: [revoke_sessions]\nrate_limit: { batch_size: 20 }\n");
        let l = load_str("t.yaml", "name: t\ntargets: [all_users: {}]\nsteps: [revoke_sessions]\nguards: { max_fraction_of_tenant: 1, stop_when_error_rate_above: 0 }\n").unwrap();
        assert_eq!(l.playbook.guards.stop_when_error_rate_above, 0.0);
    }

    #[test]
    fn rate_limit_ranges() {
        let e = errors(
            "steps: [revoke_sessions]\nrate_limit: { max_writes_per_second: 25, max_in_flight: 0, batch_size: 21 }\n",
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert_eq!((e[0].0, e[0].1), (6, 38));
        assert!(e[2].2.contains("batch_size must be between 1 and 20"));
    }

    #[test]
    fn tap_lifetime_range() {
        let (l, c, m) = one_error(
            "steps:\n  - temporary_access_pass: { lifetime_minutes: 5 }\n  - notify: { template: tap, channels: [sms] }\n",
        );
        assert_eq!((l, c), (6, 48));
        assert!(
            m.contains("lifetime_minutes must be between 10 and 43200"),
            "{m}"
        );
    }

    #[test]
    fn temporary_password_needs_out_of_band_notify() {
        let (l, c, m) = one_error(
            "steps:\n  - reset_password: { mode: temporary }\n  - notify: { template: t, channels: [email] }\n",
        );
        assert_eq!((l, c), (6, 5));
        assert!(
            m.contains("needs a later notify step over sms or teams, or to: manager"),
            "{m}"
        );
        ok(
            "steps:\n  - reset_password: { mode: temporary }\n  - notify: { template: t, channels: [sms] }\n",
        );
        ok(
            "steps:\n  - reset_password: { mode: temporary }\n  - notify: { template: t, channels: [email], to: manager }\n",
        );
    }

    #[test]
    fn temporary_password_must_reach_every_user_it_resets() {
        // Reset for everyone, SMS only for users with a mobile: the others never get it.
        let (l, c, m) = one_error(
            "steps:\n  - reset_password: { mode: temporary }\n  - notify: { template: t, channels: [sms] }\n    when: has_mobile\n",
        );
        assert_eq!((l, c), (6, 5));
        assert!(
            m.contains("is not delivered to every user it applies to"),
            "{m}"
        );
        // Same condition, a conjunct of it, or two complementary carriers: covered.
        ok(
            "steps:\n  - reset_password: { mode: temporary }\n    when: has_mobile and not synced\n  - notify: { template: t, channels: [sms] }\n    when: has_mobile\n",
        );
        ok(
            "steps:\n  - temporary_access_pass\n  - notify: { template: t, channels: [sms] }\n    when: has_mobile\n  - notify: { template: m, channels: [teams], to: manager }\n    when: not has_mobile\n",
        );
        ok(
            "steps:\n  - temporary_access_pass:\n    when: risk_level >= medium\n  - notify: { template: t, channels: [teams] }\n    when: risk_level >= medium\n",
        );
    }

    #[test]
    fn tap_needs_out_of_band_notify() {
        let (l, c, m) = one_error("steps:\n  - temporary_access_pass\n");
        assert_eq!((l, c), (6, 5));
        assert!(
            m.starts_with("temporary_access_pass needs a later notify"),
            "{m}"
        );
    }

    #[test]
    fn add_to_group_needs_expiry() {
        let (l, c, m) = one_error(
            "steps:\n  - add_to_group: { group_id: 0f7d3c52-9e4a-4c1b-a2f0-6d5e8b1c9a07 }\n",
        );
        assert_eq!((l, c), (6, 5));
        assert!(m.contains("add_to_group needs an expiry"), "{m}");
        let (l, c, m) = one_error(
            "steps:\n  - add_to_group: { group_id: 0f7d3c52-9e4a-4c1b-a2f0-6d5e8b1c9a07, expiry: 3 weeks }\n",
        );
        assert_eq!((l, c), (6, 77));
        assert!(m.contains("is not a duration"), "{m}");
        let l = ok(
            "steps:\n  - add_to_group: { group_id: 0f7d3c52-9e4a-4c1b-a2f0-6d5e8b1c9a07, expiry: 7d }\n",
        );
        assert!(
            matches!(l.playbook.steps[0].step, Step::AddToGroup { expiry, .. } if expiry == Duration::from_secs(7 * 86_400))
        );
    }

    #[test]
    fn duplicate_steps() {
        let (l, c, m) = one_error(
            "steps:\n  - revoke_sessions\n  - confirm_compromised\n  - revoke_sessions\n",
        );
        assert_eq!((l, c), (8, 5));
        assert!(
            m.contains("duplicate step `revoke_sessions` (first on line 6)"),
            "{m}"
        );
    }

    #[test]
    fn alternative_steps_with_exclusive_conditions_are_not_duplicates() {
        ok(
            "steps:\n  - reset_password: { mode: temporary }\n    when: has_mobile\n  - reset_password: { mode: scramble }\n    when: not has_mobile\n  - notify: { template: t, channels: [sms] }\n    when: has_mobile\n",
        );
        let e = errors(
            "steps:\n  - reset_password: { mode: scramble }\n    when: has_mobile\n  - reset_password: { mode: scramble }\n    when: synced\n",
        );
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].0, e[0].1), (8, 5));
    }

    #[test]
    fn conflicting_keep_and_reregistration() {
        let e =
            errors("steps:\n  - reset_password: { mode: keep }\n  - require_mfa_reregistration\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!((e[0].0, e[0].1), (7, 5));
        assert!(
            e[0].2
                .contains("conflicts with reset_password mode `keep` (line 6)")
        );
    }

    #[test]
    fn keep_without_force_change_and_temporary_without_force_change() {
        let e = errors("steps:\n  - reset_password: { mode: keep, force_change: false }\n");
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].0, e[0].1), (6, 49));
        let e = errors(
            "steps:\n  - reset_password: { mode: temporary, force_change: false }\n  - notify: { template: t, channels: [sms] }\n",
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].2.contains("needs force_change: true"));
    }

    #[test]
    fn keep_is_a_warning_not_an_error() {
        let l = ok("steps:\n  - reset_password: { mode: keep }\n");
        assert_eq!(l.warnings.len(), 1);
        let w = &l.warnings[0];
        assert_eq!((w.line, w.column), (6, 29));
        assert!(
            w.message.contains("Graph has been reported"),
            "{}",
            w.message
        );
    }

    #[test]
    fn scramble_without_a_way_back_is_a_warning() {
        let l =
            ok("steps:\n  - reset_password: { mode: scramble }\n  - require_mfa_reregistration\n");
        assert_eq!(l.warnings.len(), 1);
        assert_eq!((l.warnings[0].line, l.warnings[0].column), (7, 5));
        assert!(l.warnings[0].message.contains("SSPR"));
        let l = ok(
            "steps:\n  - reset_password: { mode: scramble }\n  - require_mfa_reregistration: { remove: [softwareOath] }\n",
        );
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn notify_before_reset() {
        let (l, c, m) = one_error(
            "steps:\n  - notify: { template: t, channels: [email] }\n  - reset_password: { mode: scramble }\n",
        );
        assert_eq!((l, c), (6, 5));
        assert!(
            m.contains("notify comes before the reset_password step it announces (line 7)"),
            "{m}"
        );
    }

    #[test]
    fn revoke_before_reset_is_fine() {
        ok("steps:\n  - revoke_sessions\n  - reset_password: { mode: scramble }\n");
    }

    #[test]
    fn handling_must_be_manual() {
        let (l, c, m) =
            one_error("steps: [revoke_sessions]\nprivileged: { handling: automatic }\n");
        assert_eq!((l, c), (6, 25));
        assert!(m.contains("privileged.handling must be `manual`, found `automatic`"));
    }

    #[test]
    fn guids_are_checked() {
        let e = errors(
            "steps: [revoke_sessions]\nprivileged:\n  roles: [62e90394-69f5-4237-9190-012177145e10, not-a-guid]\nexclude:\n  groups: [svc-accounts]\n",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!((e[0].0, e[0].1), (7, 49));
        assert!(
            e[0].2
                .contains("role template id `not-a-guid` is not a GUID")
        );
        assert_eq!((e[1].0, e[1].1), (9, 12));
        let (_, _, m) = one_error("steps: [revoke_sessions]\nprivileged: { roles: everything }\n");
        assert!(m.contains("must be `critical` or a list"));
    }

    #[test]
    fn password_is_never_an_mfa_method() {
        let (l, c, m) = one_error(
            "steps:\n  - reset_password: { mode: scramble }\n  - require_mfa_reregistration: { remove: [phone, password] }\n",
        );
        assert_eq!((l, c), (7, 51));
        assert!(m.contains("cannot remove `password`"));
        let (_, _, m) = one_error("steps:\n  - require_mfa_reregistration: { remove: [sms] }\n");
        assert!(m.contains("unknown method type `sms`"));
    }

    #[test]
    fn when_errors_point_inside_the_expression() {
        let (l, c, m) =
            one_error("steps:\n  - revoke_sessions:\n    when: has_mobile and risk_levl >= high\n");
        assert_eq!((l, c), (7, 26));
        assert!(m.contains("unknown attribute `risk_levl`"), "{m}");
        let (l, c, _) =
            one_error("steps:\n  - revoke_sessions:\n    when: \"department in ['HR' 'IT']\"\n");
        assert_eq!((l, c), (7, 32));
    }

    #[test]
    fn when_is_parsed_into_the_step() {
        let l = ok("steps:\n  - revoke_sessions:\n    when: risk_level >= medium\n");
        assert!(l.playbook.steps[0].when.is_some());
    }

    #[test]
    fn step_item_needs_exactly_one_action() {
        let (l, c, m) = one_error("steps:\n  - revoke_sessions:\n    confirm_compromised:\n");
        assert_eq!((l, c), (7, 5));
        assert!(m.contains("one step per list item"), "{m}");
        let (l, c, m) = one_error("steps:\n  - when: has_mobile\n");
        assert_eq!((l, c), (6, 5));
        assert!(m.contains("a step needs one action"), "{m}");
        let (_, _, m) = one_error("steps:\n  - reset_password\n");
        assert!(m.contains("reset_password needs options"));
        let (l, c, m) = one_error("steps:\n  - revoke_session\n");
        assert_eq!((l, c), (6, 5));
        assert!(m.contains("unknown step `revoke_session`"));
    }

    #[test]
    fn channels_and_templates() {
        let e = errors(
            "steps:\n  - notify: { template: ../etc/passwd, channels: [pigeon, webhook] }\n",
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].2.contains("is not a template name"));
        assert!(e[1].2.contains("unknown channel `pigeon`"));
        assert!(e[2].2.contains("`webhook` is for run-level"));
        let e = errors(
            "steps: [revoke_sessions]\ncommunications:\n  soc_summary: { template: soc-summary, channels: [] }\n",
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].2.contains("channels is empty"));
    }

    #[test]
    fn exclude_rules() {
        let e = errors(
            "steps: [revoke_sessions]\nexclude:\n  break_glass: [bg-01@contoso.com, bob]\n  upn_patterns: ['svc-*@contoso.com', '*']\n",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!((e[0].0, e[0].1), (7, 36));
        assert!(e[1].2.contains("matches every user"));
    }

    #[test]
    fn targets_rules() {
        let e = load_str("t.yaml", "name: t\ntargets:\n  - group: { id: abc }\n  - risky_users: { levels: [none] }\n  - filter: ''\nsteps: [revoke_sessions]\n").unwrap_err();
        let got: Vec<_> = e.errors.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(got, vec![(3, 18), (4, 29), (5, 13)]);
        let l = load_str("dir/t.yaml", "name: t\ntargets:\n  - csv: { path: dump.csv }\n  - all_users:\nsteps: [revoke_sessions]\n").unwrap();
        assert_eq!(
            l.playbook.targets[0],
            Target::Csv {
                path: PathBuf::from("dir/dump.csv"),
                column: "upn".into()
            }
        );
        assert_eq!(l.warnings.len(), 1);
        assert_eq!((l.warnings[0].line, l.warnings[0].column), (4, 5));
    }

    #[test]
    fn all_semantic_errors_of_a_file_in_one_run() {
        let e = errors(
            "steps:\n  - notify: { template: t, channels: [email] }\n  - reset_password: { mode: temporary }\nrate_limit: { batch_size: 0 }\nprivileged: { handling: auto }\n",
        );
        assert!(e.len() >= 4, "{e:#?}");
    }

    #[test]
    fn trigger_incident_is_a_slug() {
        let (l, c, m) = one_error(
            "steps: [revoke_sessions]\ntrigger: { incident: 'credential dump', severity: high }\n",
        );
        assert_eq!((l, c), (6, 22));
        assert!(
            m.contains("trigger.incident `credential dump` is not a slug"),
            "{m}"
        );
        let l = ok(
            "steps: [revoke_sessions]\ntrigger: { incident: credential_dump, severity: high }\n",
        );
        assert_eq!(l.playbook.trigger.unwrap().severity, super::Severity_::High);
    }

    #[test]
    fn expiry_bounds() {
        let g = "0f7d3c52-9e4a-4c1b-a2f0-6d5e8b1c9a07";
        let (_, _, m) = one_error(&format!(
            "steps:\n  - add_to_group: {{ group_id: {g}, expiry: 5m }}\n"
        ));
        assert!(m.contains("must be between 10m and 90d"), "{m}");
        let (_, _, m) = one_error(&format!(
            "steps:\n  - add_to_group: {{ group_id: {g}, expiry: 91d }}\n"
        ));
        assert!(m.contains("must be between 10m and 90d"), "{m}");
        ok(&format!(
            "steps:\n  - add_to_group: {{ group_id: {g}, expiry: 90d }}\n"
        ));
    }

    #[test]
    fn empty_csv_path_and_role_list() {
        let e = load_str(
            "t.yaml",
            "name: t\ntargets:\n  - csv: { path: '', column: ' ' }\nsteps: [revoke_sessions]\n",
        )
        .unwrap_err();
        let got: Vec<_> = e
            .errors
            .iter()
            .map(|d| (d.line, d.column, d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(3, 18, "csv.path is empty"), (3, 30, "csv.column is empty")]
        );
        let (l, c, m) = one_error("steps: [revoke_sessions]\nprivileged: { roles: [] }\n");
        assert_eq!((l, c), (6, 22));
        assert!(m.contains("privileged.roles is an empty list"), "{m}");
    }

    #[test]
    fn repeated_notify_and_group_steps() {
        let g = "0f7d3c52-9e4a-4c1b-a2f0-6d5e8b1c9a07";
        ok(
            "steps:\n  - revoke_sessions\n  - notify: { template: a, channels: [email] }\n  - notify: { template: a, channels: [email], to: manager }\n  - notify: { template: b, channels: [sms] }\n",
        );
        let (l, c, m) = one_error(
            "steps:\n  - revoke_sessions\n  - notify: { template: a, channels: [email] }\n  - notify: { template: a, channels: [sms] }\n",
        );
        assert_eq!((l, c), (8, 5));
        assert!(
            m.contains("duplicate step `notify` (first on line 7): the same action twice"),
            "{m}"
        );
        let (l, _, m) = one_error(&format!(
            "steps:\n  - add_to_group: {{ group_id: {g}, expiry: 1h }}\n  - add_to_group: {{ group_id: {g}, expiry: 2h }}\n"
        ));
        assert_eq!(l, 7);
        assert!(m.contains("duplicate step `add_to_group`"), "{m}");
    }

    #[test]
    fn defaults_are_filled_in() {
        let l = load_str("t.yaml", "name: t\ntargets: [risky_users]\nsteps:\n  - require_mfa_reregistration:\n  - reset_password: { mode: scramble }\n  - temporary_access_pass:\n  - notify: { template: t, channels: [teams] }\n").unwrap();
        let p = &l.playbook;
        assert_eq!(
            p.targets,
            vec![Target::RiskyUsers {
                levels: vec![RiskLevel::High]
            }]
        );
        assert_eq!(p.guards, Guards::default());
        assert_eq!(p.privileged, Privileged::default());
        assert_eq!(p.disabled_users, DisabledUsers::Skip);
        assert_eq!(
            p.steps[0].step,
            Step::RequireMfaReregistration {
                remove: MethodType::ALL.to_vec()
            }
        );
        assert_eq!(
            p.steps[1].step,
            Step::ResetPassword {
                mode: PasswordMode::Scramble,
                force_change: true,
                require_mfa: true
            }
        );
        assert_eq!(
            p.steps[2].step,
            Step::TemporaryAccessPass {
                lifetime_minutes: 60,
                usable_once: true
            }
        );
        assert_eq!(
            p.steps[3].step,
            Step::Notify {
                template: "t".into(),
                channels: vec![Channel::Teams],
                to: Recipient::User
            }
        );
        // TAP present: no SSPR warning even though every method is removed.
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("72h"), Some(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }
}
