//! Operator safety: a command acts only on the tenant the operator named (or the only one
//! configured); the demo tenant is never used silently; the default configuration file is
//! read; every output about an emulated tenant says so first.

use std::path::Path;
use std::process::{Command, Output};

use crate::util::{bin, code, stderr, stdout};

const PLAYBOOK: &str = "playbooks/credential-dump.yaml";

/// `resetctl` in `dir` with only the variables given (no configuration, no data dir leak).
fn resetctl(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(bin());
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RESETCTL_DATA_DIR", dir.join("data"))
        .env("NO_COLOR", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn playbook() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(PLAYBOOK)
        .display()
        .to_string()
}

/// Azure SDK variables for a tenant whose endpoints are a closed loopback port: any use of
/// it fails at once, and nothing leaves the machine.
fn azure_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AZURE_TENANT_ID", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
        ("AZURE_CLIENT_ID", "6a1b2c3d-0000-4000-8000-000000000001"),
        ("AZURE_CLIENT_SECRET", "not-a-real-secret"),
        ("AZURE_AUTHORITY_HOST", "http://127.0.0.1:9"),
        ("RESETCTL_GRAPH_URL", "http://127.0.0.1:9/v1.0"),
    ]
}

#[test]
fn with_azure_variables_set_no_tenant_means_that_tenant_never_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook();
    let out = resetctl(
        dir.path(),
        &["run", &pb, "--execute", "--yes"],
        &azure_env(),
    );
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    assert!(!stdout(&out).contains("EMULATED"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("finished"), "{}", stdout(&out));
}

#[test]
fn an_unknown_tenant_name_lists_the_configured_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook();
    let out = resetctl(
        dir.path(),
        &["plan", &pb, "--tenant", "contosso"],
        &azure_env(),
    );
    assert_eq!(code(&out), 4, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("tenant 'contosso' is not configured"), "{err}");
    assert!(
        err.contains("configured: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
        "{err}"
    );
    assert!(!dir.path().join("data/runs.sqlite").exists() || !stdout(&out).contains("plan "));
}

#[test]
fn several_tenants_and_no_name_is_an_error_listing_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("resetctl.yaml"),
        "tenants:\n  contoso: { tenant_id: a, graph_url: 'http://127.0.0.1:9/v1.0', authority: 'http://127.0.0.1:9', apps: [{ client_id: c, client_secret_env: S }] }\n  fabrikam: { tenant_id: b, graph_url: 'http://127.0.0.1:9/v1.0', authority: 'http://127.0.0.1:9', apps: [{ client_id: c, client_secret_env: S }] }\n",
    )
    .unwrap();
    let pb = playbook();
    // ./resetctl.yaml is read without --config.
    let out = resetctl(dir.path(), &["plan", &pb], &[("S", "x")]);
    assert_eq!(code(&out), 4, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("2 tenants are configured (contoso, fabrikam)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_demo_tenant_is_only_for_rehearsals_and_says_so_first() {
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook();
    // Nothing configured and a write: refused, pointing at --tenant demo.
    let out = resetctl(dir.path(), &["run", &pb, "--execute", "--yes"], &[]);
    assert_eq!(code(&out), 4, "{}", stdout(&out));
    assert!(stderr(&out).contains("--tenant demo"), "{}", stderr(&out));
    // A dry run with nothing configured rehearses on the demo tenant, and says so first.
    let out = resetctl(dir.path(), &["run", &pb], &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("EMULATED TENANT demo"),
        "{}",
        stdout(&out)
    );
    let out = resetctl(
        dir.path(),
        &["--output", "json", "plan", &pb, "--tenant", "demo"],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plan: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(plan["emulated"], true);
}

/// README's configuration reference is a configuration resetctl accepts, key for key.
#[test]
fn the_readme_configuration_reference_parses() {
    let readme = include_str!("../README.md");
    let section = readme
        .split("### Every key of `resetctl.yaml`")
        .nth(1)
        .expect("README has the configuration reference");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block");
    let yaml = yaml.replace("<tenant_id>", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
    let config = resetctl::config::Config::parse(
        &yaml,
        Some(Path::new("/etc/resetctl/resetctl.yaml")),
        &resetctl::config::Env::default(),
    )
    .unwrap_or_else(|e| panic!("README's reference does not parse: {e}"));
    let contoso = &config.tenants["contoso"];
    assert_eq!(contoso.apps.len(), 2);
    assert_eq!(config.operator.as_deref(), Some("alice@contoso.com"));
}

/// The first yaml block after `heading` in README.
fn readme_yaml_after(heading: &str) -> String {
    let readme = include_str!("../README.md");
    readme
        .split(heading)
        .nth(1)
        .and_then(|s| s.split("```yaml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("README has a yaml block after {heading}"))
        .to_owned()
}

/// README's blocks for the verification flow and for forwarding are configurations resetctl
/// accepts (placeholders filled in).
#[test]
fn the_readme_flow_and_forwarding_blocks_parse() {
    let flow = readme_yaml_after("## Single-user resets")
        .replace("<group id>", "5c6b7d1e-0a4f-4c39-9a53-1a2b3c4d5e01")
        .replace(
            "<sha256 of each accepted token>",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        );
    let config = resetctl::config::Config::parse(
        &flow,
        Some(Path::new("/etc/resetctl/resetctl.yaml")),
        &resetctl::config::Env::default(),
    )
    .unwrap_or_else(|e| panic!("README's flow block does not parse: {e}\n{flow}"));
    assert!(config.push.is_some() && config.serve.is_some());
    assert_eq!(config.verify.card_timeout_secs, 300);
    let forward = readme_yaml_after("## Forwarding the audit trail");
    let config = resetctl::config::Config::parse(
        &forward,
        Some(Path::new("/etc/resetctl/resetctl.yaml")),
        &resetctl::config::Env::default(),
    )
    .unwrap_or_else(|e| panic!("README's forwarding block does not parse: {e}"));
    assert_eq!(config.forward.len(), 3);
}
