//! Where a running emulator's message sinks are and how to authenticate to them
//! ([`ChannelInfo`], part of [`ConnectionInfo`](super::ConnectionInfo)), and the
//! `organisation:`, `channels:` and `audiences:` sections of a `resetctl.yaml` that point
//! every channel at this emulator ([`config_yaml`]), the secrets named by environment
//! variables ([`secret_env`] gives their values).

use serde::Serialize;

use super::model::Tenant;
use super::seed::SENDER_MAILBOX_LOCAL;
use super::sinks::SinkCredentials;

/// The sinks of one emulator. `Debug` hides every secret; serialised (the first stdout line
/// of `resetctl emulator`) it shows them, like the app's client secret: emulator-only test
/// credentials.
#[derive(Clone, Serialize)]
pub struct ChannelInfo {
    /// The mailbox Graph `sendMail` sends from: a shared mailbox seeded in the tenant
    /// (`incident-noreply@…`), disabled like every shared mailbox's account, never a person.
    pub sender_mailbox: String,
    /// Twilio: `base_url` (`{root}/twilio`), account, auth token, API key, numbers.
    pub twilio: TwilioInfo,
    /// Azure Communication Services SMS.
    pub acs: AcsInfo,
    /// The Teams Workflows trigger URL (its `sig` makes it a secret).
    pub teams_workflow_url: String,
    /// The generic webhook.
    pub webhook: WebhookInfo,
    /// Who receives run-level messages: addresses of people in the tenant.
    pub audiences: AudienceInfo,
    /// The MFA push providers (Duo, Okta).
    pub push: PushInfo,
    /// The ticket systems (ServiceNow, ConnectWise, Autotask, HaloPSA).
    pub tickets: TicketsInfo,
}

/// The emulated PSAs and their credentials (emulator-only secrets).
#[derive(Clone, Serialize)]
pub struct TicketsInfo {
    /// ServiceNow's instance URL (`{root}/servicenow`).
    pub servicenow_base_url: String,
    /// The ServiceNow integration user.
    pub servicenow_user: String,
    /// Its password (secret).
    pub servicenow_password: String,
    /// A ServiceNow OAuth bearer token (secret).
    pub servicenow_token: String,
    /// ConnectWise's API root (`{root}/connectwise/v4_6_release/apis/3.0`).
    pub connectwise_base_url: String,
    /// The ConnectWise company id.
    pub connectwise_company: String,
    /// The API member's public key.
    pub connectwise_public_key: String,
    /// Its private key (secret).
    pub connectwise_private_key: String,
    /// The integration's `clientId`.
    pub connectwise_client_id: String,
    /// Where Autotask's zone is looked up (`{root}/autotask/atservicesrest`).
    pub autotask_zone_url: String,
    /// The Autotask API user.
    pub autotask_username: String,
    /// The API tracking identifier.
    pub autotask_integration_code: String,
    /// The API user's secret (secret).
    pub autotask_secret: String,
    /// HaloPSA's base URL (`{root}/halo`).
    pub halo_base_url: String,
    /// The HaloPSA client id.
    pub halo_client_id: String,
    /// Its client secret (secret).
    pub halo_client_secret: String,
}

/// The emulated Duo Auth API and Okta org, and their credentials (emulator-only secrets).
#[derive(Clone, Serialize)]
pub struct PushInfo {
    /// Duo's API host as a base URL (`{root}/duo`).
    pub duo_base_url: String,
    /// Duo's integration key.
    pub duo_integration_key: String,
    /// Duo's secret key (secret).
    pub duo_secret_key: String,
    /// The Okta org's base URL (`{root}/okta`).
    pub okta_base_url: String,
    /// The Okta API token (secret).
    pub okta_api_token: String,
}

/// Twilio's endpoint and credentials.
#[derive(Clone, Serialize)]
pub struct TwilioInfo {
    /// What a client puts before `/2010-04-01/…`.
    pub base_url: String,
    /// `AC…`.
    pub account_sid: String,
    /// The auth token (secret).
    pub auth_token: String,
    /// An API key SID (`SK…`), usable with its secret instead of the account's.
    pub api_key_sid: String,
    /// The API key's secret.
    pub api_key_secret: String,
    /// The account's number.
    pub from: String,
    /// The account's Messaging Service (`MG…`).
    pub messaging_service_sid: String,
}

/// ACS's endpoint and key.
#[derive(Clone, Serialize)]
pub struct AcsInfo {
    /// The resource endpoint (`{root}/acs`).
    pub endpoint: String,
    /// The access key, base64 as the portal shows it (secret).
    pub access_key: String,
    /// The resource's number.
    pub from: String,
}

/// The generic webhook.
#[derive(Clone, Serialize)]
pub struct WebhookInfo {
    /// `{root}/hooks/{name}`.
    pub url: String,
    /// The HMAC key (secret).
    pub secret: String,
}

