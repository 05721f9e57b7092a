//! Registration state and `resetctl readiness`: the emulator's `userRegistrationDetails`
//! report against Graph's documented shape and paging, the report's numbers against the
//! seeded tenant, the CSV and JSON outputs, nothing written (the emulator's write log), and
//! the planner's `sspr_capable` condition and scramble warning through the real binary.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use resetctl::emulator::model::{MethodKind, NONE, Principal, Tenant};
use resetctl::emulator::seed::{SeedSpec, generate};
use resetctl::emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

use crate::util::{TenantConfig, bin, code, http, inspect, start_emulator, stderr, stdout, token};

const SECRET_VAR: &str = "READINESS_TEST_SECRET";
const USERS: u32 = 300;
const SEED: u64 = 11;
const REPORT: &str = "/reports/authenticationMethods/userRegistrationDetails";

/// The properties of `userRegistrationDetails` in Graph v1.0
/// (<https://learn.microsoft.com/graph/api/resources/userregistrationdetails>).
const PROPERTIES: [&str; 16] = [
    "id",
    "isAdmin",
    "isMfaCapable",
    "isMfaRegistered",
    "isPasswordlessCapable",
    "isSsprCapable",
    "isSsprEnabled",
    "isSsprRegistered",
    "isSystemPreferredAuthenticationMethodEnabled",
    "lastUpdatedDateTime",
    "methodsRegistered",
    "systemPreferredAuthenticationMethods",
    "userDisplayName",
    "userPreferredMethodForSecondaryAuthentication",
    "userPrincipalName",
    "userType",
];

/// A seeded emulator, configured as tenant `t` in a workspace.
struct Site {
    emulator: RunningEmulator,
    dir: tempfile::TempDir,
    tenant: TenantConfig,
    config: EmulatorConfig,
}

