//! Reports an operator reads or hands on: the plan (`plan.json`), the targets list, the manual
//! queue, per-user results (`results.csv`), the run's summary for the ticket (`summary.md`).
//! CSV for spreadsheets and ticket imports.
//!
//! Display names and UPNs can come from hostile input (a breach dump, an attacker-edited
//! profile), and these files are opened in spreadsheets: every cell that a spreadsheet would
//! read as a formula is neutralised (OWASP "CSV injection").

//!
//! Report files are created owner-only (they name the users of an incident), whole or not at
//! all, never through a symbolic link, and over an existing file only when asked
//! ([`Existing`]).

mod csv_files;
mod plan_json;
mod summary;
mod write;

pub use csv_files::{
    manual_procedure, write_manual_queue, write_results, write_rows, write_targets,
};
pub use plan_json::write_plan_json;
pub use summary::{
    Approver, AuditRange, Buckets, Files, ManualQueue, Messages, PlaybookInfo, ReportInputs,
    RunReport, StepCounts, StepLine, Users, write_summary,
};
pub use write::{Existing, ReportError};
