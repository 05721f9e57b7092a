//! The notify step's plug point: temporary passwords and Temporary Access Passes are created
//! through Graph on the emulator and handed to the notifier, and to nothing else.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use resetctl::audit::{AuditConfig, AuditHandle};
use resetctl::directory::GraphDirectory;
use resetctl::emulator::RunningEmulator;
use resetctl::engine::execute::{self, Execution, Progress};
use resetctl::engine::notify::{Delivery, Notice, Notifier, UserSecret};
use resetctl::engine::planner::{self, PlanRequest};
use resetctl::playbook::{self, Channel, Recipient};
use resetctl::store::{NewRun, Outcome, PlanDocument, RunId, RunStore, SqliteStore};
use resetctl::targeting::ResolveOptions;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::watch;

use crate::util::{TenantConfig, capture_logs, start_emulator, tenant_file_config};

const TENANT: &str = r#"
verified_domain: contoso.example
users:
  - { upn: alice@contoso.example, mobile_phone: "+1 425 555 0101", methods: [phone] }
  - { upn: bob@contoso.example, mobile_phone: "+1 425 555 0102", methods: [phone] }
  - { upn: carol@contoso.example, mobile_phone: "+1 425 555 0103", methods: [] }
"#;

const PLAYBOOK: &str = "name: tap
targets: [all_users: {}]
guards: { max_fraction_of_tenant: 1.0 }
steps:
  - reset_password: { mode: temporary, force_change: true, require_mfa: true }
  - temporary_access_pass: { lifetime_minutes: 60, usable_once: true }
  - notify: { template: new-credentials, channels: [sms] }
";

