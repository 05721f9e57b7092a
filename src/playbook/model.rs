//! The validated playbook: plain types the engine consumes. Nothing here carries source
//! positions or raw strings that still need checking; building one of these is the job of
//! [`super::validate`].

use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

use super::condition::Condition;
use super::pattern::UpnPattern;

/// A validated playbook, ready for planning.
#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    /// Short identifier of the playbook (a slug), recorded in runs and the audit trail.
    pub name: String,
    /// What the playbook is for, shown in plans and reports.
    pub description: Option<String>,
    /// Which incident the playbook answers, matched by webhook/Sentinel triggers.
    pub trigger: Option<Trigger>,
    /// Where the affected users come from; their union is the target set.
    pub targets: Vec<Target>,
    /// Accounts never touched, whatever the targets say.
    pub exclude: Exclude,
    /// How privileged accounts are recognised and handled.
    pub privileged: Privileged,
    /// Limits that refuse or stop a run.
    pub guards: Guards,
    /// Overrides of the tenant's write pacing (only ever lower than Graph's quota).
    pub rate_limit: RateLimit,
    /// What happens to targets whose account is disabled.
    pub disabled_users: DisabledUsers,
    /// What happens to targets synced from on-premises (their password lives there).
    pub hybrid_users: HybridUsers,
    /// The per-user actions, in order.
    pub steps: Vec<StepSpec>,
    /// Messages about the run as a whole (not per user).
    pub communications: Communications,
    /// Hex SHA-256 of the exact bytes this playbook was validated from: a plan records it,
    /// and a resumed run checks the file still has it.
    pub sha256: String,
}

impl Playbook {
    /// The steps that apply to `user`, in order: those whose `when:` holds. For a disabled
    /// account, nothing with `disabled_users: skip`, and only `revoke_sessions` with
    /// `revoke_only`. For a synced (hybrid) account, only the cloud-side steps with
    /// `hybrid_users: cloud_actions` (see [`Step::is_cloud_side`]), nothing with
    /// `manual_only`.
    pub fn steps_for<'a>(
        &'a self,
        user: &'a super::condition::UserFacts<'a>,
    ) -> impl Iterator<Item = &'a StepSpec> + 'a {
        self.steps.iter().filter(move |s| {
            let enabled_ok = user.account_enabled
                || (self.disabled_users == DisabledUsers::RevokeOnly
                    && s.step == Step::RevokeSessions);
            let synced_ok = !user.synced
                || (self.hybrid_users == HybridUsers::CloudActions && s.step.is_cloud_side());
            enabled_ok && synced_ok && s.when.as_ref().is_none_or(|c| c.eval(user))
        })
    }
}

/// The incident a playbook answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Incident kind, e.g. `credential_dump` (free text, matched exactly by triggers).
    pub incident: String,
    /// Minimum severity at which an incoming trigger may start this playbook.
    pub severity: Severity,
}

/// Incident severity, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// low
    Low,
    /// medium
    Medium,
    /// high
    High,
    /// critical
    Critical,
}

/// Identity Protection's risk level, ordered `none < low < medium < high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RiskLevel {
    /// No risk detected (also: hidden, unknown, unlicensed).
    None,
    /// low
    Low,
    /// medium
    Medium,
    /// high
    High,
}

impl Step {
    /// Whether the step writes to the directory (everything but `notify`).
    pub fn writes(&self) -> bool {
        !matches!(self, Step::Notify { .. })
    }

    /// Whether the step acts only on cloud state, so it is right for a user synced from
    /// on-premises too: revoking sessions, confirming compromise, removing authentication
    /// methods, a temporary group membership. Not a password reset (the password is
    /// on-premises), a Temporary Access Pass (a secret for a reset flow that is not
    /// happening), or a notice (its text speaks of a reset that did not happen).
    pub fn is_cloud_side(&self) -> bool {
        matches!(
            self,
            Step::RevokeSessions
                | Step::ConfirmCompromised
                | Step::RequireMfaReregistration { .. }
                | Step::AddToGroup { .. }
        )
    }
}

impl RiskLevel {
    /// Parse a level name (`none`, `low`, `medium`, `high`).
    pub fn parse(s: &str) -> Option<RiskLevel> {
        Some(match s {
            "none" => RiskLevel::None,
            "low" => RiskLevel::Low,
            "medium" => RiskLevel::Medium,
            "high" => RiskLevel::High,
            _ => return None,
        })
    }

    /// The name as Graph spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::None => "none",
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }
}

