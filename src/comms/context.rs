//! What a template may say: the context every message is rendered with. These types are the
//! contract between the templates in `templates/` and the code that sends them; a template
//! that names anything else fails `resetctl validate`.
//!
//! User data (names, departments) is context, never template source: a display name such as
//! `{{ 7*7 }}` is printed as written.

use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};

/// The organisation as its people know it (from `resetctl.yaml` `organisation:`).
#[derive(Debug, Clone, Serialize)]
pub struct Organisation {
    /// Name people recognise (`Contoso`).
    pub name: String,
    /// The help desk's phone number, as people dial it.
    pub helpdesk_phone: String,
    /// The help desk's web page or portal.
    pub helpdesk_url: String,
    /// Self-service password reset (`https://aka.ms/sspr` unless the organisation has its own).
    pub sspr_url: String,
    /// Where people can check that a notice is genuine (an intranet page listing current
    /// incidents), so a phishing copy can be told apart.
    pub verify_url: String,
}

/// A person as a message names them (from the directory).
#[derive(Debug, Clone, Serialize)]
pub struct Person {
    /// Display name.
    pub display_name: String,
    /// Given name, when the directory has one (greetings fall back to the display name).
    pub given_name: Option<String>,
    /// User principal name (the sign-in name).
    pub upn: String,
}

/// The incident a message belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// The playbook's name (`credential-dump`).
    pub playbook: String,
    /// The playbook's description.
    pub description: Option<String>,
    /// The run id.
    pub run_id: String,
    /// The change or incident ticket the operator attached, if any.
    pub reference: Option<String>,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
}

/// What the run did to the user, so the notice can say it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionsTaken {
    /// The password was replaced (scrambled or temporary).
    pub password_reset: bool,
    /// A new password must be chosen at the next sign-in.
    pub must_change_password: bool,
    /// Every session and refresh token was revoked.
    pub sessions_revoked: bool,
    /// MFA methods were removed; the user registers again.
    pub mfa_reregistration: bool,
    /// The account was confirmed compromised in Identity Protection.
    pub confirmed_compromised: bool,
    /// A Temporary Access Pass was issued.
    pub access_pass: bool,
}

/// A secret the message delivers. Serialised with its value (the only place it is exposed:
/// into the rendered body of a message to its verified recipient); `Debug` hides it.
#[derive(Clone)]
pub struct SecretContext {
    /// `temporary_password` or `temporary_access_pass`.
    pub kind: &'static str,
    /// The secret itself.
    pub value: SecretString,
    /// How long it is valid, in minutes (a TAP), if limited.
    pub lifetime_minutes: Option<u32>,
    /// Whether one sign-in uses it up (a TAP).
    pub usable_once: Option<bool>,
}

impl std::fmt::Debug for SecretContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretContext({}, redacted)", self.kind)
    }
}

impl Serialize for SecretContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("SecretContext", 4)?;
        s.serialize_field("kind", self.kind)?;
        s.serialize_field("value", self.value.expose_secret())?;
        s.serialize_field("lifetime_minutes", &self.lifetime_minutes)?;
        s.serialize_field("usable_once", &self.usable_once)?;
        s.end()
    }
}

/// The context of a per-user notice (a playbook's `notify` step).
#[derive(Debug, Clone, Serialize)]
pub struct NoticeContext {
    /// The organisation.
    pub org: Organisation,
    /// Who reads this message: the user, or the user's manager.
    pub recipient: Person,
    /// `user` or `manager`.
    pub recipient_role: &'static str,
    /// The user the notice is about.
    pub user: Person,
    /// The incident.
    pub incident: Incident,
    /// What was done to the user.
    pub actions: ActionsTaken,
    /// The secret the notice delivers, if any.
    pub secret: Option<SecretContext>,
}

/// Counts of a run, for run-level messages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunCounts {
    /// Users planned for the automated path.
    pub planned: u64,
    /// Users whose steps all ran.
    pub done: u64,
    /// Users whose steps all succeeded.
    pub succeeded: u64,
    /// Users with a failed step.
    pub failed: u64,
    /// Users in the manual-handling queue (privileged, synced, unresolved, failed checks).
    pub manual: u64,
    /// Users not started (a stop, a guard).
    pub not_started: u64,
    /// Graph 429 answers during the run.
    pub throttled: u64,
    /// Messages sent and messages that failed.
    pub messages_sent: u64,
    /// Messages that could not be sent.
    pub messages_failed: u64,
}

/// One user of the manual-handling queue, for the people who work it.
#[derive(Debug, Clone, Serialize)]
pub struct ManualEntry {
    /// The user.
    pub upn: String,
    /// Display name.
    pub display_name: String,
    /// Why the user is handled by hand (`holds Global Administrator`, `synced from on-premises`).
    pub reason: String,
}

/// The context of a run-level message (`helpdesk_brief`, `manual_queue`, `soc_summary`).
#[derive(Debug, Clone, Serialize)]
pub struct RunContext {
    /// The organisation.
    pub org: Organisation,
    /// The incident.
    pub incident: Incident,
    /// `planned` (before execution), `finished`, `stopped` or `interrupted`.
    pub state: &'static str,
    /// The counts so far.
    pub counts: RunCounts,
    /// The manual-handling queue (at most the first 200 users; `counts.manual` has all).
    pub manual: Vec<ManualEntry>,
    /// Users whose steps failed, with the reason (at most the first 200).
    pub failures: Vec<ManualEntry>,
    /// Where the run's files are (plan, results, manual queue, summary), as paths.
    pub files: Vec<String>,
    /// Elapsed time of the execution, in seconds, when it ran.
    pub elapsed_seconds: Option<u64>,
}

/// The context of a single-user verification message (push sent, manager approval request,
/// SMS fallback, escalation, outcome).
#[derive(Debug, Clone, Serialize)]
pub struct FlowContext {
    /// The organisation.
    pub org: Organisation,
    /// Who reads this message.
    pub recipient: Person,
    /// The user whose password or MFA is to be reset.
    pub user: Person,
    /// Who asked, as recorded (`helpdesk agent jdoe`, `ticket 4711`).
    pub requester: String,
    /// The request id.
    pub request_id: String,
    /// `password_reset` or `mfa_reset`.
    pub outcome_wanted: &'static str,
    /// Why the request was made, as the requester stated it (shown, never interpreted).
    pub reason: String,
    /// Signed one-time approval link, for approval messages.
    pub approve_url: Option<String>,
    /// Signed one-time denial link, for approval messages.
    pub deny_url: Option<String>,
    /// Minutes until the links expire.
    pub expires_minutes: Option<u32>,
    /// For outcome and escalation messages: `approved`, `denied`, `escalated`, `completed`.
    pub result: Option<String>,
    /// The escalation ticket, when one was opened.
    pub ticket: Option<String>,
    /// The secret the message delivers to the verified person, if any.
    pub secret: Option<SecretContext>,
}