/// What the notifier saw: (user, template, secret kinds, exposed secrets).
type Seen = Vec<(String, String, Vec<&'static str>, Vec<String>)>;

/// A notifier that "delivers" over SMS to the user by keeping what it was given.
#[derive(Default)]
struct Capture(Mutex<Seen>);

impl Notifier for Capture {
    fn delivers_secrets(&self, channels: &[Channel], to: Recipient) -> bool {
        to == Recipient::User && channels.contains(&Channel::Sms)
    }

    fn notify<'a>(&'a self, notice: Notice<'a>) -> BoxFuture<'a, Delivery> {
        let exposed = notice
            .secrets
            .iter()
            .map(|s| match s {
                UserSecret::TemporaryPassword(pw) => pw.expose_secret().to_owned(),
                UserSecret::AccessPass { pass, .. } => pass.expose_secret().to_owned(),
            })
            .collect();
        self.0.lock().unwrap().push((
            notice.user.upn.clone(),
            notice.template.to_owned(),
            notice.secrets.iter().map(UserSecret::kind).collect(),
            exposed,
        ));
        Box::pin(std::future::ready(Delivery::Delivered("sms".into())))
    }

    fn missing(&self, channel: Channel, _out_of_band: bool) -> Option<String> {
        (channel != Channel::Sms).then(|| format!("channels.{}", channel.as_str()))
    }
}

/// An emulated tenant of [`TENANT`], planned for [`PLAYBOOK`] and stored as a run.
struct Setup {
    dir: tempfile::TempDir,
    emulator: RunningEmulator,
    directory: Arc<GraphDirectory>,
    playbook: Arc<resetctl::playbook::Playbook>,
    plan: Arc<resetctl::engine::plan::Plan>,
    store: Arc<SqliteStore>,
    run: RunId,
    audit: AuditHandle,
    audit_path: std::path::PathBuf,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let emulator = start_emulator(tenant_file_config(dir.path(), TENANT)).await;
        let directory: Arc<GraphDirectory> = Arc::new(
            TenantConfig::emulator("t", emulator.info(), 10.0)
                .secret_app(emulator.info(), 0, "NOTIFY_SECRET")
                .directory(),
        );
        let loaded = playbook::load_str("tap.yaml", PLAYBOOK).unwrap();
        let playbook = Arc::new(loaded.playbook);
        let plan = planner::build_plan(
            directory.as_ref(),
            PlanRequest {
                playbook: &playbook,
                tenant: "t",
                apps: 1,
                quotas: &resetctl::throttle::Quotas::graph_defaults(
                    resetctl::config::TenantSize::Small,
                    10.0,
                ),
                runner_accounts: &[],
                resolve: ResolveOptions::default(),
                remediated: &std::collections::HashMap::new(),
                include_remediated: false,
                skip_report_only_reads: false,
            },
        )
        .await
        .unwrap();
        let plan = Arc::new(plan);
        let store = Arc::new(SqliteStore::open(&dir.path().join("runs.sqlite")).unwrap());
        let run = RunId::generate(jiff::Timestamp::now());
        store
            .create_run(NewRun {
                id: run.clone(),
                created_at: jiff::Timestamp::now(),
                playbook_name: "tap".into(),
                playbook_path: "tap.yaml".into(),
                tenant: "t".into(),
                plan_hash: plan.hash(),
                plan: PlanDocument::of(Arc::clone(&plan)),
            })
            .await
            .unwrap();
        let audit_path = dir.path().join("audit.jsonl");
        let audit = AuditHandle::open(&AuditConfig::new(&audit_path))
            .await
            .unwrap();
        Setup {
            dir,
            emulator,
            directory,
            playbook,
            plan,
            store,
            run,
            audit,
            audit_path,
        }
    }

    /// Execute the stored run with `notifier`.
    async fn execute(&self, notifier: Arc<Capture>) -> execute::Summary {
        let (_stop_tx, stop) = watch::channel(false);
        execute::execute(Execution {
            directory: self.directory.clone(),
            store: Arc::clone(&self.store),
            audit: self.audit.clone(),
            playbook: Arc::clone(&self.playbook),
            plan: Arc::clone(&self.plan),
            run: self.run.clone(),
            actor: "test".into(),
            concurrency: 2,
            stop,
            progress: Arc::new(Progress::default()),
            notifier,
            ticket: None,
        })
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn temporary_secrets_reach_the_notifier_and_nothing_else() {
    let setup = Setup::new().await;
    let notifier = Arc::new(Capture::default());
    let (logs, _guard) = capture_logs();
    let summary = setup.execute(notifier.clone()).await;
    setup.audit.close().await.unwrap();

    assert!(summary.complete_success(), "{:?}", summary.results);
    assert_eq!(
        summary.count(Outcome::Succeeded),
        9,
        "{:?}",
        summary.results
    );
    let seen = notifier.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let mut secrets = Vec::new();
    for (upn, template, kinds, exposed) in &seen {
        assert_eq!(template, "new-credentials", "{upn}");
        assert_eq!(
            kinds,
            &["temporary password", "temporary access pass"],
            "{upn}"
        );
        assert!(exposed.iter().all(|s| s.len() >= 8), "{upn}");
        secrets.extend(exposed.iter().cloned());
    }

    // Graph was asked for a pass and a password for each user.
    let writes: Value = reqwest::get(format!("{}/writes", setup.emulator.info().inspect_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let taps = writes["writes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| {
            w["applied"] == true
                && w["path"]
                    .as_str()
                    .unwrap()
                    .ends_with("/temporaryAccessPassMethods")
        })
        .count();
    assert_eq!(taps, 3, "{writes}");

    // ...and the secrets went nowhere else: not the journal, results, audit, logs or the
    // emulator's write log.
    let journal = format!("{:?}", setup.store.journal(&setup.run).await.unwrap());
    let results = format!("{:?}", summary.results);
    let trail = std::fs::read_to_string(&setup.audit_path).unwrap();
    let log = String::from_utf8_lossy(&logs.bytes()).into_owned();
    for secret in &secrets {
        for (what, text) in [
            ("journal", &journal),
            ("results", &results),
            ("audit trail", &trail),
            ("logs", &log),
            ("write log", &writes.to_string()),
        ] {
            assert!(!text.contains(secret.as_str()), "a secret is in the {what}");
        }
    }
    assert!(results.contains("held for the notify step"), "{results}");
    drop(setup.dir);
    setup.emulator.shutdown().await;
}

/// A password set in an earlier attempt of the run (then the process died): its value was
/// never stored, so on resume the notice cannot carry it and goes to manual check.
#[tokio::test]
async fn a_secret_from_before_a_resume_is_reported_not_delivered() {
    let setup = Setup::new().await;
    let alice = setup
        .plan
        .users
        .iter()
        .find(|u| u.upn == "alice@contoso.example")
        .unwrap()
        .id
        .clone();
    let at = jiff::Timestamp::now();
    setup
        .store
        .record_intent(&setup.run, &alice, "0:reset_password", None, at)
        .await
        .unwrap();
    setup
        .store
        .record_outcome(
            &setup.run,
            &alice,
            "0:reset_password",
            Outcome::Succeeded,
            None,
            at,
        )
        .await
        .unwrap();
    let notifier = Arc::new(Capture::default());
    let summary = setup.execute(notifier.clone()).await;
    let notify_of = |id: &str| {
        summary
            .results
            .iter()
            .find(|r| r.user_id == id && r.step == "2:notify")
            .unwrap()
            .clone()
    };
    let alice_notice = notify_of(&alice);
    assert_eq!(alice_notice.outcome, Outcome::ManualCheck);
    assert!(
        alice_notice
            .detail
            .as_deref()
            .unwrap()
            .contains("issue a new one by hand"),
        "{alice_notice:?}"
    );
    let seen = notifier.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "only bob and carol were notified: {seen:?}");
    assert!(seen.iter().all(|(upn, ..)| upn != "alice@contoso.example"));
    assert_eq!(summary.count(Outcome::ManualCheck), 1);
    setup.emulator.shutdown().await;
}