/// One source of target users.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Rows of a CSV file (e.g. a breach dump).
    Csv {
        /// The file, resolved against the playbook's directory when relative.
        path: PathBuf,
        /// The column holding UPNs or object ids.
        column: String,
    },
    /// Members of a group.
    Group {
        /// The group's object id.
        id: Uuid,
        /// Whether members of nested groups count.
        transitive: bool,
    },
    /// Users matching an OData `$filter`, passed to Graph as written.
    Filter(String),
    /// Users Identity Protection flags at one of these levels.
    RiskyUsers {
        /// The levels that count (never `none`).
        levels: Vec<RiskLevel>,
    },
    /// Every user of the tenant.
    AllUsers,
}

/// Accounts that are never written to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exclude {
    /// Break-glass accounts, by UPN or object id.
    pub break_glass: Vec<AccountRef>,
    /// Members of these groups are excluded.
    pub groups: Vec<Uuid>,
    /// UPNs matching any of these globs are excluded (e.g. `svc-*@contoso.com`).
    pub upn_patterns: Vec<UpnPattern>,
}

/// A reference to one account: by UPN or by object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRef {
    /// A user principal name (compared case-insensitively).
    Upn(String),
    /// A directory object id.
    Id(Uuid),
}

/// How privileged accounts are recognised. They are always handled manually.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileged {
    /// Which directory roles make an account privileged.
    pub roles: PrivilegedRoles,
    /// Whether a PIM-eligible (not active) assignment counts.
    pub include_eligible: bool,
}

impl Default for Privileged {
    fn default() -> Self {
        Privileged {
            roles: PrivilegedRoles::Critical,
            include_eligible: true,
        }
    }
}

/// The roles that make an account privileged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivilegedRoles {
    /// The built-in list [`super::roles::CRITICAL_ROLES`].
    Critical,
    /// Explicit role template ids.
    TemplateIds(Vec<Uuid>),
}

impl PrivilegedRoles {
    /// The role template ids this stands for (the built-in list for [`PrivilegedRoles::Critical`]).
    pub fn template_ids(&self) -> Vec<Uuid> {
        match self {
            PrivilegedRoles::Critical => super::roles::CRITICAL_ROLES
                .iter()
                .filter_map(|(id, _)| Uuid::try_parse(id).ok())
                .collect(),
            PrivilegedRoles::TemplateIds(ids) => ids.clone(),
        }
    }
}

/// Limits that refuse a run before it starts or stop it while it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Guards {
    /// Refuse the run when more users than this would be written to.
    pub max_users: Option<u32>,
    /// Refuse the run when the targets exceed this fraction of the tenant, in (0, 1].
    pub max_fraction_of_tenant: f64,
    /// Stop the run when the error rate passes this, in [0, 1].
    pub stop_when_error_rate_above: f64,
    /// Operators who must approve before `--execute` writes anything.
    pub approvals_required: u32,
    /// Users an earlier run on the same tenant remediated within this window are not written
    /// again (a second wave by accident); zero looks back at nothing.
    pub remediated_within: Duration,
    /// Write to recently remediated users anyway (a deliberate second wave).
    pub include_remediated: bool,
}

/// Default of `guards.max_fraction_of_tenant`: a quarter of the tenant.
pub const DEFAULT_MAX_FRACTION_OF_TENANT: f64 = 0.25;
/// Default of `guards.stop_when_error_rate_above`.
pub const DEFAULT_STOP_WHEN_ERROR_RATE_ABOVE: f64 = 0.05;
/// Default of `guards.approvals_required`.
pub const DEFAULT_APPROVALS_REQUIRED: u32 = 1;
/// Default of `guards.remediated_within`: a day.
pub const DEFAULT_REMEDIATED_WITHIN: Duration = Duration::from_secs(24 * 3600);

impl Default for Guards {
    fn default() -> Self {
        Guards {
            max_users: None,
            max_fraction_of_tenant: DEFAULT_MAX_FRACTION_OF_TENANT,
            stop_when_error_rate_above: DEFAULT_STOP_WHEN_ERROR_RATE_ABOVE,
            approvals_required: DEFAULT_APPROVALS_REQUIRED,
            remediated_within: DEFAULT_REMEDIATED_WITHIN,
            include_remediated: false,
        }
    }
}

/// Overrides of the write pacing; `None` keeps the tenant's computed budget.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RateLimit {
    /// Writes per second, in (0, 20]: a playbook can only slow a run below Graph's quota.
    pub max_writes_per_second: Option<f64>,
    /// Requests in flight at once, 1..=64.
    pub max_in_flight: Option<u32>,
    /// Requests per `$batch`, 1..=20 (Graph's maximum is 20).
    pub batch_size: Option<u32>,
}

/// What happens to a target whose account is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisabledUsers {
    /// Leave it alone (reported as skipped).
    #[default]
    Skip,
    /// Only revoke its sessions (tokens issued before it was disabled).
    RevokeOnly,
}

/// What happens to a target synced from on-premises AD: its password can only be reset
/// there, but its sessions, risk state, methods and groups live in the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HybridUsers {
    /// Run the cloud-side steps; the password stays in the hybrid queue (default).
    #[default]
    CloudActions,
    /// Run nothing; the whole user goes to the hybrid queue.
    ManualOnly,
}

