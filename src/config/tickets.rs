//! The `tickets:` section of `resetctl.yaml`: the ticket systems (PSAs) escalations go to.
//! One or more named systems, each of one kind, and the one escalations use (`default`,
//! implied when there is one system). Inert data: base URLs, ids, and the names of the
//! variables and files that hold secrets; `crate::providers::tickets::build` reads them.
//!
//! ```yaml
//! tickets:
//!   default: desk
//!   systems:
//!     desk:
//!       servicenow:
//!         base_url: https://acme.service-now.com
//!         username: resetctl.integration
//!         password_env: SN_PASSWORD
//!         caller: resetctl.integration
//!         assignment_group: Service Desk
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::channels::{SecretSource, invalid, refuse, required_secret, secret_source, service_url};
use super::channels_raw::Refused;
use super::{ConfigError, ConfigErrorKind};

// ---- raw shapes (key names are a contract: add keys, never rename one) ----

/// `tickets:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTickets {
    /// The system escalations go to (required when there are several).
    pub default: Option<Spanned<String>>,
    /// The systems by name.
    pub systems: BTreeMap<String, Spanned<RawSystem>>,
}

/// `tickets.systems.<name>`: exactly one kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSystem {
    servicenow: Option<Spanned<RawServiceNow>>,
    connectwise: Option<Spanned<RawConnectWise>>,
    autotask: Option<Spanned<RawAutotask>>,
    halopsa: Option<Spanned<RawHaloPsa>>,
    webhook: Option<Spanned<RawTicketWebhook>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceNow {
    base_url: Spanned<String>,
    username: Option<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<PathBuf>,
    token_env: Option<Spanned<String>>,
    token_file: Option<PathBuf>,
    caller: Option<String>,
    assignment_group: Option<String>,
    close_code: Option<String>,
    resolved_state: Option<String>,
    password: Refused,
    token: Refused,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnectWise {
    base_url: Spanned<String>,
    company_id: String,
    public_key: String,
    private_key_env: Option<Spanned<String>>,
    private_key_file: Option<PathBuf>,
    client_id: String,
    company: u64,
    board: u64,
    closed_status: u64,
    priority: Option<u64>,
    high_priority: Option<u64>,
    private_key: Refused,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutotask {
    zone_url: Option<Spanned<String>>,
    username: String,
    integration_code: String,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<PathBuf>,
    company_id: u64,
    queue_id: u64,
    status: Option<u64>,
    priority: Option<u64>,
    high_priority: Option<u64>,
    complete_status: Option<u64>,
    secret: Refused,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHaloPsa {
    base_url: Spanned<String>,
    auth_url: Option<Spanned<String>>,
    tenant: Option<String>,
    client_id: String,
    client_secret_env: Option<Spanned<String>>,
    client_secret_file: Option<PathBuf>,
    client: Option<u64>,
    ticket_type: Option<u64>,
    priority: Option<u64>,
    high_priority: Option<u64>,
    closed_status: Option<u64>,
    client_secret: Refused,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTicketWebhook {
    url: Spanned<String>,
    secret_env: Option<Spanned<String>>,
    secret_file: Option<PathBuf>,
    secret: Refused,
}

// ---- validated ----

/// How a ServiceNow instance is signed in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceNowAuth {
    /// Basic with this user and password.
    Basic {
        /// The integration user.
        username: String,
        /// The password.
        password: SecretSource,
    },
    /// An OAuth access token, sent as a bearer.
    Bearer(SecretSource),
}

/// `servicenow:`: the incident table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNowSettings {
    /// `https://{instance}.service-now.com`.
    pub base_url: String,
    /// The credentials.
    pub auth: ServiceNowAuth,
    /// `caller_id` (a user's sys_id or user name), when the instance requires one.
    pub caller: Option<String>,
    /// `assignment_group` (sys_id or name).
    pub assignment_group: Option<String>,
    /// `close_code` when resolving (default `Solution provided`).
    pub close_code: String,
    /// `state` when resolving (default `6`, Resolved).
    pub resolved_state: String,
}

/// `connectwise:`: ConnectWise PSA (Manage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectWiseSettings {
    /// `https://{site}/v4_6_release/apis/3.0`.
    pub base_url: String,
    /// The company id people log in with (the Basic user's prefix).
    pub company_id: String,
    /// The API member's public key.
    pub public_key: String,
    /// The API member's private key.
    pub private_key: SecretSource,
    /// The integration's `clientId` (from the ConnectWise developer portal).
    pub client_id: String,
    /// The ticket's company (`company.id`).
    pub company: u64,
    /// The service board (`board.id`).
    pub board: u64,
    /// The status id a resolved ticket moves to.
    pub closed_status: u64,
    /// Priority ids, normal and high (the board's default when absent).
    pub priority: Option<u64>,
    /// The priority id of a suspicious request.
    pub high_priority: Option<u64>,
}

/// `autotask:`: Autotask (Datto) REST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutotaskSettings {
    /// Where the zone is looked up (default `https://webservices.autotask.net/atservicesrest`).
    pub zone_url: String,
    /// The API user (`UserName`).
    pub username: String,
    /// The API tracking identifier (`ApiIntegrationCode`).
    pub integration_code: String,
    /// The API user's secret (`Secret`).
    pub secret: SecretSource,
    /// `companyID`.
    pub company_id: u64,
    /// `queueID`.
    pub queue_id: u64,
    /// `status` of a new ticket (default 1, New).
    pub status: u64,
    /// `priority` (default 2, Medium).
    pub priority: u64,
    /// `priority` of a suspicious request (default 1, High).
    pub high_priority: u64,
    /// `status` of a resolved ticket (default 5, Complete).
    pub complete_status: u64,
}

