//! Steps: each list item becomes a [`StepSpec`] (one action, its options, its `when:`),
//! then the rules across steps run ([`super::step_rules`]).

use serde_saphyr::Spanned;

use super::super::condition::{self, Condition};
use super::super::model::*;
use super::super::raw::*;
use super::step_rules::*;
use super::{Ctx, MAX_EXPIRY, MIN_EXPIRY, Pos, channels, guid, in_range, parse_duration, template};

/// A checked step with the positions the cross-step rules point at.
#[derive(Debug)]
pub(super) struct Checked {
    pub(super) spec: StepSpec,
    /// The step key (`reset_password`) in the file.
    pub(super) key: Pos,
}

/// Every step and the rules across steps.
pub(super) fn steps(ctx: &mut Ctx, list: &SpList<RawStep>) -> Vec<Checked> {
    if list.value.is_empty() {
        ctx.error(
            ctx.at(list),
            "steps is empty: the playbook would do nothing; add at least one step",
        );
    }
    if list.value.len() > MAX_STEPS {
        ctx.error(
            ctx.at(list),
            format!(
                "{} steps is more than the {MAX_STEPS} a playbook may have",
                list.value.len()
            ),
        );
        return Vec::new();
    }
    let mut checked: Vec<Checked> = Vec::new();
    for item in &list.value {
        let Some(c) = step(ctx, item) else { continue };
        match c.spec.step {
            Step::ResetPassword {
                mode: PasswordMode::Temporary,
                ..
            } => ctx.secrets_before.0 = true,
            Step::TemporaryAccessPass { .. } => ctx.secrets_before.1 = true,
            _ => {}
        }
        checked.push(c);
    }
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

/// Most steps a playbook may have (the rules across steps compare every pair).
const MAX_STEPS: usize = 100;

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
        step = Some(reset_password(ctx, s));
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
    // In file order, so that "the second" key is the one written second.
    found.sort_by_key(|(_, pos)| pos.offset);
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
fn reset_password(ctx: &mut Ctx, s: &Spanned<RawResetPassword>) -> Step {
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
    let template = template(ctx, &n.template);
    let channels = channels(ctx, &n.channels, false);
    let to = match n.to.as_ref().map(|t| t.value) {
        None | Some(RawRecipient::User) => Recipient::User,
        Some(RawRecipient::Manager) => Recipient::Manager,
    };
    let (temporary_password_before, access_pass_before) = ctx.secrets_before;
    let purpose = TemplatePurpose::Notice {
        to,
        temporary_password_before,
        access_pass_before,
    };
    ctx.use_template(&n.template, &channels, purpose);
    Step::Notify {
        template,
        channels,
        to,
        out_of_band: n.out_of_band.as_ref().is_some_and(|b| b.value),
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