/// One step with the condition deciding for which users it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// The action.
    pub step: Step,
    /// Runs only for users for whom this holds; `None` means every user.
    pub when: Option<Condition>,
}

/// One per-user action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Revoke refresh tokens and session cookies (`revokeSignInSessions`).
    RevokeSessions,
    /// Reset or expire the password.
    ResetPassword {
        /// What happens to the password.
        mode: PasswordMode,
        /// Force a change at next sign-in.
        force_change: bool,
        /// Require MFA before that change.
        require_mfa: bool,
    },
    /// Delete authentication methods so the user registers again.
    RequireMfaReregistration {
        /// The method types to delete (never the password).
        remove: Vec<MethodType>,
    },
    /// Issue a Temporary Access Pass.
    TemporaryAccessPass {
        /// Lifetime in minutes, 10..=43200.
        lifetime_minutes: u32,
        /// Whether it works for one sign-in only.
        usable_once: bool,
    },
    /// Add the user to a group for a limited time (e.g. a Conditional Access exclusion).
    AddToGroup {
        /// The group's object id.
        group_id: Uuid,
        /// When the membership is removed again.
        expiry: Duration,
    },
    /// Mark the user compromised in Identity Protection.
    ConfirmCompromised,
    /// Send a message rendered from a template.
    Notify {
        /// Template name (a file in `templates/`, without extension).
        template: String,
        /// Channels to send over.
        channels: Vec<Channel>,
        /// Recipient.
        to: Recipient,
        /// Only over channels outside the (possibly compromised) tenant: SMS, an external
        /// SMTP relay, never Graph mail or Teams (this step's `out_of_band`, or the
        /// playbook's `communications.out_of_band`).
        out_of_band: bool,
    },
}

impl Step {
    /// The step's key as written in a playbook.
    pub fn key(&self) -> &'static str {
        match self {
            Step::RevokeSessions => "revoke_sessions",
            Step::ResetPassword { .. } => "reset_password",
            Step::RequireMfaReregistration { .. } => "require_mfa_reregistration",
            Step::TemporaryAccessPass { .. } => "temporary_access_pass",
            Step::AddToGroup { .. } => "add_to_group",
            Step::ConfirmCompromised => "confirm_compromised",
            Step::Notify { .. } => "notify",
        }
    }
}

/// What `reset_password` does to the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordMode {
    /// A random password nobody learns; the user recovers through SSPR.
    Scramble,
    /// A generated temporary password delivered over a verified channel.
    Temporary,
    /// Password unchanged; a change is forced at next sign-in.
    Keep,
}

/// An authentication method type, as Graph names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodType {
    /// `phone` (phoneMethods).
    Phone,
    /// `email` (emailMethods).
    Email,
    /// `fido2` (fido2Methods).
    Fido2,
    /// `microsoftAuthenticator` (microsoftAuthenticatorMethods).
    MicrosoftAuthenticator,
    /// `softwareOath` (softwareOathMethods).
    SoftwareOath,
    /// `windowsHelloForBusiness` (windowsHelloForBusinessMethods).
    WindowsHelloForBusiness,
    /// `temporaryAccessPass` (temporaryAccessPassMethods).
    TemporaryAccessPass,
}

impl MethodType {
    /// Every removable method type: the default of `require_mfa_reregistration.remove`.
    pub const ALL: [MethodType; 7] = [
        MethodType::Phone,
        MethodType::Email,
        MethodType::Fido2,
        MethodType::MicrosoftAuthenticator,
        MethodType::SoftwareOath,
        MethodType::WindowsHelloForBusiness,
        MethodType::TemporaryAccessPass,
    ];

    /// Parse the playbook spelling.
    pub fn parse(s: &str) -> Option<MethodType> {
        MethodType::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The playbook (and Graph) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodType::Phone => "phone",
            MethodType::Email => "email",
            MethodType::Fido2 => "fido2",
            MethodType::MicrosoftAuthenticator => "microsoftAuthenticator",
            MethodType::SoftwareOath => "softwareOath",
            MethodType::WindowsHelloForBusiness => "windowsHelloForBusiness",
            MethodType::TemporaryAccessPass => "temporaryAccessPass",
        }
    }
}

/// A channel a message goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Mail (Graph sendMail or SMTP).
    Email,
    /// Text message to the recipient's mobile.
    Sms,
    /// Teams chat or channel message.
    Teams,
    /// A configured webhook (only for run-level communications).
    Webhook,
}

impl Channel {
    /// The playbook spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Teams => "teams",
            Channel::Webhook => "webhook",
        }
    }
}

/// Who receives a per-user notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Recipient {
    /// The user.
    #[default]
    User,
    /// The user's manager, from the directory.
    Manager,
}