impl Site {
    /// `throttle: false` serves without Graph's limits (for raw requests that do not retry).
    async fn start(time_scale: f64, throttle: bool) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let mut config = EmulatorConfig::seeded(USERS, SEED);
        config.time_scale = time_scale;
        config.throttle = throttle;
        let emulator = start_emulator(config.clone()).await;
        let tenant = TenantConfig::emulator("t", emulator.info(), time_scale)
            .setting("scope: https://graph.microsoft.com/.default")
            .secret_app(emulator.info(), 0, SECRET_VAR);
        tenant.write(&dir.path().join("resetctl.yaml"));
        Site {
            emulator,
            dir,
            tenant,
            config,
        }
    }

    /// The same tenant, generated again from the same seed: what the report must say.
    fn seeded(&self) -> Tenant {
        generate(&SeedSpec {
            seed: SEED,
            users: USERS,
            missing_mobile: self.config.missing_mobile,
            apps: self.config.apps,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn resetctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(bin());
        command
            .args(["--config", self.path("resetctl.yaml").to_str().unwrap()])
            .args(args)
            .current_dir(self.dir.path())
            .envs(self.tenant.env().iter().cloned())
            .env("RESETCTL_DATA_DIR", self.path("data"))
            .env_remove("RESETCTL_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.emulator.info().graph_url)
        };
        let r = http().get(url).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// What the seeded tenant says about each user: (SSPR-capable, has the authenticator,
/// SMS only), derived here from the seed's methods and roles, independently of the emulator.
fn expected_state(t: &Tenant) -> Vec<(bool, bool, bool)> {
    let mut admins = HashSet::new();
    for a in &t.assignments {
        match a.principal {
            Principal::User(u) => {
                admins.insert(u);
            }
            Principal::Group(g) => admins.extend(t.transitive_members(g)),
        }
    }
    (0..t.users.len() as u32)
        .map(|i| {
            let bits = t.users[i as usize].methods;
            let has = |k: MethodKind| bits & k.bit() != 0;
            let sspr = usize::from(has(MethodKind::Phone))
                + usize::from(has(MethodKind::Email))
                + usize::from(has(MethodKind::Authenticator) || has(MethodKind::SoftwareOath));
            let required = if admins.contains(&i) { 2 } else { 1 };
            (
                sspr >= required,
                has(MethodKind::Authenticator),
                bits == MethodKind::Phone.bit(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_has_graphs_shape_pages_and_filters() {
    let site = Site::start(50.0, false).await;
    let token = token(&http(), site.emulator.info(), 0).await;
    let tenant = site.seeded();
    let expected = expected_state(&tenant);

    // Paged at $top, every user once, every documented property and no other.
    let mut next = Some(format!("{REPORT}?$top=120"));
    let mut rows: Vec<Value> = Vec::new();
    let mut pages = 0;
    while let Some(link) = next {
        let (status, page) = site.get(&token, &link).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with("/$metadata#reports/authenticationMethods/userRegistrationDetails")
        );
        let values = page["value"].as_array().unwrap();
        assert!(values.len() <= 120);
        rows.extend(values.iter().cloned());
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(rows.len(), tenant.users.len());
    assert_eq!(pages, tenant.users.len().div_ceil(120));
    let ids: HashSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rows.len(), "no user twice");
    for row in &rows {
        let keys: BTreeSet<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, PROPERTIES.into_iter().collect(), "{row}");
    }

    // Consistent with each user's seeded methods and mobile number.
    let by_id: HashMap<String, usize> = tenant
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id.to_string(), i))
        .collect();
    for row in &rows {
        let i = by_id[row["id"].as_str().unwrap()];
        let methods: Vec<&str> = row["methodsRegistered"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        let (capable, authenticator, sms_only) = expected[i];
        assert_eq!(row["isSsprCapable"], capable, "{row}");
        assert_eq!(
            methods.contains(&"microsoftAuthenticatorPush"),
            authenticator,
            "{row}"
        );
        assert_eq!(methods == ["mobilePhone"], sms_only, "{row}");
        if methods.contains(&"mobilePhone") {
            assert!(
                tenant.users[i].mobile.is_some(),
                "a phone method needs a number"
            );
        }
    }
    let count = |f: &dyn Fn(&(bool, bool, bool)) -> bool| expected.iter().filter(|e| f(e)).count();
    let (capable, sms_only, nothing) = (
        count(&|e| e.0),
        count(&|e| e.2),
        tenant.users.iter().filter(|u| u.methods == 0).count(),
    );
    let n = tenant.users.len();
    assert!(capable * 10 > n * 7, "most users can reset: {capable}/{n}");
    assert!(
        sms_only > 0 && nothing > 0,
        "{sms_only} SMS-only, {nothing} with nothing"
    );

    // $filter (eq) and $select as documented.
    let (status, page) = site
        .get(
            &token,
            &format!("{REPORT}?$filter=isSsprCapable eq false&$top=999&$select=id,isSsprCapable"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let values = page["value"].as_array().unwrap();
    assert_eq!(values.len(), n - capable);
    for v in values {
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "isSsprCapable"]);
        assert_eq!(v["isSsprCapable"], false);
    }
    // One user by id; a UPN is not a key of the report.
    let first = &tenant.users[0];
    let (status, one) = site.get(&token, &format!("{REPORT}/{}", first.id)).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], first.id.to_string());
    let (status, _) = site
        .get(
            &token,
            &format!("{REPORT}/{}", one["userPrincipalName"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 404);
    // A property the report does not filter on, and an operator it does not take.
    let (status, err) = site
        .get(&token, &format!("{REPORT}?$filter=userType eq 'member'"))
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = site
        .get(
            &token,
            &format!("{REPORT}?$filter=endswith(userPrincipalName,'.com')"),
        )
        .await;
    assert_eq!(status, 400, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_throttled_at_five_requests_per_ten_seconds() {
    let site = Site::start(1.0, true).await;
    let token = token(&http(), site.emulator.info(), 0).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = http()
            .get(format!("{}{REPORT}?$top=1", site.emulator.info().graph_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if let Some(v) = r.headers().get("retry-after") {
            retry_after = Some(v.to_str().unwrap().to_owned());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let wait: f64 = retry_after.unwrap().parse().unwrap();
    // Within the 10 s window (the refused request is charged too, as the emulator models).
    assert!(wait > 0.0 && wait <= 10.0, "{wait}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_counts_equal_the_seed_and_write_nothing() {
    let site = Site::start(50.0, true).await;
    let tenant = site.seeded();
    let expected = expected_state(&tenant);
    let out = site
        .resetctl(&[
            "--output",
            "json",
            "readiness",
            "--tenant",
            "t",
            "--csv",
            "out",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();

    let enabled: Vec<usize> = (0..tenant.users.len())
        .filter(|&i| tenant.users[i].enabled)
        .collect();
    let count = |f: &dyn Fn(usize) -> bool| enabled.iter().filter(|&&i| f(i)).count() as u64;
    let mobile = |i: usize| tenant.users[i].mobile.as_deref();
    let totals = &doc["totals"];
    assert_eq!(doc["tenant_users"], tenant.users.len() as u64);
    assert_eq!(doc["disabled"], (tenant.users.len() - enabled.len()) as u64);
    assert_eq!(totals["users"], enabled.len() as u64);
    assert_eq!(totals["not_sspr_capable"], count(&|i| !expected[i].0));
    assert_eq!(totals["no_authenticator"], count(&|i| !expected[i].1));
    assert_eq!(totals["sms_only"], count(&|i| expected[i].2));
    assert_eq!(totals["no_mobile"], count(&|i| mobile(i).is_none()));
    assert_eq!(
        totals["unusable_mobile"],
        count(&|i| mobile(i).is_some_and(|m| !resetctl::comms::recipient::textable(m, Some("US"))))
    );
    assert_eq!(
        totals["no_manager"],
        count(&|i| tenant.users[i].manager == NONE)
    );
    // Departments add up to the totals.
    let departments = doc["departments"].as_object().unwrap();
    let sum: u64 = departments
        .values()
        .map(|d| d["users"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, enabled.len() as u64);
    // Every user with a finding is listed once, with the flags that make it one.
    let listed = doc["users"].as_array().unwrap();
    let with_findings = count(&|i| {
        !expected[i].0
            || !expected[i].1
            || expected[i].2
            || mobile(i).is_none_or(|m| !resetctl::comms::recipient::textable(m, Some("US")))
            || tenant.users[i].manager == NONE
    });
    assert_eq!(listed.len() as u64, with_findings);
    for key in [
        "id",
        "upn",
        "display_name",
        "department",
        "methods",
        "findings",
    ] {
        assert!(listed[0].get(key).is_some(), "{key}: {}", listed[0]);
    }

    // The privileged inventory: active (direct or through a group) and eligible.
    let mut privileged: HashSet<String> = HashSet::new();
    let critical: HashSet<&str> = resetctl::playbook::roles::CRITICAL_ROLES
        .iter()
        .map(|(id, _)| *id)
        .collect();
    for a in &tenant.assignments {
        if !critical.contains(a.role) {
            continue;
        }
        match a.principal {
            Principal::User(u) => {
                privileged.insert(tenant.users[u as usize].id.to_string());
            }
            Principal::Group(g) => privileged.extend(
                tenant
                    .transitive_members(g)
                    .into_iter()
                    .map(|u| tenant.users[u as usize].id.to_string()),
            ),
        }
    }
    for e in &tenant.eligibilities {
        if let Principal::User(u) = e.principal
            && critical.contains(e.role)
        {
            privileged.insert(tenant.users[u as usize].id.to_string());
        }
    }
    for g in tenant.groups.iter().filter(|g| g.role_assignable) {
        privileged.extend(
            g.members
                .iter()
                .map(|&u| tenant.users[u as usize].id.to_string()),
        );
    }
    let reported: HashSet<String> = doc["privileged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reported, privileged);
    let holdings: Vec<&str> = doc["privileged"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["holdings"].as_array().unwrap())
        .map(|h| h["assignment"].as_str().unwrap())
        .collect();
    assert!(holdings.contains(&"active") && holdings.contains(&"eligible"));

    // The CSV files: their columns, one row per user with a finding / per role held.
    let csv = |name: &str| std::fs::read_to_string(site.path("out").join(name)).unwrap();
    let users = csv("users.csv");
    assert_eq!(
        users.lines().next().unwrap(),
        "user_id,upn,display_name,department,not_sspr_capable,no_mobile,unusable_mobile,\
         no_manager,no_authenticator,sms_only,methods_registered"
    );
    assert_eq!(users.lines().count() as u64, with_findings + 1);
    let privileged_csv = csv("privileged.csv");
    assert_eq!(
        privileged_csv.lines().next().unwrap(),
        "user_id,upn,display_name,role,assignment,via_group,sspr_capable,has_authenticator"
    );
    assert_eq!(privileged_csv.lines().count(), holdings.len() + 1);
    let departments_csv = csv("departments.csv");
    assert_eq!(
        departments_csv.lines().next().unwrap(),
        "department,users,not_sspr_capable,no_mobile,unusable_mobile,no_manager,\
         no_authenticator,sms_only"
    );
    assert!(
        departments_csv
            .lines()
            .last()
            .unwrap()
            .starts_with(&format!("(all),{},", enabled.len()))
    );
    // Files are not replaced without --overwrite.
    let again = site
        .resetctl(&["readiness", "--tenant", "t", "--csv", "out"])
        .await;
    assert_ne!(code(&again), 0);

    // Read-only: the emulator logged no write at all.
    let log = inspect(site.emulator.info(), "writes").await;
    assert_eq!(log["writes"].as_array().unwrap().len(), 0, "{log}");
}

#[test]
fn readiness_defaults_to_the_demo_tenant_and_prints_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::util::resetctl_in(dir.path(), &["readiness"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("tenant demo (emulated): 2001 users"),
        "{text}"
    );
    assert!(
        text.contains("cannot reset their own password (not SSPR-capable)"),
        "{text}"
    );
    assert!(text.contains("DEPARTMENT"), "{text}");
}

/// A playbook over every user: scramble for those who can recover, a temporary password to
/// the manager for those who cannot, and (with `scramble_all`) a scramble for everyone.
fn playbook(dir: &Path, scramble_all: bool) -> PathBuf {
    let steps = if scramble_all {
        "  - reset_password: { mode: scramble, force_change: true, require_mfa: true }\n".to_owned()
    } else {
        "  - reset_password: { mode: scramble, force_change: true, require_mfa: true }\n    \
         when: sspr_capable\n  \
         - reset_password: { mode: temporary, force_change: true, require_mfa: true }\n    \
         when: not sspr_capable\n  \
         - notify: { template: temporary-password-manager, channels: [email], to: manager }\n    \
         when: not sspr_capable\n"
            .to_owned()
    };
    let text = format!(
        "name: recovery\ntargets: [all_users: {{}}]\nguards: {{ max_fraction_of_tenant: 1, max_users: 100000 }}\nsteps:\n{steps}"
    );
    let path = dir.join(if scramble_all {
        "all.yaml"
    } else {
        "split.yaml"
    });
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_use_sspr_capable_and_warn_about_scrambles() {
    let site = Site::start(50.0, true).await;
    let tenant = site.seeded();
    let expected = expected_state(&tenant);
    let capable: HashMap<String, bool> = tenant
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id.to_string(), expected[i].0))
        .collect();

    // `when: not sspr_capable` selects exactly the users who cannot recover.
    let split = playbook(site.dir.path(), false);
    let out = site
        .resetctl(&[
            "--output",
            "json",
            "plan",
            split.to_str().unwrap(),
            "--tenant",
            "t",
            "--out",
            "split",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["warnings"], serde_json::json!([]), "{doc}");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(site.path("split/plan.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for user in plan["users"].as_array().unwrap() {
        let steps: Vec<&str> = user["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        if steps.is_empty() {
            continue;
        }
        let can = capable[user["id"].as_str().unwrap()];
        if can {
            assert_eq!(steps, ["0:reset_password"], "{user}");
        } else {
            assert_eq!(steps, ["1:reset_password", "2:notify"], "{user}");
        }
        checked += 1;
    }
    assert!(checked > 100, "{checked}");

    // Scrambling everyone: the plan counts, per bucket, who can recover, and warns.
    let all = playbook(site.dir.path(), true);
    let out = site
        .resetctl(&[
            "--output",
            "json",
            "plan",
            all.to_str().unwrap(),
            "--tenant",
            "t",
            "--out",
            "all",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(site.path("all/plan.json")).unwrap())
            .unwrap();
    let scrambled_unable = plan["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| !u["steps"].as_array().unwrap().is_empty())
        .filter(|u| !capable[u["id"].as_str().unwrap()])
        .count() as u64;
    assert!(scrambled_unable > 0);
    assert_eq!(
        doc["recovery"]["scrambled_not_sspr_capable"],
        scrambled_unable
    );
    assert_eq!(plan["recovery"], doc["recovery"], "stored with the plan");
    let warning = doc["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with(&format!(
            "{scrambled_unable} user(s) get a scrambled password but are not SSPR-capable"
        )),
        "{warning}"
    );
    for bucket in doc["recovery"]["buckets"].as_array().unwrap() {
        let name = bucket["bucket"].as_str().unwrap();
        let in_bucket: Vec<&Value> = plan["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["bucket"] == name)
            .collect();
        let can = in_bucket
            .iter()
            .filter(|u| capable[u["id"].as_str().unwrap()])
            .count() as u64;
        assert_eq!(bucket["sspr_capable"], can, "{bucket}");
        assert_eq!(
            bucket["not_sspr_capable"],
            in_bucket.len() as u64 - can,
            "{bucket}"
        );
    }
    // The text output says it too.
    let out = site
        .resetctl(&[
            "plan",
            all.to_str().unwrap(),
            "--tenant",
            "t",
            "--out",
            "all-text",
        ])
        .await;
    assert!(
        stdout(&out).contains(&format!(
            "warning: {scrambled_unable} user(s) get a scrambled password"
        )),
        "{}",
        stdout(&out)
    );
    // Planning wrote nothing.
    let log = inspect(site.emulator.info(), "writes").await;
    assert_eq!(log["writes"].as_array().unwrap().len(), 0, "{log}");
}

#[test]
fn a_misspelt_registration_flag_is_an_error_at_its_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.yaml");
    std::fs::write(
        &file,
        "name: typo\ntargets: [all_users: {}]\nsteps:\n  - revoke_sessions:\n    when: not sspr_capabel\n",
    )
    .unwrap();
    let out = crate::util::resetctl(&["validate", file.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:5:15:", file.display()))
            && err.contains("unknown attribute `sspr_capabel`")
            && err.contains("sspr_capable, has_authenticator"),
        "{err}"
    );
}
