//! The mass-reset engine: plan, gate, execute per-user pipelines, resume.
//!
//! This file grows with issue 5; today it holds the plan model and the password
//! generators.

pub mod password;
pub mod plan;
