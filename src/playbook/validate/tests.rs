//! Unit tests of the semantic rules: each rule on a small playbook, asserting the position.

use super::super::{Loaded, load_str};
use super::*;
use std::path::PathBuf;
use std::time::Duration;

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
    let l = ok("steps: [revoke_sessions]\nrate_limit: { batch_size: 20 }\n");
    // Accepted, and said to change nothing.
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].message.contains("batch_size has no effect"));
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
        m.contains("needs a later notify step over sms, or over email to: manager"),
        "{m}"
    );
    ok(
        "steps:\n  - reset_password: { mode: temporary }\n  - notify: { template: t, channels: [sms] }\n",
    );
    ok(
        "steps:\n  - reset_password: { mode: temporary }\n  - notify: { template: t, channels: [email], to: manager }\n",
    );
    ok(
        "steps:\n  - reset_password: { mode: temporary }\n  - notify: { template: t, channels: [sms], to: manager }\n",
    );
}

/// A Teams card is posted into a chat or channel by a flow: not a channel to one verified
/// person, so it carries no secret, to the user or to the manager.
#[test]
fn teams_does_not_carry_a_secret() {
    for to in ["user", "manager"] {
        let (l, c, m) = one_error(&format!(
            "steps:\n  - temporary_access_pass\n  - notify: {{ template: t, channels: [teams], to: {to} }}\n"
        ));
        assert_eq!((l, c), (6, 5), "{to}");
        assert!(m.contains("nor to a Teams chat or channel"), "{m}");
    }
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
        "steps:\n  - temporary_access_pass\n  - notify: { template: t, channels: [sms] }\n    when: has_mobile\n  - notify: { template: m, channels: [email], to: manager }\n    when: not has_mobile\n",
    );
    ok(
        "steps:\n  - temporary_access_pass:\n    when: risk_level >= medium\n  - notify: { template: t, channels: [sms] }\n    when: risk_level >= medium\n",
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
    let (l, c, m) =
        one_error("steps:\n  - add_to_group: { group_id: 0f7d3c52-9e4a-4c1b-a2f0-6d5e8b1c9a07 }\n");
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
    let (l, c, m) =
        one_error("steps:\n  - revoke_sessions\n  - confirm_compromised\n  - revoke_sessions\n");
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
    let e = errors("steps:\n  - reset_password: { mode: keep }\n  - require_mfa_reregistration\n");
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
    let l = ok("steps:\n  - reset_password: { mode: scramble }\n  - require_mfa_reregistration\n");
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
    let (l, c, m) = one_error("steps: [revoke_sessions]\nprivileged: { handling: automatic }\n");
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
    let (l, c, m) =
        one_error("steps:\n  - notify: { template: t, channels: [sms] }\n    revoke_sessions:\n");
    assert_eq!((l, c), (7, 5));
    assert!(
        m.contains("`revoke_sessions` is in the same item as `notify`"),
        "{m}"
    );
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
    let e =
        errors("steps:\n  - notify: { template: ../etc/passwd, channels: [pigeon, webhook] }\n");
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
    let l =
        ok("steps: [revoke_sessions]\ntrigger: { incident: credential_dump, severity: high }\n");
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
    let l = load_str("t.yaml", "name: t\ntargets: [risky_users]\nsteps:\n  - require_mfa_reregistration:\n  - reset_password: { mode: scramble }\n  - temporary_access_pass:\n  - notify: { template: t, channels: [sms] }\n").unwrap();
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
            channels: vec![Channel::Sms],
            to: Recipient::User,
            out_of_band: false,
        }
    );
    // TAP present: no SSPR warning even though every method is removed.
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn step_count_is_bounded() {
    let many = "  - revoke_sessions\n".repeat(101);
    let (l, c, m) = one_error(&format!("steps:\n{many}"));
    assert_eq!((l, c), (6, 3));
    assert!(m.contains("101 steps is more than the 100"), "{m}");
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
