//! The emulated tenant's message sinks: the providers a run's notices go out through,
//! served on the same loopback port as Graph so one emulator rehearses a whole incident.
//!
//! - [`twilio`]: Twilio Programmable Messaging, `POST /twilio/2010-04-01/Accounts/{sid}/Messages.json`
//!   (a client's `base_url` is `{root}/twilio`).
//! - [`acs`]: Azure Communication Services SMS, `POST /acs/sms?api-version=…` with the
//!   HMAC-SHA256 request signature recomputed and checked (endpoint `{root}/acs`).
//! - [`teams`]: a Teams Workflows ("When a Teams webhook request is received") trigger URL,
//!   authorised by its `sig`; the reply is 202 even for a bad card, as the real flow's is.
//! - [`webhook`]: the generic webhook, `POST /hooks/{name}`, signed with HMAC-SHA256.
//! - [`psa`]: ticket systems (ServiceNow, ConnectWise PSA, Autotask, HaloPSA), their
//!   tickets, notes and status changes kept in a [`psa::Desk`].
//! - [`segments`]: how SMS providers count message segments (GSM-7 and UCS-2).
//! - [`duo`], [`okta`]: MFA push providers (Duo Auth API v2 with its request signature
//!   checked, Okta Verify through the Factors API); [`push`]: each user's scripted answer.
//!
//! Every accepted message lands in the [`Outbox`](super::outbox::Outbox). Each sink answers
//! with its provider's own error bodies, never Graph's: they share nothing with the clients
//! in `crate::comms`, so a wrong wire detail cannot hide by being wrong on both sides.
//! The credentials are generated from the tenant seed ([`SinkCredentials::generate`]).

pub mod acs;
pub mod duo;
pub mod okta;
pub mod psa;
pub mod push;
pub mod segments;
pub mod teams;
pub mod twilio;
pub mod webhook;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Seed of the sinks' credential generator (XORed with the tenant seed), apart from the
/// tenant's own so that adding sinks changed no tenant.
const CREDENTIAL_STREAM: u64 = 0x5e4d_c0de;

/// The secrets and numbers of every sink: test credentials valid only against this
/// emulator. `Debug` shows none of the secrets.
#[derive(Clone)]
pub struct SinkCredentials {
    /// Twilio account SID (`AC` + 32 hex).
    pub twilio_account_sid: String,
    /// Twilio auth token (32 hex).
    pub twilio_auth_token: String,
    /// A Twilio API key SID (`SK` + 32 hex), usable instead of the account SID in Basic auth.
    pub twilio_api_key_sid: String,
    /// The API key's secret.
    pub twilio_api_key_secret: String,
    /// The account's SMS-capable number.
    pub twilio_from: String,
    /// The account's Messaging Service (`MG` + 32 hex).
    pub twilio_messaging_service_sid: String,
    /// The ACS resource's access key (base64 of 64 bytes, as the portal shows it).
    pub acs_access_key: String,
    /// The ACS resource's number.
    pub acs_from: String,
    /// The Teams workflow's id (32 hex).
    pub teams_workflow_id: String,
    /// The workflow URL's `sig` (43 characters of base64url, as Logic Apps issues them).
    pub teams_sig: String,
    /// The generic webhook's name (the path after `/hooks/`).
    pub webhook_name: String,
    /// The generic webhook's HMAC key.
    pub webhook_secret: String,
    /// The Duo Auth API application's integration key (`DI` + 18 characters).
    pub duo_integration_key: String,
    /// The Duo application's secret key (40 characters).
    pub duo_secret_key: String,
    /// The Okta API token (`00` + 40 characters).
    pub okta_api_token: String,
    /// The seed of the users' scripted push answers (the tenant seed).
    pub push_seed: u64,
    /// The ServiceNow integration user.
    pub servicenow_user: String,
    /// Its password.
    pub servicenow_password: String,
    /// A ServiceNow OAuth access token (bearer).
    pub servicenow_token: String,
    /// The ConnectWise company id (the Basic user's prefix).
    pub connectwise_company: String,
    /// The ConnectWise API member's public key.
    pub connectwise_public_key: String,
    /// Its private key.
    pub connectwise_private_key: String,
    /// The ConnectWise integration's `clientId`.
    pub connectwise_client_id: String,
    /// The Autotask API user.
    pub autotask_username: String,
    /// The Autotask API tracking identifier.
    pub autotask_integration_code: String,
    /// The Autotask API user's secret.
    pub autotask_secret: String,
    /// The HaloPSA API application's client id.
    pub halo_client_id: String,
    /// Its client secret.
    pub halo_client_secret: String,
}

