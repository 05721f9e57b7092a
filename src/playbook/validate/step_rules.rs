//! Rules across steps: duplicates, conflicts, order, and delivery of secrets.

use super::super::condition::Condition;
use super::super::model::*;
use super::Ctx;
use super::steps::Checked;

/// Rule: a step kind appears once. Exceptions: `notify` (different template or recipient) and
/// `add_to_group` (different group); and any two steps whose `when:` exclude each other
/// (`when: has_mobile` / `when: not has_mobile`), which are alternatives, not repeats.
pub(super) fn rule_duplicate_steps(ctx: &mut Ctx, steps: &[Checked]) {
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

/// Whether a notify step can carry a secret to one verified person: an SMS to the user's or
/// the manager's mobile from the directory, or mail to the manager. Not the user's own mailbox
/// (an attacker may be reading it), and not Teams: a card is posted by a flow into a chat or
/// channel, which is not a channel to one verified person.
fn delivers_secret(step: &Step) -> bool {
    matches!(step, Step::Notify { channels, to, .. }
        if channels.contains(&Channel::Sms)
            || (*to == Recipient::Manager && channels.contains(&Channel::Email)))
}

/// Rule: `reset_password` with mode `temporary` and `temporary_access_pass` need a LATER
/// notify step that can carry a secret (see [`delivers_secret`]) and reaches every user the
/// step applies to (see [`covers`]); otherwise nobody legitimate learns the secret, or it lands
/// in a mailbox the attacker may read.
pub(super) fn rule_temporary_secret_delivery(ctx: &mut Ctx, steps: &[Checked]) {
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
                format!("{what} needs a later notify step over sms, or over email to: manager: the secret must not go only to the mailbox of an account that may be compromised, nor to a Teams chat or channel"),
            );
        } else if !covers(s.spec.when.as_ref(), &carriers) {
            ctx.error(
                s.key,
                format!("{what} is not delivered to every user it applies to: the notify steps that can carry it (sms, or email to: manager) have `when:` conditions that do not cover this step's; give one the same condition as this step, or none"),
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
pub(super) fn rule_keep_with_reregistration(ctx: &mut Ctx, steps: &[Checked]) {
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
pub(super) fn rule_notify_before_reset(ctx: &mut Ctx, steps: &[Checked]) {
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
pub(super) fn rule_scramble_keeps_a_way_back(ctx: &mut Ctx, steps: &[Checked]) {
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
