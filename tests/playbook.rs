//! Integration tests of the playbook language through the real binary: `resetctl validate`
//! on broken fixtures (each pinned to its exact `FILE:LINE:COL` and a message naming the
//! problem), the ready playbooks, `--output json`, and several errors reported in one run.

use crate::util::{code, resetctl, resetctl_in, stderr, stdout};

const BAD: &str = "tests/fixtures/playbooks/bad";

/// Validate one broken fixture: exit 1, and the FIRST stderr line is exactly
/// `FILE:LINE:COL: ...` containing `needle`.
fn assert_bad(fixture: &str, line_col: &str, needle: &str) {
    let file = format!("{BAD}/{fixture}");
    let out = resetctl(&["validate", &file]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{file}: expected exit 1\n{err}");
    assert_eq!(
        stdout(&out),
        "",
        "{file}: nothing on stdout for an invalid file"
    );
    let first = err
        .lines()
        .find(|l| !l.contains(": warning: "))
        .unwrap_or_default();
    let prefix = format!("{file}:{line_col}: ");
    assert!(
        first.starts_with(&prefix),
        "{file}: expected `{prefix}...`, got:\n{err}"
    );
    assert!(
        first.contains(needle),
        "{file}: expected the message to name `{needle}`, got:\n{first}"
    );
}

macro_rules! bad {
    ($($test:ident: $fixture:literal at $pos:literal says $needle:literal;)*) => {
        $(
            #[test]
            fn $test() {
                assert_bad($fixture, $pos, $needle);
            }
        )*
    };
}

bad! {
    // YAML syntax
    syntax_unclosed_bracket: "syntax-unclosed-bracket.yaml" at "4:8" says "unclosed bracket '['";
    syntax_unclosed_quote: "syntax-unclosed-quote.yaml" at "1:7" says "unclosed quote";
    syntax_bad_indent: "syntax-bad-indent.yaml" at "6:3" says "block collection";
    tab_indentation: "tab-indentation.yaml" at "5:2" says "tab character in indentation";
    empty_file: "empty-file.yaml" at "1:1" says "playbook is empty";
    // unknown keys at several depths
    unknown_key_top_level: "unknown-key-top.yaml" at "6:1" says "unknown field `gaurds`";
    unknown_key_in_guards: "unknown-key-guards.yaml" at "8:3" says "unknown field `max_user`, expected one of max_users";
    unknown_key_in_exclude: "unknown-key-exclude.yaml" at "10:3" says "unknown field `upns`";
    unknown_key_in_target: "unknown-key-target.yaml" at "3:28" says "unknown field `colum`, expected one of path, column";
    unknown_key_in_step_options: "unknown-key-step-options.yaml" at "6:39" says "unknown field `force`, expected one of mode, force_change, require_mfa";
    unknown_key_in_step_item: "unknown-key-step-item.yaml" at "7:5" says "unknown field `wen`";
    unknown_step: "unknown-step.yaml" at "6:5" says "unknown step `revoke_session`";
    unknown_target_kind: "unknown-target-kind.yaml" at "3:5" says "unknown variant `everyone`";
    // wrong types
    wrong_type_number: "wrong-type-number.yaml" at "5:14" says "`max_users` expects a whole number (0 or more), found `lots`";
    wrong_type_bool: "wrong-type-bool.yaml" at "8:21" says "`include_eligible` expects true or false, found `maybe`";
    wrong_type_list: "wrong-type-list.yaml" at "5:8" says "`steps` expects a list";
    wrong_enum_value: "wrong-enum-mode.yaml" at "6:29" says "unknown variant `random`, expected one of scramble, temporary, keep";
    missing_required_key: "missing-steps.yaml" at "1:1" says "missing key `steps`";
    // duplicate keys
    duplicate_key_top_level: "duplicate-key-top.yaml" at "7:1" says "duplicate key `name`";
    duplicate_key_nested: "duplicate-key-nested.yaml" at "9:3" says "duplicate key `max_users`";
    // semantic rules
    empty_targets: "empty-targets.yaml" at "2:10" says "targets is empty";
    empty_steps: "empty-steps.yaml" at "5:8" says "steps is empty";
    fraction_out_of_range: "fraction-out-of-range.yaml" at "7:27" says "max_fraction_of_tenant must be in (0, 1]";
    error_rate_out_of_range: "error-rate-out-of-range.yaml" at "8:31" says "stop_when_error_rate_above must be in [0, 1]";
    tap_lifetime_out_of_range: "tap-lifetime.yaml" at "6:48" says "lifetime_minutes must be between 10 and 43200";
    batch_size_out_of_range: "batch-size.yaml" at "8:15" says "batch_size must be between 1 and 20";
    temporary_password_without_notify: "temporary-without-notify.yaml" at "7:5" says "needs a later notify step over sms, or over email to: manager";
    temporary_password_to_own_mailbox: "temporary-email-only.yaml" at "6:5" says "needs a later notify step over sms, or over email to: manager";
    temporary_password_not_delivered_to_everyone: "temporary-not-delivered-to-all.yaml" at "7:5" says "is not delivered to every user it applies to";
    temporary_password_without_force_change: "temporary-no-force-change.yaml" at "6:54" says "needs force_change: true";
    add_to_group_without_expiry: "add-to-group-no-expiry.yaml" at "7:5" says "add_to_group needs an expiry";
    add_to_group_bad_expiry: "add-to-group-bad-expiry.yaml" at "6:77" says "expiry `forever` is not a duration";
    duplicate_step: "duplicate-step.yaml" at "8:5" says "duplicate step `revoke_sessions` (first on line 6)";
    two_password_resets: "two-reset-password.yaml" at "7:5" says "duplicate step `reset_password`";
    conflicting_keep_and_reregistration: "conflicting-keep-reregistration.yaml" at "7:5" says "conflicts with reset_password mode `keep`";
    notify_before_reset: "notify-before-reset.yaml" at "6:5" says "notify comes before the reset_password step it announces (line 7)";
    handling_not_manual: "handling-not-manual.yaml" at "9:13" says "privileged.handling must be `manual`, found `automatic`";
    role_id_not_a_guid: "bad-role-guid.yaml" at "8:49" says "role template id `global-admin` is not a GUID";
    group_id_not_a_guid: "bad-group-guid.yaml" at "3:18" says "group.id `finance-team` is not a GUID";
    break_glass_not_an_account: "break-glass-not-an-account.yaml" at "8:36" says "break_glass entry `breakglass`";
    password_is_not_an_mfa_method: "remove-password.yaml" at "8:23" says "cannot remove `password`";
    // when: conditions, column inside the expression
    when_unknown_attribute: "when-unknown-attribute.yaml" at "8:26" says "when: unknown attribute `risk`";
    when_wrong_operator_for_type: "when-wrong-operator.yaml" at "7:22" says "operator `>=` does not apply to text attribute `department`";
    when_bad_literal_in_quoted_scalar: "when-bad-literal.yaml" at "7:26" says "`severe` is not a risk level";
}

#[test]
fn every_bad_fixture_is_covered_by_a_test() {
    // A fixture nobody asserts on would rot silently: keep the table and the directory in step.
    let source = include_str!("playbook.rs");
    for entry in std::fs::read_dir(BAD).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(source.contains(&name), "fixture {name} has no test");
    }
}

