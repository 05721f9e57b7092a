//! The governor's token-bucket estimate across runs and processes: a run's writes, read
//! back from the run store it journaled them in, bring a second governor's estimate of
//! Graph's write buckets down from full.

use resetctl::directory::Directory;
use resetctl::emulator::EmulatorConfig;
use resetctl::store::{RunStore, SqliteStore};

use crate::util::{TenantConfig, bin, code, start_emulator, stderr};

const SECRET_VAR: &str = "THROTTLE_TEST_SECRET";

const PLAYBOOK: &str = "name: spend
targets: [all_users: {}]
guards: { max_fraction_of_tenant: 1.0, stop_when_error_rate_above: 0.5, approvals_required: 0 }
steps:
  - reset_password: { mode: scramble, force_change: true, require_mfa: true }
  - revoke_sessions
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_governor_over_the_same_store_starts_from_what_the_first_run_left() {
    // Graph's real write quota (3,000 / 150 s per app, 18,000 / 300 s per tenant).
    let emulator = start_emulator(EmulatorConfig::seeded(150, 11)).await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantConfig::emulator("t", emulator.info(), 1.0).secret_app(
        emulator.info(),
        0,
        SECRET_VAR,
    );
    tenant.write(&dir.path().join("resetctl.yaml"));
    std::fs::write(dir.path().join("spend.yaml"), PLAYBOOK).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    let mut command = std::process::Command::new(bin());
    command
        .args([
            "--config",
            dir.path().join("resetctl.yaml").to_str().unwrap(),
        ])
        .args(["run", "spend.yaml", "--tenant", "t", "--execute", "--yes"])
        .current_dir(dir.path())
        .envs(tenant.env().iter().cloned())
        .env("RESETCTL_DATA_DIR", &data)
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RUST_LOG");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // What the run wrote, as the store tells any later process.
    let store = SqliteStore::open(&data.join("runs.sqlite")).unwrap();
    let now = jiff::Timestamp::now();
    let writes = store
        .writes_since("t", now - jiff::SignedDuration::from_secs(300))
        .await
        .unwrap();
    let made = writes.len() as f64;
    assert!(made >= 200.0, "the run wrote {made} times");
    // Another tenant's writes do not count.
    assert!(
        store
            .writes_since("other", now - jiff::SignedDuration::from_secs(300))
            .await
            .unwrap()
            .is_empty()
    );

    // A fresh governor (a new process) assumes a full bucket: 98 % of 3,000.
    let fresh = tenant.directory();
    assert_eq!(fresh.client().governor().write_levels(0).0, 2_940.0);
    // Told the store's writes, it starts lower, by every write less the refill since.
    let second = tenant.directory();
    second.recent_writes(&writes);
    let (app, tenant_level) = second.client().governor().write_levels(0);
    // The bucket refilled since the first write at 98 % of 20/s (capped: it was full).
    let since_first = jiff::Timestamp::now()
        .duration_since(writes[0])
        .as_secs_f64();
    let refill = 19.6 * since_first;
    assert!(
        made > refill + 50.0,
        "too slow to tell: {made} writes, {refill} refilled"
    );
    assert!(
        app <= 2_940.0 - made + refill + 1.0,
        "{app} after {made} writes"
    );
    assert!(app >= 2_940.0 - made - 1.0, "{app} after {made} writes");
    assert!(
        tenant_level <= 17_640.0 - made + 3.0 * refill + 1.0,
        "{tenant_level}"
    );
}
