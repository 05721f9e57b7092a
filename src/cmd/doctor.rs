//! `resetctl doctor`: can this tenant's credential pool run this playbook (or any playbook)?
//! Prints each check of the preflight — tokens, Graph answering, the application
//! permissions each step needs, the service principal's directory role — and exits 0 when
//! nothing is missing, 4 when something is. Writes nothing anywhere.

use resetctl::engine::permissions;
use resetctl::engine::preflight::{self, Report, Scope, Status};

use super::context::Context;
use super::{CmdResult, Exit, validate};
use crate::cli::{DoctorArgs, GlobalArgs, OutputFormat};

/// `resetctl doctor`.
pub async fn run(global: &GlobalArgs, args: DoctorArgs) -> CmdResult {
    let context = Context::load(global)?;
    let templates = validate::Templates::new(&context.config, None)?;
    let source = args
        .playbook
        .as_deref()
        .map(|path| validate::load_playbook(path, &templates))
        .transpose()?;
    let tenant = context
        .connect_read_only(args.tenant.tenant.as_deref())
        .await?;
    let every_step = permissions::every_step();
    let scope = match &source {
        Some(source) => Scope::playbook(&source.playbook),
        None => Scope::everything(&every_step),
    };
    let report = preflight::check(tenant.directory.as_ref(), &scope).await;
    let (name, emulated) = (tenant.name.clone(), tenant.emulated);
    tenant.close().await;
    if global.output == OutputFormat::Json {
        let json = serde_json::json!({
            "tenant": name,
            "emulated": emulated,
            "playbook": source.as_ref().map(|s| &s.path),
            "passed": report.passed(),
            "checks": report.checks,
            "not_checked": report.not_checked,
        });
        outln!("{json}");
    } else {
        let what = match &source {
            Some(s) => format!("the steps of {}", s.path.display()),
            None => "every step resetctl can run".to_owned(),
        };
        out!("{}", text(&name, emulated, &what, &report));
    }
    Ok(if report.passed() {
        Exit::Success
    } else {
        Exit::Config
    })
}

/// The report as text: one line per check, then what is not checked and the verdict.
fn text(tenant: &str, emulated: bool, what: &str, report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let kind = if emulated { " (emulated)" } else { "" };
    let _ = writeln!(out, "tenant {tenant}{kind}: checking {what}");
    for check in &report.checks {
        let _ = writeln!(out, "  {:<8} {}", check.status.as_str(), check.line());
    }
    let _ = writeln!(out, "not checked: {}", report.not_checked.join("; "));
    let missing = report.missing().count();
    let unknown = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Unknown)
        .count();
    if missing > 0 {
        let _ = writeln!(
            out,
            "{missing} missing: `run --execute` on this tenant would be refused before its \
             first write"
        );
    } else if unknown > 0 {
        let _ = writeln!(
            out,
            "nothing missing; {unknown} check(s) could not be made (see above)"
        );
    } else {
        let _ = writeln!(out, "all checks passed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use resetctl::engine::preflight::{Area, Check};

    #[test]
    fn the_text_lists_each_check_and_the_verdict() {
        let report = Report {
            checks: vec![
                Check {
                    area: Area::Token,
                    app: None,
                    subject: "access token for app c1".into(),
                    status: Status::Ok,
                    detail: "obtained".into(),
                },
                Check {
                    area: Area::Permission,
                    app: None,
                    subject: "revoke sign-in sessions [1:revoke_sessions]".into(),
                    status: Status::Missing,
                    detail: "missing: grant one of User.RevokeSessions.All".into(),
                },
            ],
            not_checked: vec!["Conditional Access"],
        };
        let text = text("t", true, "every step", &report);
        assert_eq!(
            text,
            "tenant t (emulated): checking every step\n  \
             ok       access token for app c1: obtained\n  \
             MISSING  revoke sign-in sessions [1:revoke_sessions]: missing: grant one of \
             User.RevokeSessions.All\n\
             not checked: Conditional Access\n\
             1 missing: `run --execute` on this tenant would be refused before its first \
             write\n"
        );
    }
}