/// `halopsa:`: HaloPSA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaloPsaSettings {
    /// `https://{tenant}.halopsa.com` (the resource server).
    pub base_url: String,
    /// The authorisation server (default `{base_url}/auth`).
    pub auth_url: String,
    /// `?tenant=` on the token request (hosted multi-tenant instances).
    pub tenant: Option<String>,
    /// The API application's client id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: SecretSource,
    /// `client_id` of the ticket (the customer).
    pub client: Option<u64>,
    /// `tickettype_id`.
    pub ticket_type: Option<u64>,
    /// `priority_id`, normal.
    pub priority: Option<u64>,
    /// `priority_id` of a suspicious request.
    pub high_priority: Option<u64>,
    /// `status_id` of a resolved ticket (default 9, Closed).
    pub closed_status: u64,
}

/// `webhook:`: a signed JSON post per ticket event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketWebhookSettings {
    /// Where events are posted.
    pub url: String,
    /// The HMAC-SHA256 key of the signature.
    pub secret: SecretSource,
}

/// One system's kind and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketSystemKind {
    /// ServiceNow.
    ServiceNow(ServiceNowSettings),
    /// ConnectWise PSA.
    ConnectWise(ConnectWiseSettings),
    /// Autotask.
    Autotask(AutotaskSettings),
    /// HaloPSA.
    HaloPsa(HaloPsaSettings),
    /// A generic webhook.
    Webhook(TicketWebhookSettings),
}

/// `tickets.systems.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSystem {
    /// Its kind and settings.
    pub kind: TicketSystemKind,
}

/// The validated `tickets:` section (empty when absent: escalations become audit records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketsConfig {
    /// The system escalations go to, if any.
    pub default: Option<String>,
    /// The systems by name.
    pub systems: BTreeMap<String, TicketSystem>,
}

impl TicketsConfig {
    pub(crate) fn from_raw(
        raw: RawTickets,
        section: &Location,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        if raw.systems.is_empty() {
            return Err(invalid(
                "tickets.systems: name at least one ticket system".into(),
                section,
            ));
        }
        let mut systems = BTreeMap::new();
        for (name, system) in raw.systems {
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(invalid(
                    format!(
                        "tickets.systems: a system's name is letters, digits, `_` and `-` \
                         (it appears in request origins `ticket:<system>:<id>`); {name:?} is not"
                    ),
                    &system.referenced,
                ));
            }
            let kind = system_from_raw(&name, system.value, &system.referenced, base_dir)?;
            systems.insert(name, TicketSystem { kind });
        }
        let default = match raw.default {
            Some(d) if systems.contains_key(&d.value) => d.value,
            Some(d) => {
                return Err(invalid(
                    format!("tickets.default: no system named {:?}", d.value),
                    &d.referenced,
                ));
            }
            None if systems.len() == 1 => systems.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(invalid(
                    "tickets.default: name the system escalations go to (there are several)".into(),
                    section,
                ));
            }
        };
        Ok(TicketsConfig {
            default: Some(default),
            systems,
        })
    }
}

fn url(key: &str, value: &Spanned<String>) -> Result<String, ConfigError> {
    service_url(key, &value.value).map_err(|m| invalid(m, &value.referenced))
}

