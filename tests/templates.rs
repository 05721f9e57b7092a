//! `resetctl validate` (and `plan`) checking the templates a playbook names: every problem at
//! the `FILE:LINE:COL` of the `template:` value, with overrides from `--templates DIR` and
//! from the configuration's `templates:`.

use std::path::Path;

use crate::util::{code, resetctl_in, stderr, stdout};

/// A playbook whose line 6, column 25 is the template name.
fn playbook(dir: &Path, template: &str, channels: &str) {
    let text = format!(
        "name: t\ntargets: [all_users]\nguards: {{ max_fraction_of_tenant: 1 }}\nsteps:\n  - reset_password: {{ mode: scramble }}\n  - notify: {{ template: {template}, channels: [{channels}] }}\n"
    );
    std::fs::write(dir.join("p.yaml"), text).unwrap();
}

fn override_file(dir: &Path, path: &str, text: &str) -> std::path::PathBuf {
    let file = dir.join("tpl").join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn an_unknown_template_is_an_error_at_its_name() {
    let dir = tempfile::tempdir().unwrap();
    playbook(dir.path(), "no-such-notice", "email");
    let out = resetctl_in(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("p.yaml:6:25: unknown template `no-such-notice`: templates for per-user (notify) messages are "),
        "{err}"
    );
    assert!(err.contains("credential-dump-notice"), "{err}");
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_missing_variable_in_an_override_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    playbook(dir.path(), "credential-dump-sms", "sms");
    let file = override_file(
        dir.path(),
        "credential-dump-sms/en/sms.txt",
        "Hi {{ user.nickname }}\n",
    );
    let out = resetctl_in(dir.path(), &["validate", "p.yaml", "--templates", "tpl"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "p.yaml:6:25: template `credential-dump-sms` (en, sms): {}:1:",
            file.strip_prefix(dir.path()).unwrap().display()
        )),
        "{err}"
    );
    // Without the override the embedded template is fine.
    let out = resetctl_in(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "p.yaml: ok\n");
}

#[test]
fn a_card_that_fails_the_schema_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    playbook(dir.path(), "credential-dump-notice", "email, teams");
    override_file(
        dir.path(),
        "credential-dump-notice/de/card.json",
        r#"{"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "{{ user.display_name }}", "colour": "red"}]}"#,
    );
    let out = resetctl_in(dir.path(), &["validate", "p.yaml", "--templates", "tpl"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("p.yaml:6:25: template `credential-dump-notice` (de, card): "),
        "{err}"
    );
    assert!(
        err.contains(
            "card.json: the card does not validate against the Adaptive Card 1.5 schema: /: the value is not valid"
        ),
        "{err}"
    );
    // The offending values come from the context: never shown.
    assert!(!err.contains("Alex Wilber"), "{err}");
}

#[test]
fn a_long_sms_is_a_warning_and_still_valid() {
    let dir = tempfile::tempdir().unwrap();
    playbook(dir.path(), "credential-dump-sms", "sms");
    let long = format!(
        "{} {{{{ user.display_name }}}}\n",
        "Bitte lesen. ".repeat(25)
    );
    override_file(dir.path(), "credential-dump-sms/de/sms.txt", &long);
    let out = resetctl_in(dir.path(), &["validate", "p.yaml", "--templates", "tpl"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "p.yaml:6:25: warning: template `credential-dump-sms` (de): the SMS for the sample user is 3 segments (337 Gsm7 units); keep it within 2\n"
    );
    assert_eq!(stdout(&out), "p.yaml: ok\n");
}

#[test]
fn a_secret_template_needs_its_secret_and_a_verified_channel() {
    let dir = tempfile::tempdir().unwrap();
    playbook(dir.path(), "temporary-password-sms", "sms");
    let out = resetctl_in(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("p.yaml:6:25: template `temporary-password-sms` delivers a temporary password, but no earlier step creates one"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_configuration_names_the_override_directory_and_the_organisation() {
    let dir = tempfile::tempdir().unwrap();
    playbook(dir.path(), "credential-dump-sms", "sms");
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let tpl = dir.path().join("conf/custom/credential-dump-sms/en");
    std::fs::create_dir_all(&tpl).unwrap();
    // Long only with the configured organisation's name: proves both keys are read.
    std::fs::write(tpl.join("sms.txt"), "{{ org.name }}\n").unwrap();
    let name = "N".repeat(400);
    std::fs::write(
        dir.path().join("conf/resetctl.yaml"),
        format!(
            "organisation:\n  name: {name}\n  helpdesk_phone: \"+49 89 1234\"\ntemplates: custom\n"
        ),
    )
    .unwrap();
    let out = resetctl_in(
        dir.path(),
        &["--config", "conf/resetctl.yaml", "validate", "p.yaml"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("p.yaml:6:25: warning: template `credential-dump-sms` (en): the SMS for the sample user is 3 segments (400 Gsm7 units)"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("conf/resetctl.yaml"),
        "organisation:\n  name: X\n  sspr_url: http://phish.example\n",
    )
    .unwrap();
    let out = resetctl_in(
        dir.path(),
        &["--config", "conf/resetctl.yaml", "validate", "p.yaml"],
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("organisation.sspr_url must be an https:// address"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plan_refuses_a_playbook_whose_templates_are_broken() {
    let dir = tempfile::tempdir().unwrap();
    playbook(dir.path(), "no-such-notice", "email");
    let out = resetctl_in(dir.path(), &["plan", "p.yaml", "--tenant", "demo"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("p.yaml:6:25: unknown template `no-such-notice`"),
        "{err}"
    );
    assert!(
        err.contains("is not a valid playbook; nothing was done"),
        "{err}"
    );
}
