//! The playbook as written: serde types that mirror the YAML, with source positions
//! (`Spanned`) on every node a semantic rule may need to point at.
//!
//! Everything here is `deny_unknown_fields`: a misspelt key is an error at that key, never a
//! silently ignored setting. Values that need more than a type check (GUIDs, durations,
//! channel names, `when:` conditions) are kept as strings and checked in
//! [`super::validate`], where the error message can say what was expected.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A string with its position.
pub type SpStr = Spanned<String>;
/// A list with its position, of items with theirs.
pub type SpList<T> = Spanned<Vec<Spanned<T>>>;

/// The top level of a playbook file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlaybook {
    /// `name` (required; checked in validation so that all sections are still checked)
    #[serde(default)]
    pub name: Option<SpStr>,
    /// `description`
    #[serde(default)]
    pub description: Option<String>,
    /// `trigger`
    #[serde(default)]
    pub trigger: Option<RawTrigger>,
    /// `targets` (required)
    #[serde(default, deserialize_with = "present")]
    pub targets: Option<SpList<RawTargetItem>>,
    /// `exclude`
    #[serde(default)]
    pub exclude: Option<RawExclude>,
    /// `privileged`
    #[serde(default)]
    pub privileged: Option<RawPrivileged>,
    /// `guards`
    #[serde(default)]
    pub guards: Option<RawGuards>,
    /// `rate_limit`
    #[serde(default)]
    pub rate_limit: Option<RawRateLimit>,
    /// `disabled_users`
    #[serde(default)]
    pub disabled_users: Option<RawDisabledUsers>,
    /// `hybrid_users`
    #[serde(default)]
    pub hybrid_users: Option<RawHybridUsers>,
    /// `steps` (required)
    #[serde(default, deserialize_with = "present")]
    pub steps: Option<SpList<RawStep>>,
    /// `communications`
    #[serde(default)]
    pub communications: Option<RawCommunications>,
}

/// `trigger: { incident, severity }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    /// `incident`
    pub incident: SpStr,
    /// `severity`
    #[serde(default)]
    pub severity: Option<RawSeverity>,
}

/// `trigger.severity`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawSeverity {
    /// low
    Low,
    /// medium
    Medium,
    /// high
    High,
    /// critical
    Critical,
}

/// One item of `targets`: `all_users` alone, or a mapping with one key naming the source.
#[derive(Debug)]
pub struct RawTargetItem(pub RawTarget);

impl<'de> Deserialize<'de> for RawTargetItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTargetItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a target source: csv, group, filter, risky_users or all_users")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawTargetItem, E> {
                match s {
                    "all_users" => Ok(RawTargetItem(RawTarget::AllUsers(NoOptions))),
                    "risky_users" => Ok(RawTargetItem(RawTarget::RiskyUsers(OrDefault::default()))),
                    "csv" | "group" | "filter" => Err(de::Error::custom(format!(
                        "target `{s}` needs a value, e.g. `{s}: {}`",
                        match s {
                            "csv" => "{ path: dump.csv, column: upn }",
                            "group" => "{ id: <group GUID> }",
                            _ => "\"department eq 'Finance'\"",
                        }
                    ))),
                    other => Err(de::Error::custom(format!(
                        "unknown target `{other}`: expected one of csv, group, filter, risky_users, all_users"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<RawTargetItem, A::Error> {
                RawTarget::deserialize(de::value::MapAccessDeserializer::new(m)).map(RawTargetItem)
            }
        }
        d.deserialize_any(V)
    }
}

/// The mapping form of a target: one key naming the source.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawTarget {
    /// `csv: { path, column }`
    Csv(RawCsv),
    /// `group: { id, transitive }`
    Group(RawGroup),
    /// `filter: "<OData $filter>"`
    Filter(SpStr),
    /// `risky_users: { levels }`
    RiskyUsers(OrDefault<RawRiskyUsers>),
    /// `all_users: {}`
    AllUsers(NoOptions),
}

/// `csv:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCsv {
    /// `path`
    pub path: SpStr,
    /// `column`
    #[serde(default)]
    pub column: Option<SpStr>,
}

/// `group:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// `id`
    pub id: SpStr,
    /// `transitive`
    #[serde(default)]
    pub transitive: Option<bool>,
}

