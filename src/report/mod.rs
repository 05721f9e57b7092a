//! Reports an operator reads or hands on: the targets list, the manual queue, per-user
//! results (`results.csv`). CSV for spreadsheets and ticket imports.
//!
//! Display names and UPNs can come from hostile input (a breach dump, an attacker-edited
//! profile), and these files are opened in spreadsheets: every cell that a spreadsheet would
//! read as a formula is neutralised (OWASP "CSV injection").

mod csv_files;

pub use csv_files::{
    ReportError, manual_procedure, write_manual_queue, write_results, write_targets,
};