/// Audience addresses (the emulated tenant's own people).
#[derive(Clone, Debug, Serialize)]
pub struct AudienceInfo {
    /// The helpdesk's mailbox.
    pub helpdesk_email: String,
    /// The helpdesk's phone for SMS.
    pub helpdesk_sms: String,
    /// The SOC's mailbox.
    pub soc_email: String,
    /// The identity team's mailbox (the manual queue).
    pub manual_queue_email: String,
}

impl std::fmt::Debug for ChannelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelInfo")
            .field("sender_mailbox", &self.sender_mailbox)
            .field("twilio_base_url", &self.twilio.base_url)
            .field("twilio_account_sid", &self.twilio.account_sid)
            .field("acs_endpoint", &self.acs.endpoint)
            .field("teams_workflow_url", &"<redacted>")
            .field("webhook_url", &self.webhook.url)
            .field("audiences", &self.audiences)
            .field("duo_base_url", &self.push.duo_base_url)
            .field("okta_base_url", &self.push.okta_base_url)
            .field("servicenow_base_url", &self.tickets.servicenow_base_url)
            .finish_non_exhaustive()
    }
}

impl ChannelInfo {
    /// The sinks of an emulator serving `tenant` at `base` (`http://host:port`).
    pub(crate) fn new(base: &str, tenant: &Tenant, creds: &SinkCredentials) -> Self {
        ChannelInfo {
            sender_mailbox: sender_mailbox(tenant),
            twilio: TwilioInfo {
                base_url: format!("{base}/twilio"),
                account_sid: creds.twilio_account_sid.clone(),
                auth_token: creds.twilio_auth_token.clone(),
                api_key_sid: creds.twilio_api_key_sid.clone(),
                api_key_secret: creds.twilio_api_key_secret.clone(),
                from: creds.twilio_from.clone(),
                messaging_service_sid: creds.twilio_messaging_service_sid.clone(),
            },
            acs: AcsInfo {
                endpoint: format!("{base}/acs"),
                access_key: creds.acs_access_key.clone(),
                from: creds.acs_from.clone(),
            },
            teams_workflow_url: format!(
                "{base}/teams/workflows/{}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={}",
                creds.teams_workflow_id, creds.teams_sig
            ),
            webhook: WebhookInfo {
                url: format!("{base}/hooks/{}", creds.webhook_name),
                secret: creds.webhook_secret.clone(),
            },
            audiences: audiences(tenant),
            push: PushInfo {
                duo_base_url: format!("{base}/duo"),
                duo_integration_key: creds.duo_integration_key.clone(),
                duo_secret_key: creds.duo_secret_key.clone(),
                okta_base_url: format!("{base}/okta"),
                okta_api_token: creds.okta_api_token.clone(),
            },
            tickets: TicketsInfo {
                servicenow_base_url: format!("{base}/servicenow"),
                servicenow_user: creds.servicenow_user.clone(),
                servicenow_password: creds.servicenow_password.clone(),
                servicenow_token: creds.servicenow_token.clone(),
                connectwise_base_url: format!("{base}/connectwise/v4_6_release/apis/3.0"),
                connectwise_company: creds.connectwise_company.clone(),
                connectwise_public_key: creds.connectwise_public_key.clone(),
                connectwise_private_key: creds.connectwise_private_key.clone(),
                connectwise_client_id: creds.connectwise_client_id.clone(),
                autotask_zone_url: format!("{base}/autotask/atservicesrest"),
                autotask_username: creds.autotask_username.clone(),
                autotask_integration_code: creds.autotask_integration_code.clone(),
                autotask_secret: creds.autotask_secret.clone(),
                halo_base_url: format!("{base}/halo"),
                halo_client_id: creds.halo_client_id.clone(),
                halo_client_secret: creds.halo_client_secret.clone(),
            },
        }
    }
}

/// The sender mailbox: the seeded shared mailbox, else (a tenant file) a user whose local
/// part is `incident-noreply`, else the first user.
fn sender_mailbox(t: &Tenant) -> String {
    (0..t.users.len() as u32)
        .find(|&i| &*t.users[i as usize].upn_local == SENDER_MAILBOX_LOCAL)
        .or((!t.users.is_empty()).then_some(0))
        .map(|i| t.upn(i))
        .unwrap_or_default()
}

/// Three people who could staff the helpdesk, the SOC and the identity team: enabled,
/// cloud-only people on the verified domain, preferring the IT department.
fn audiences(t: &Tenant) -> AudienceInfo {
    let candidates = |it_only: bool| {
        (0..t.users.len() as u32).filter(move |&i| {
            let u = &t.users[i as usize];
            // People: a given name, on the verified domain (break-glass and service
            // accounts are neither).
            u.enabled
                && !u.synced
                && !u.service
                && u.given != super::model::NONE
                && t.strings.get(u.domain) == t.verified_domain
                && &*u.upn_local != SENDER_MAILBOX_LOCAL
                && (!it_only || t.opt(u.department) == Some("IT"))
        })
    };
    let mut chosen: Vec<u32> = candidates(true).take(3).collect();
    let others: Vec<u32> = candidates(false)
        .filter(|i| !chosen.contains(i))
        .take(3)
        .collect();
    chosen.extend(others);
    let email = |k: usize| {
        chosen
            .get(k)
            .or(chosen.first())
            .map(|&i| t.upn(i))
            .unwrap_or_else(|| format!("helpdesk@{}", t.verified_domain))
    };
    AudienceInfo {
        helpdesk_email: email(0),
        // A number reserved for fiction, in E.164.
        helpdesk_sms: "+14255550100".into(),
        soc_email: email(1),
        manual_queue_email: email(2),
    }
}