#[test]
fn every_ready_playbook_is_valid() {
    let mut files: Vec<String> = std::fs::read_dir("playbooks")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = resetctl(&args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "ready playbooks carry no warnings");
    for f in &files {
        assert!(
            stdout(&out).contains(&format!("{f}: ok")),
            "{}",
            stdout(&out)
        );
    }
    for name in [
        "credential-dump",
        "password-spray",
        "ransomware",
        "privileged-compromise",
        "mfa-reset",
    ] {
        assert!(files.contains(&format!("playbooks/{name}.yaml")), "{name}");
    }
}

#[test]
fn multiple_errors_in_one_file_are_reported_in_one_run() {
    let file = format!("{BAD}/multiple-errors.yaml");
    let out = resetctl(&["validate", &file]);
    assert_eq!(code(&out), 1);
    let lines: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
    let positions: Vec<&str> = lines
        .iter()
        .map(|l| {
            let rest = l.strip_prefix(&format!("{file}:")).unwrap_or("?");
            rest.split(": ").next().unwrap_or("?")
        })
        .collect();
    assert_eq!(
        positions,
        vec!["5:5", "6:5", "7:31", "9:27", "10:31", "12:13"],
        "{lines:#?}"
    );
}

#[test]
fn structural_errors_in_different_sections_are_reported_in_one_run() {
    let file = format!("{BAD}/multiple-parse-errors.yaml");
    let out = resetctl(&["validate", &file]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    let expected = [
        ("4:5", "unknown target `everyone`"),
        ("7:3", "unknown field `max_user`"),
        ("9:29", "unknown variant `random`"),
        ("10:27", "`batch_size` expects a whole number"),
        ("11:1", "duplicate key `name`"),
    ];
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, (pos, needle)) in lines.iter().zip(expected) {
        assert!(line.starts_with(&format!("{file}:{pos}: ")), "{line}");
        assert!(line.contains(needle), "{line}");
    }
}

