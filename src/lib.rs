//! resetctl: the runner for an identity incident.
//!
//! After a breach an organisation must reset many passwords at once, fast, without locking
//! out the wrong people. resetctl reads a YAML playbook, resolves its targets, keeps
//! privileged and break-glass accounts apart, and drives Microsoft Graph under its
//! throttling limits, journaling every write and chaining every action into an audit trail.
//!
//! Modules (see ARCHITECTURE.md for the flow of one run):
//!
//! - [`playbook`]: the playbook language: types, loading with `file:line:col`
//!   diagnostics, semantic validation.
//! - [`audit`]: the append-only, hash-chained audit trail and its verifier.
//! - [`comms`]: what a run tells people: templates, channels, delivery.
//! - [`engine`]: plan, gate and execute a playbook's per-user steps; resume.
//! - [`report`]: the CSV files an operator reads (targets, manual queue).
//! - [`spreadsheet`]: formula neutralisation of CSV cells, and its exact inverse.
//! - [`store`]: the run store (SQLite): runs, plans, approvals and the exactly-once
//!   journal of every (run, user, step).
//! - [`targeting`]: target sources (breach CSVs, groups, filters, risky users) to users.
//! - [`emulator`]: a Graph-compatible tenant for demos, tabletops and tests.
//! - [`tabletop`]: exercises of a playbook end to end, and their report.
//! - [`config`]: `resetctl.yaml`: tenants, credential pools, endpoints, quota overrides.
//! - [`files`]: bounded reads of operators' files, owner-only creation of run data.
//! - [`graph`]: the Graph HTTP client: tokens, one `send()` choke point, paging, `$batch`.
//! - [`throttle`]: per-tenant budgets and adaptive back-off on 429 / Retry-After.
//! - [`directory`]: the `Directory` trait the engine uses, and its Graph implementation.
//! - [`verify`]: the single-user verification flow (push, manager approval, escalation).
//! - [`providers`]: clients of third-party services the flows use (MFA push).
//! - [`serve`]: the approval server: the manager's link pages, the request API, timers.

#![forbid(unsafe_code)]

pub mod audit;
pub mod comms;
pub mod config;
pub mod directory;
pub mod emulator;
pub mod engine;
pub mod files;
pub mod forward;
pub mod graph;
pub mod playbook;
pub mod providers;
pub mod readiness;
pub mod report;
pub mod serve;
pub mod spreadsheet;
pub mod store;
pub mod tabletop;
pub mod targeting;
pub mod throttle;
pub mod verify;
