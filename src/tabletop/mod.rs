//! Tabletop exercises: a playbook rehearsed end to end against an emulated tenant (or, read
//! only, against a real one), and the report people read afterwards.
//!
//! - [`forecast`]: the service desk's ticket influx and backlog per projected hour.
//! - [`timeline`]: exercise times projected back to real time, as series.
//! - [`chart`]: the report's line charts (plotters' SVG backend), with text alternatives.
//! - [`simulated`]: a directory that reads through and simulates every write.
//! - [`inject`]: what goes wrong on purpose (`--inject`).
//! - [`report`]: the report's data, its HTML and its Markdown summary.
//! - [`readiness`]: the users' SSPR capability, where the report needs it.

pub mod chart;
pub mod forecast;
pub mod inject;
pub mod readiness;
pub mod report;
pub mod simulated;
pub mod timeline;