/// `risky_users:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRiskyUsers {
    /// `levels`
    #[serde(default)]
    pub levels: Option<SpList<String>>,
}

/// `exclude:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExclude {
    /// `break_glass`
    #[serde(default)]
    pub break_glass: Vec<SpStr>,
    /// `groups`
    #[serde(default)]
    pub groups: Vec<SpStr>,
    /// `upn_patterns`
    #[serde(default)]
    pub upn_patterns: Vec<SpStr>,
}

/// `privileged:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivileged {
    /// `roles`
    #[serde(default)]
    pub roles: Option<Spanned<RawRoles>>,
    /// `include_eligible`
    #[serde(default)]
    pub include_eligible: Option<bool>,
    /// `handling`
    #[serde(default)]
    pub handling: Option<SpStr>,
}

/// `privileged.roles`: a keyword (`critical`) or a list of role template ids.
#[derive(Debug)]
pub enum RawRoles {
    /// A single word; only `critical` is valid.
    Keyword(String),
    /// Explicit ids.
    Ids(Vec<SpStr>),
}

impl<'de> Deserialize<'de> for RawRoles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRoles;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`critical` or a list of role template ids")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawRoles, E> {
                Ok(RawRoles::Keyword(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawRoles, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<SpStr>()? {
                    ids.push(id);
                }
                Ok(RawRoles::Ids(ids))
            }
        }
        d.deserialize_any(V)
    }
}

/// `guards:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuards {
    /// `max_users`
    #[serde(default)]
    pub max_users: Option<Spanned<u32>>,
    /// `max_fraction_of_tenant`
    #[serde(default)]
    pub max_fraction_of_tenant: Option<Spanned<f64>>,
    /// `stop_when_error_rate_above`
    #[serde(default)]
    pub stop_when_error_rate_above: Option<Spanned<f64>>,
    /// `approvals_required`
    #[serde(default)]
    pub approvals_required: Option<Spanned<u32>>,
    /// `remediated_within`
    #[serde(default)]
    pub remediated_within: Option<Spanned<String>>,
    /// `include_remediated`
    #[serde(default)]
    pub include_remediated: Option<Spanned<bool>>,
}

/// `rate_limit:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// `max_writes_per_second`
    #[serde(default)]
    pub max_writes_per_second: Option<Spanned<f64>>,
    /// `max_in_flight`
    #[serde(default)]
    pub max_in_flight: Option<Spanned<u32>>,
    /// `batch_size`
    #[serde(default)]
    pub batch_size: Option<Spanned<u32>>,
}

/// `disabled_users:`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawDisabledUsers {
    /// `skip`
    Skip,
    /// `revoke_only`
    RevokeOnly,
}

/// `hybrid_users:`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawHybridUsers {
    /// `cloud_actions`
    CloudActions,
    /// `manual_only`
    ManualOnly,
}

/// One item of `steps`: a bare step name, or a mapping with one step key and an optional `when`.
#[derive(Debug)]
pub enum RawStep {
    /// `- revoke_sessions`
    Name(String),
    /// `- reset_password: {...}` (plus `when:`)
    Map(Box<RawStepMap>),
}

