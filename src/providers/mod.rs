//! Clients of third-party services that resetctl's flows call besides Microsoft Graph and
//! the message channels of `crate::comms`.
//!
//! - [`push`]: MFA push providers (Duo Auth API v2, Okta Verify through the Factors API),
//!   Path A of the single-user verification flow (`crate::verify`).
//! - [`tickets`]: ticket systems (ServiceNow, ConnectWise, Autotask, HaloPSA, a webhook)
//!   the verification flow escalates to and closes ticket-originated requests in.

pub mod push;
pub mod tickets;