#[test]
fn json_output_is_an_array_of_positions() {
    let file = format!("{BAD}/multiple-errors.yaml");
    let out = resetctl(&[
        "--output",
        "json",
        "validate",
        &file,
        "playbooks/ransomware.yaml",
    ]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "",
        "json mode writes only the array, to stdout"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    let items = v.as_array().expect("an array");
    assert_eq!(items.len(), 6);
    let first = &items[0];
    assert_eq!(first["file"], file.as_str());
    assert_eq!(first["line"], 5);
    assert_eq!(first["column"], 5);
    assert_eq!(first["severity"], "error");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("notify comes before")
    );
    for item in items {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 5, "{item}");
        for k in ["file", "line", "column", "message", "severity"] {
            assert!(keys.contains(&k), "{item}");
        }
    }
}

#[test]
fn json_output_is_an_empty_array_when_all_valid() {
    let out = resetctl(&[
        "--output",
        "json",
        "validate",
        "playbooks/credential-dump.yaml",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v, serde_json::json!([]));
}

#[test]
fn warnings_do_not_fail_validation() {
    let file = "tests/fixtures/playbooks/warn/keep-mode.yaml";
    let out = resetctl(&["validate", file]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{file}: ok\n"));
    assert!(
        stderr(&out).starts_with(&format!("{file}:6:29: warning: reset_password mode `keep`")),
        "{}",
        stderr(&out)
    );
    let out = resetctl(&["--output", "json", "validate", file]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["severity"], "warning");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let out = resetctl(&[
        "validate",
        "playbooks/credential-dump.yaml",
        "no/such/playbook.yaml",
    ]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("playbooks/credential-dump.yaml: ok"));
    assert!(
        stderr(&out).starts_with("no/such/playbook.yaml:1:1: cannot read no/such/playbook.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn file_is_named_as_given_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("p.yaml");
    std::fs::write(
        &pb,
        "name: p\ntargets: [all_users: {}]\nsteps: []\nguards: { max_fraction_of_tenant: 1.0 }\n",
    )
    .unwrap();
    let out = resetctl_in(dir.path(), &["validate", "./p.yaml"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("./p.yaml:3:8: steps is empty"),
        "{}",
        stderr(&out)
    );
    // No snippet when stderr is not a terminal: exactly one line per problem.
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "validate must not write files");
}

#[test]
fn non_utf8_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bin.yaml"), b"name: \xff\xfe\n").unwrap();
    let out = resetctl_in(dir.path(), &["validate", "bin.yaml"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("bin.yaml:1:1: bin.yaml is not UTF-8"),
        "{}",
        stderr(&out)
    );
}