impl std::fmt::Debug for SinkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkCredentials")
            .field("twilio_account_sid", &self.twilio_account_sid)
            .field("twilio_auth_token", &"<redacted>")
            .field("twilio_api_key_sid", &self.twilio_api_key_sid)
            .field("twilio_api_key_secret", &"<redacted>")
            .field("twilio_from", &self.twilio_from)
            .field("acs_access_key", &"<redacted>")
            .field("acs_from", &self.acs_from)
            .field("teams_workflow_id", &self.teams_workflow_id)
            .field("teams_sig", &"<redacted>")
            .field("webhook_name", &self.webhook_name)
            .field("webhook_secret", &"<redacted>")
            .field("duo_integration_key", &self.duo_integration_key)
            .field("duo_secret_key", &"<redacted>")
            .field("okta_api_token", &"<redacted>")
            .field("servicenow_user", &self.servicenow_user)
            .field("servicenow_password", &"<redacted>")
            .field("servicenow_token", &"<redacted>")
            .field("connectwise_company", &self.connectwise_company)
            .field("connectwise_public_key", &self.connectwise_public_key)
            .field("connectwise_private_key", &"<redacted>")
            .field("autotask_username", &self.autotask_username)
            .field("autotask_secret", &"<redacted>")
            .field("halo_client_id", &self.halo_client_id)
            .field("halo_client_secret", &"<redacted>")
            .finish()
    }
}

impl SinkCredentials {
    /// The credentials of the tenant seeded with `seed` (the same seed, the same values).
    pub fn generate(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ CREDENTIAL_STREAM);
        let mut hex = |n: usize| -> String {
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            hex::encode(bytes)
        };
        let twilio_account_sid = format!("AC{}", hex(16));
        let twilio_auth_token = hex(16);
        let twilio_api_key_sid = format!("SK{}", hex(16));
        let twilio_api_key_secret = hex(16);
        let twilio_messaging_service_sid = format!("MG{}", hex(16));
        let teams_workflow_id = hex(16);
        let webhook_secret = hex(32);
        let key: Vec<u8> = (0..64).map(|_| rng.random()).collect();
        let sig: Vec<u8> = (0..32).map(|_| rng.random()).collect();
        // Drawn after the others so that adding them changed none of the older credentials.
        let mut hex = |n: usize| -> String {
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            hex::encode(bytes)
        };
        let duo_integration_key = format!("DI{}", hex(9).to_uppercase());
        let duo_secret_key = hex(20);
        let okta_api_token = format!("00{}", hex(20));
        // The PSAs' after the push providers', for the same reason.
        let servicenow_password = hex(12);
        let servicenow_token = hex(24);
        let connectwise_public_key = hex(8);
        let connectwise_private_key = hex(8);
        let connectwise_client_id =
            uuid::Uuid::from_bytes(hex(16).as_bytes()[..16].try_into().unwrap_or([0; 16]))
                .to_string();
        let autotask_integration_code = hex(10).to_uppercase();
        let autotask_secret = hex(12);
        let halo_client_id =
            uuid::Uuid::from_bytes(hex(16).as_bytes()[..16].try_into().unwrap_or([0; 16]))
                .to_string();
        let halo_client_secret = hex(24);
        SinkCredentials {
            twilio_account_sid,
            twilio_auth_token,
            twilio_api_key_sid,
            twilio_api_key_secret,
            // 555-01xx numbers are reserved for fiction (NANPA).
            twilio_from: "+14255550150".into(),
            twilio_messaging_service_sid,
            acs_access_key: base64::engine::general_purpose::STANDARD.encode(key),
            acs_from: "+18005550150".into(),
            teams_workflow_id,
            teams_sig: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig),
            webhook_name: "resetctl".into(),
            webhook_secret,
            duo_integration_key,
            duo_secret_key,
            okta_api_token,
            push_seed: seed,
            servicenow_user: "resetctl.integration".into(),
            servicenow_password,
            servicenow_token,
            connectwise_company: "contoso".into(),
            connectwise_public_key,
            connectwise_private_key,
            connectwise_client_id,
            autotask_username: "resetctl-api@contoso.example".into(),
            autotask_integration_code,
            autotask_secret,
            halo_client_id,
            halo_client_secret,
        }
    }
}