/// The environment variables [`config_yaml`] names, each with its value: `{prefix}_TWILIO_TOKEN`,
/// `{prefix}_ACS_KEY`, `{prefix}_TEAMS_URL`, `{prefix}_WEBHOOK_SECRET`,
/// `{prefix}_SERVICENOW_PASSWORD`.
pub fn secret_env(info: &ChannelInfo, prefix: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("{prefix}_TWILIO_TOKEN"),
            info.twilio.auth_token.clone(),
        ),
        (format!("{prefix}_ACS_KEY"), info.acs.access_key.clone()),
        (
            format!("{prefix}_TEAMS_URL"),
            info.teams_workflow_url.clone(),
        ),
        (
            format!("{prefix}_WEBHOOK_SECRET"),
            info.webhook.secret.clone(),
        ),
        (
            format!("{prefix}_DUO_SECRET"),
            info.push.duo_secret_key.clone(),
        ),
        (
            format!("{prefix}_SERVICENOW_PASSWORD"),
            info.tickets.servicenow_password.clone(),
        ),
    ]
}

/// The `organisation:`, `channels:` and `audiences:` sections of `resetctl.yaml` (key names
/// as the configuration documents them) pointing every channel this emulator serves at it:
/// Graph mail from the shared mailbox, Twilio and ACS SMS, the Teams workflow, the webhook;
/// Duo push for the single-user flow; and a `tickets:` section whose one system
/// (`servicenow`) is the emulated ServiceNow.
/// Secrets are named by variables `{prefix}_…` ([`secret_env`]), never written.
/// `domain` is the tenant's verified domain (the organisation's name and URLs derive from it).
pub fn config_yaml(info: &ChannelInfo, domain: &str, prefix: &str) -> String {
    let name: String = domain
        .split('.')
        .next()
        .unwrap_or(domain)
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    let a = &info.audiences;
    format!(
        "organisation:\n  name: {name}\n  helpdesk_phone: \"{helpdesk_sms}\"\n  \
         helpdesk_url: https://help.{domain}\n  sspr_url: https://aka.ms/sspr\n  \
         verify_url: https://intranet.{domain}/security/notices\n\
         channels:\n  email:\n    graph:\n      mailboxes: [{mailbox}]\n      per_mailbox_per_minute: 30\n  \
         sms:\n    twilio:\n      base_url: {twilio_url}\n      account_sid: {sid}\n      \
         auth_token_env: {prefix}_TWILIO_TOKEN\n      from: \"{twilio_from}\"\n    \
         acs:\n      endpoint: {acs_url}\n      access_key_env: {prefix}_ACS_KEY\n      from: \"{acs_from}\"\n  \
         teams:\n    workflow:\n      url_env: {prefix}_TEAMS_URL\n  \
         webhook:\n    url: {hook}\n    secret_env: {prefix}_WEBHOOK_SECRET\n\
         audiences:\n  helpdesk: {{ email: [{helpdesk}], sms: [\"{helpdesk_sms}\"], teams: true }}\n  \
         soc: {{ email: [{soc}], teams: true, webhook: true }}\n  \
         manual_queue: {{ email: [{queue}], teams: true }}\n\
         tickets:\n  systems:\n    servicenow:\n      servicenow:\n        base_url: {sn_url}\n        \
         username: {sn_user}\n        password_env: {prefix}_SERVICENOW_PASSWORD\n        \
         caller: {sn_user}\n        assignment_group: Service Desk\n\
         push:\n  duo:\n    base_url: {duo_url}\n    integration_key: {duo_key}\n    \
         secret_key_env: {prefix}_DUO_SECRET\n",
        duo_url = info.push.duo_base_url,
        duo_key = info.push.duo_integration_key,
        helpdesk_sms = a.helpdesk_sms,
        mailbox = info.sender_mailbox,
        twilio_url = info.twilio.base_url,
        sid = info.twilio.account_sid,
        twilio_from = info.twilio.from,
        acs_url = info.acs.endpoint,
        acs_from = info.acs.from,
        hook = info.webhook.url,
        helpdesk = a.helpdesk_email,
        soc = a.soc_email,
        queue = a.manual_queue_email,
        sn_url = info.tickets.servicenow_base_url,
        sn_user = info.tickets.servicenow_user,
    )
}