/// Run-level messages; each is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Communications {
    /// Summary to the SOC when a run ends (or stops).
    pub soc_summary: Option<Message>,
    /// The manual queue (privileged, synced, failed users) to whoever works it.
    pub manual_queue: Option<Message>,
    /// Heads-up to the helpdesk when a run starts, before users start calling.
    pub helpdesk_brief: Option<Message>,
    /// Every message of the playbook avoids channels inside the tenant (see
    /// [`Step::Notify`]'s `out_of_band`).
    pub out_of_band: bool,
    /// How soon every user must have been told: the plan warns when the configured channels
    /// cannot deliver that fast (default 15 minutes).
    pub deliver_within: std::time::Duration,
}

/// `communications.deliver_within` when the playbook does not say.
pub const DEFAULT_DELIVER_WITHIN: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Default for Communications {
    fn default() -> Self {
        Communications {
            soc_summary: None,
            manual_queue: None,
            helpdesk_brief: None,
            out_of_band: false,
            deliver_within: DEFAULT_DELIVER_WITHIN,
        }
    }
}

/// Where a playbook names a template, kept so that the templates can be checked against the
/// playbook after it loaded and a problem reported at the `template:` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUse {
    /// Template name.
    pub template: String,
    /// The channels it is sent over (each needs its form of the template).
    pub channels: Vec<Channel>,
    /// Who reads it.
    pub purpose: TemplatePurpose,
    /// Byte range of the template name in the playbook file.
    pub span: std::ops::Range<usize>,
}

/// What a named template is used for, which decides the context it is rendered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplatePurpose {
    /// A `notify` step: a per-user notice to the user or their manager.
    Notice {
        /// Who receives it.
        to: Recipient,
        /// Whether an earlier step creates a temporary password the notice can carry.
        temporary_password_before: bool,
        /// Whether an earlier step issues a Temporary Access Pass the notice can carry.
        access_pass_before: bool,
    },
    /// A `communications:` entry (`soc_summary`, `manual_queue`, `helpdesk_brief`).
    RunLevel(&'static str),
}

/// A template sent over channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Template name.
    pub template: String,
    /// Channels to send over.
    pub channels: Vec<Channel>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::playbook::{UserFacts, load_str};

    fn user(enabled: bool, mobile: bool) -> UserFacts<'static> {
        UserFacts {
            upn: "a@contoso.com",
            department: None,
            job_title: None,
            has_mobile: mobile,
            synced: false,
            account_enabled: enabled,
            risk_level: RiskLevel::None,
            sspr_capable: false,
            has_authenticator: false,
        }
    }

    #[test]
    fn steps_for_applies_conditions_and_disabled_handling() {
        let text = |disabled: &str| {
            format!(
                "name: t\ntargets: [all_users]\nguards: {{ max_fraction_of_tenant: 1 }}\ndisabled_users: {disabled}\nsteps:\n  - revoke_sessions\n  - reset_password: {{ mode: temporary }}\n    when: has_mobile\n  - reset_password: {{ mode: scramble }}\n    when: not has_mobile\n  - notify: {{ template: t, channels: [sms] }}\n    when: has_mobile\n"
            )
        };
        let p = load_str("t.yaml", &text("skip")).unwrap().playbook;
        let keys = |u: &UserFacts<'_>, p: &Playbook| -> Vec<String> {
            p.steps_for(u)
                .map(|s| match &s.step {
                    Step::ResetPassword { mode, .. } => format!("reset:{mode:?}"),
                    other => other.key().to_owned(),
                })
                .collect()
        };
        assert_eq!(
            keys(&user(true, true), &p),
            ["revoke_sessions", "reset:Temporary", "notify"]
        );
        assert_eq!(
            keys(&user(true, false), &p),
            ["revoke_sessions", "reset:Scramble"]
        );
        assert!(keys(&user(false, true), &p).is_empty());
        let p = load_str("t.yaml", &text("revoke_only")).unwrap().playbook;
        assert_eq!(keys(&user(false, true), &p), ["revoke_sessions"]);
    }

    #[test]
    fn critical_roles_resolve_to_fourteen_valid_ids() {
        let ids = PrivilegedRoles::Critical.template_ids();
        assert_eq!(ids.len(), crate::playbook::roles::CRITICAL_ROLES.len());
        assert_eq!(ids.len(), 14);
    }

    #[test]
    fn method_and_risk_names_round_trip() {
        for m in MethodType::ALL {
            assert_eq!(MethodType::parse(m.as_str()), Some(m));
        }
        assert_eq!(MethodType::parse("password"), None);
        for l in ["none", "low", "medium", "high"] {
            assert_eq!(RiskLevel::parse(l).map(RiskLevel::as_str), Some(l));
        }
    }
}