impl<'de> Deserialize<'de> for RawStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawStep;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a step: a step name, or `step_name: { options }` with an optional `when:`",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawStep, E> {
                Ok(RawStep::Name(s.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<RawStep, A::Error> {
                RawStepMap::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(|m| RawStep::Map(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The mapping form of a step. Exactly one step key must be present (checked in validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStepMap {
    /// `revoke_sessions:`
    #[serde(default, deserialize_with = "present")]
    pub revoke_sessions: Option<Spanned<NoOptions>>,
    /// `reset_password:`
    #[serde(default, deserialize_with = "present")]
    pub reset_password: Option<Spanned<RawResetPassword>>,
    /// `require_mfa_reregistration:`
    #[serde(default, deserialize_with = "present")]
    pub require_mfa_reregistration: Option<Spanned<OrDefault<RawReregistration>>>,
    /// `temporary_access_pass:`
    #[serde(default, deserialize_with = "present")]
    pub temporary_access_pass: Option<Spanned<OrDefault<RawTap>>>,
    /// `add_to_group:`
    #[serde(default, deserialize_with = "present")]
    pub add_to_group: Option<Spanned<RawAddToGroup>>,
    /// `confirm_compromised:`
    #[serde(default, deserialize_with = "present")]
    pub confirm_compromised: Option<Spanned<NoOptions>>,
    /// `notify:`
    #[serde(default, deserialize_with = "present")]
    pub notify: Option<Spanned<RawNotify>>,
    /// `when:`
    #[serde(default)]
    pub when: Option<SpStr>,
}

/// A key that is present yields `Some`, even when its value is empty (`revoke_sessions:`).
fn present<'de, D, T>(d: D) -> Result<Option<Spanned<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Spanned::<T>::deserialize(d).map(Some)
}

/// The value of a key that takes no options: empty (`key:`) or `{}`.
#[derive(Debug, Clone, Copy)]
pub struct NoOptions;

impl<'de> Deserialize<'de> for NoOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NoOptions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("nothing or `{}` (this takes no options)")
            }
            fn visit_unit<E: de::Error>(self) -> Result<NoOptions, E> {
                Ok(NoOptions)
            }
            fn visit_none<E: de::Error>(self) -> Result<NoOptions, E> {
                Ok(NoOptions)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<NoOptions, A::Error> {
                match m.next_key::<String>()? {
                    Some(k) => Err(de::Error::custom(format!(
                        "unknown field `{k}`: this takes no options"
                    ))),
                    None => Ok(NoOptions),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Options whose keys all have defaults: an empty value (`key:`) means all defaults.
#[derive(Debug, Default)]
pub struct OrDefault<T>(pub T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for OrDefault<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = OrDefault<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("options as `key: value` pairs, or nothing for the defaults")
            }
            fn visit_unit<E: de::Error>(self) -> Result<OrDefault<T>, E> {
                Ok(OrDefault(T::default()))
            }
            fn visit_none<E: de::Error>(self) -> Result<OrDefault<T>, E> {
                Ok(OrDefault(T::default()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<OrDefault<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(OrDefault)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `reset_password:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResetPassword {
    /// `mode`
    pub mode: Spanned<RawPasswordMode>,
    /// `force_change`
    #[serde(default)]
    pub force_change: Option<Spanned<bool>>,
    /// `require_mfa`
    #[serde(default)]
    pub require_mfa: Option<Spanned<bool>>,
}

/// `reset_password.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawPasswordMode {
    /// scramble
    Scramble,
    /// temporary
    Temporary,
    /// keep
    Keep,
}

/// `require_mfa_reregistration:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReregistration {
    /// `remove`
    #[serde(default)]
    pub remove: Option<SpList<String>>,
}

/// `temporary_access_pass:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTap {
    /// `lifetime_minutes`
    #[serde(default)]
    pub lifetime_minutes: Option<Spanned<u32>>,
    /// `usable_once`
    #[serde(default)]
    pub usable_once: Option<bool>,
}

/// `add_to_group:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAddToGroup {
    /// `group_id`
    pub group_id: SpStr,
    /// `expiry`
    #[serde(default)]
    pub expiry: Option<SpStr>,
}

/// `notify:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// `template`
    pub template: SpStr,
    /// `channels`
    pub channels: SpList<String>,
    /// `to`
    #[serde(default)]
    pub to: Option<Spanned<RawRecipient>>,
    /// `out_of_band`
    #[serde(default)]
    pub out_of_band: Option<Spanned<bool>>,
}

/// `notify.to`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawRecipient {
    /// user
    User,
    /// manager
    Manager,
}

/// `communications:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommunications {
    /// `soc_summary`
    #[serde(default)]
    pub soc_summary: Option<RawMessage>,
    /// `manual_queue`
    #[serde(default)]
    pub manual_queue: Option<RawMessage>,
    /// `helpdesk_brief`
    #[serde(default)]
    pub helpdesk_brief: Option<RawMessage>,
    /// `out_of_band`
    #[serde(default)]
    pub out_of_band: Option<Spanned<bool>>,
    /// `deliver_within`
    #[serde(default)]
    pub deliver_within: Option<SpStr>,
}

/// `{ template, channels }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMessage {
    /// `template`
    pub template: SpStr,
    /// `channels`
    pub channels: SpList<String>,
}