fn system_from_raw(
    name: &str,
    raw: RawSystem,
    at: &Location,
    base_dir: Option<&Path>,
) -> Result<TicketSystemKind, ConfigError> {
    let k = |leaf: &str| format!("tickets.systems.{name}.{leaf}");
    let set = [
        raw.servicenow.is_some(),
        raw.connectwise.is_some(),
        raw.autotask.is_some(),
        raw.halopsa.is_some(),
        raw.webhook.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        return Err(invalid(
            format!(
                "tickets.systems.{name}: configure exactly one of servicenow, connectwise, \
                 autotask, halopsa, webhook"
            ),
            at,
        ));
    }
    if let Some(s) = raw.servicenow {
        let (r, at) = (s.value, &s.referenced);
        refuse(&r.password, &k("servicenow.password"), "password")?;
        refuse(&r.token, &k("servicenow.token"), "token")?;
        let password = secret_source(
            &k("servicenow.password"),
            r.password_env,
            r.password_file,
            base_dir,
            at,
        )?;
        let token = secret_source(
            &k("servicenow.token"),
            r.token_env,
            r.token_file,
            base_dir,
            at,
        )?;
        let auth = match (r.username, password, token) {
            (Some(username), Some(password), None) => ServiceNowAuth::Basic { username, password },
            (None, None, Some(token)) => ServiceNowAuth::Bearer(token),
            _ => {
                return Err(invalid(
                    format!(
                        "{}: sign in with `username` and `password_env`/`password_file`, or \
                         with an OAuth token (`token_env`/`token_file`), not both",
                        k("servicenow")
                    ),
                    at,
                ));
            }
        };
        return Ok(TicketSystemKind::ServiceNow(ServiceNowSettings {
            base_url: url(&k("servicenow.base_url"), &r.base_url)?,
            auth,
            caller: r.caller,
            assignment_group: r.assignment_group,
            close_code: r.close_code.unwrap_or_else(|| "Solution provided".into()),
            resolved_state: r.resolved_state.unwrap_or_else(|| "6".into()),
        }));
    }
    if let Some(s) = raw.connectwise {
        let (r, at) = (s.value, &s.referenced);
        refuse(&r.private_key, &k("connectwise.private_key"), "private_key")?;
        return Ok(TicketSystemKind::ConnectWise(ConnectWiseSettings {
            base_url: url(&k("connectwise.base_url"), &r.base_url)?,
            company_id: r.company_id,
            public_key: r.public_key,
            private_key: required_secret(
                &k("connectwise.private_key"),
                r.private_key_env,
                r.private_key_file,
                base_dir,
                at,
            )?,
            client_id: r.client_id,
            company: r.company,
            board: r.board,
            closed_status: r.closed_status,
            priority: r.priority,
            high_priority: r.high_priority,
        }));
    }
    if let Some(s) = raw.autotask {
        let (r, at) = (s.value, &s.referenced);
        refuse(&r.secret, &k("autotask.secret"), "secret")?;
        let zone_url = match &r.zone_url {
            Some(z) => url(&k("autotask.zone_url"), z)?,
            None => "https://webservices.autotask.net/atservicesrest".into(),
        };
        return Ok(TicketSystemKind::Autotask(AutotaskSettings {
            zone_url,
            username: r.username,
            integration_code: r.integration_code,
            secret: required_secret(
                &k("autotask.secret"),
                r.secret_env,
                r.secret_file,
                base_dir,
                at,
            )?,
            company_id: r.company_id,
            queue_id: r.queue_id,
            status: r.status.unwrap_or(1),
            priority: r.priority.unwrap_or(2),
            high_priority: r.high_priority.unwrap_or(1),
            complete_status: r.complete_status.unwrap_or(5),
        }));
    }
    if let Some(s) = raw.halopsa {
        let (r, at) = (s.value, &s.referenced);
        refuse(
            &r.client_secret,
            &k("halopsa.client_secret"),
            "client_secret",
        )?;
        let base_url = url(&k("halopsa.base_url"), &r.base_url)?;
        let auth_url = match &r.auth_url {
            Some(a) => url(&k("halopsa.auth_url"), a)?,
            None => format!("{base_url}/auth"),
        };
        return Ok(TicketSystemKind::HaloPsa(HaloPsaSettings {
            base_url,
            auth_url,
            tenant: r.tenant,
            client_id: r.client_id,
            client_secret: required_secret(
                &k("halopsa.client_secret"),
                r.client_secret_env,
                r.client_secret_file,
                base_dir,
                at,
            )?,
            client: r.client,
            ticket_type: r.ticket_type,
            priority: r.priority,
            high_priority: r.high_priority,
            closed_status: r.closed_status.unwrap_or(9),
        }));
    }
    if let Some(s) = raw.webhook {
        let (r, at) = (s.value, &s.referenced);
        refuse(&r.secret, &k("webhook.secret"), "secret")?;
        return Ok(TicketSystemKind::Webhook(TicketWebhookSettings {
            url: url(&k("webhook.url"), &r.url)?,
            secret: required_secret(
                &k("webhook.secret"),
                r.secret_env,
                r.secret_file,
                base_dir,
                at,
            )?,
        }));
    }
    Err(ConfigError::new(
        ConfigErrorKind::Invalid,
        format!("tickets.systems.{name}: no kind"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Env};

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::parse(yaml, Some(Path::new("/etc/resetctl.yaml")), &Env::default())
    }

    #[test]
    fn one_system_is_the_default_and_secrets_are_named_not_written() {
        let c = parse(
            "tickets:\n  systems:\n    desk:\n      servicenow:\n        \
             base_url: https://acme.service-now.com/\n        username: integ\n        \
             password_env: SN_PASSWORD\n        caller: integ\n",
        )
        .unwrap();
        assert_eq!(c.tickets.default.as_deref(), Some("desk"));
        let TicketSystemKind::ServiceNow(s) = &c.tickets.systems["desk"].kind else {
            panic!("{:?}", c.tickets);
        };
        assert_eq!(s.base_url, "https://acme.service-now.com");
        assert_eq!(
            s.auth,
            ServiceNowAuth::Basic {
                username: "integ".into(),
                password: SecretSource::Env("SN_PASSWORD".into())
            }
        );
        assert_eq!(
            (s.close_code.as_str(), s.resolved_state.as_str()),
            ("Solution provided", "6")
        );
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let cases = [
            // An inline secret, at the key.
            (
                "tickets:\n  systems:\n    desk:\n      webhook:\n        url: https://x.example/h\n        secret: hunter2\n",
                (6, 17),
                "inline secret",
            ),
            // Plain http to a host that is not loopback.
            (
                "tickets:\n  systems:\n    cw:\n      connectwise:\n        base_url: http://cw.example/v4_6_release/apis/3.0\n        company_id: acme\n        public_key: pub\n        private_key_env: CW_KEY\n        client_id: x\n        company: 1\n        board: 2\n        closed_status: 3\n",
                (5, 19),
                "https",
            ),
            // Two systems, no default.
            (
                "tickets:\n  systems:\n    a:\n      webhook: { url: https://a.example, secret_env: A }\n    b:\n      webhook: { url: https://b.example, secret_env: B }\n",
                (2, 3),
                "default",
            ),
            // A default that names nothing.
            (
                "tickets:\n  default: nope\n  systems:\n    a:\n      webhook: { url: https://a.example, secret_env: A }\n",
                (2, 12),
                "no system named",
            ),
            // Two kinds in one system.
            (
                "tickets:\n  systems:\n    a:\n      webhook: { url: https://a.example, secret_env: A }\n      halopsa: { base_url: https://h.example, client_id: c, client_secret_env: H }\n",
                (4, 7),
                "exactly one",
            ),
        ];
        for (yaml, (line, col), words) in cases {
            let e = parse(yaml).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains(&format!("/etc/resetctl.yaml:{line}:{col}")),
                "{yaml}\n→ {text}"
            );
            assert!(text.contains(words), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn autotask_and_halo_take_their_documented_defaults() {
        let c = parse(
            "tickets:\n  default: at\n  systems:\n    at:\n      autotask:\n        username: api@acme.example\n        \
             integration_code: TRACK\n        secret_env: AT_SECRET\n        company_id: 0\n        queue_id: 8\n    \
             halo:\n      halopsa:\n        base_url: https://acme.halopsa.com\n        client_id: c\n        client_secret_file: halo.secret\n",
        )
        .unwrap();
        let TicketSystemKind::Autotask(a) = &c.tickets.systems["at"].kind else {
            panic!()
        };
        assert_eq!(
            a.zone_url,
            "https://webservices.autotask.net/atservicesrest"
        );
        assert_eq!(
            (a.status, a.priority, a.high_priority, a.complete_status),
            (1, 2, 1, 5)
        );
        let TicketSystemKind::HaloPsa(h) = &c.tickets.systems["halo"].kind else {
            panic!()
        };
        assert_eq!(h.auth_url, "https://acme.halopsa.com/auth");
        assert_eq!(
            h.client_secret,
            SecretSource::File("/etc/halo.secret".into())
        );
        assert_eq!(h.closed_status, 9);
    }
}