/// A header's value as text.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON response with `status`.
fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `number` is a dialable E.164 number (`+`, country code, national number) by
/// libphonenumber's metadata, the way SMS providers judge a `To`.
fn valid_e164(number: &str) -> bool {
    number.starts_with('+')
        && number[1..].chars().all(|c| c.is_ascii_digit())
        && (reserved_for_fiction(number)
            || phonenumber::parse(None, number).is_ok_and(|n| phonenumber::is_valid(&n)))
}

/// The ranges used for fiction that seeded tenants use (the NANP 555 exchange, whose
/// 555-0100 to 555-0199 are reserved for it; UK 07700 900000 to 900999): the number plan
/// calls them invalid, and a real provider would
/// fail to deliver to them, but an emulated tenant must be able to text its own users. A
/// deliberate leniency, limited to these ranges.
fn reserved_for_fiction(number: &str) -> bool {
    let nanp = number.len() == 12 && number.starts_with("+1") && &number[5..8] == "555";
    let uk = number.len() == 13 && number.starts_with("+447700900");
    nanp || uk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_seed_and_hide_in_debug() {
        let a = SinkCredentials::generate(1);
        let b = SinkCredentials::generate(1);
        let c = SinkCredentials::generate(2);
        assert_eq!(a.twilio_auth_token, b.twilio_auth_token);
        assert_ne!(a.twilio_auth_token, c.twilio_auth_token);
        assert!(a.twilio_account_sid.starts_with("AC") && a.twilio_account_sid.len() == 34);
        assert_eq!(a.teams_sig.len(), 43);
        let key = base64::engine::general_purpose::STANDARD
            .decode(&a.acs_access_key)
            .unwrap();
        assert_eq!(key.len(), 64);
        let shown = format!("{a:?}");
        for secret in [
            &a.twilio_auth_token,
            &a.twilio_api_key_secret,
            &a.acs_access_key,
            &a.teams_sig,
            &a.webhook_secret,
            &a.duo_secret_key,
            &a.okta_api_token,
            &a.servicenow_password,
            &a.servicenow_token,
            &a.connectwise_private_key,
            &a.autotask_secret,
            &a.halo_client_secret,
        ] {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
    }

    #[test]
    fn e164_is_judged_by_the_number_plan() {
        assert!(valid_e164("+14255550150"));
        assert!(valid_e164("+4915123456789"));
        assert!(
            !valid_e164("+112345678901"),
            "the ACS sample's invalid number"
        );
        assert!(!valid_e164("4255550150"), "no country code");
        assert!(!valid_e164("+1 425 555 0150"), "spaces are not E.164");
        assert!(!valid_e164("n/a"));
        assert!(valid_e164("+14255550123"), "reserved for fiction, seeded");
        assert!(!valid_e164("+14251230223"), "not in the fictional range");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
