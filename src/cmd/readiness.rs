//! `resetctl readiness`: the SSPR audit and data-hygiene report of a tenant, printed, as
//! JSON, and as CSV files. Reads only; the findings are `readiness`'s.

use resetctl::readiness::{self, Readiness};
use resetctl::report::Existing;

use super::context::Context;
use super::{CmdResult, Exit, Failure};
use crate::cli::{GlobalArgs, OutputFormat, ReadinessArgs};

/// `resetctl readiness`.
pub async fn run(global: &GlobalArgs, args: ReadinessArgs) -> CmdResult {
    let context = Context::load(global)?;
    let tenant = context
        .connect_read_only(args.tenant.tenant.as_deref())
        .await?;
    let built = readiness::build(tenant.directory.as_ref()).await;
    let (name, emulated) = (tenant.name.clone(), tenant.emulated);
    tenant.close().await;
    let report = built.map_err(|e| Failure::new(Exit::Config, e))?;
    let files = match &args.csv {
        Some(dir) => {
            let existing = if args.overwrite {
                Existing::Replace
            } else {
                Existing::Refuse
            };
            readiness::write_csv(&report, dir, existing)
                .map_err(|e| Failure::new(Exit::Config, e))?
        }
        None => Vec::new(),
    };
    if global.output == OutputFormat::Json {
        let mut doc = serde_json::to_value(&report).unwrap_or_default();
        doc["tenant"] = name.into();
        doc["emulated"] = emulated.into();
        doc["files"] = files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .into();
        outln!("{doc}");
    } else {
        out!("{}", text(&name, emulated, &report));
        for file in files {
            outln!("wrote {}", file.display());
        }
    }
    Ok(Exit::Success)
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.0 %".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// The report as text: the totals with their share, the departments, the privileged count.
fn text(tenant: &str, emulated: bool, r: &Readiness) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let kind = if emulated { " (emulated)" } else { "" };
    let t = &r.totals;
    let _ = writeln!(
        out,
        "tenant {tenant}{kind}: {} users, {} enabled ({} disabled left out)",
        r.tenant_users, t.users, r.disabled
    );
    let rows = [
        (
            "cannot reset their own password (not SSPR-capable)",
            t.not_sspr_capable,
        ),
        ("no mobile number", t.no_mobile),
        ("mobile number that does not parse", t.unusable_mobile),
        ("no manager", t.no_manager),
        ("no authenticator app", t.no_authenticator),
        ("SMS as the only method", t.sms_only),
    ];
    for (what, n) in rows {
        let _ = writeln!(out, "  {n:>7}  {:>7}  {what}", percent(n, t.users));
    }
    let _ = writeln!(
        out,
        "  {:>7}  privileged accounts (active, eligible or through groups): handle by hand",
        r.privileged.len()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<24} {:>7} {:>9} {:>9} {:>10} {:>9}",
        "DEPARTMENT", "USERS", "NO SSPR", "NO MOBILE", "NO MANAGER", "SMS ONLY"
    );
    for (dept, c) in &r.departments {
        let name = if dept.is_empty() { "(none)" } else { dept };
        let _ = writeln!(
            out,
            "  {:<24} {:>7} {:>9} {:>9} {:>10} {:>9}",
            name,
            c.users,
            c.not_sspr_capable,
            c.no_mobile + c.unusable_mobile,
            c.no_manager,
            c.sms_only
        );
    }
    out
}
