//! `templates/<name>/template.yaml`: what a template is for. The context decides which
//! values it may name; a template that delivers a secret says which.

use serde::Deserialize;

/// The name of the description file in each template's directory.
pub const META_FILE: &str = "template.yaml";

/// Which context a template renders with (`crate::comms::context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextKind {
    /// A per-user notice of a `notify` step: `NoticeContext`.
    Notice,
    /// A run-level message of `communications:`: `RunContext`.
    Run,
    /// A message of the single-user verification flow: `FlowContext`.
    Flow,
}

impl ContextKind {
    /// The name used in `template.yaml` and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextKind::Notice => "notice",
            ContextKind::Run => "run",
            ContextKind::Flow => "flow",
        }
    }
}

/// The secret a template delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// A generated temporary password.
    TemporaryPassword,
    /// A Temporary Access Pass.
    TemporaryAccessPass,
}

impl SecretKind {
    /// The name `SecretContext::kind` carries.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::TemporaryPassword => "temporary_password",
            SecretKind::TemporaryAccessPass => "temporary_access_pass",
        }
    }
}

/// A template's description file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateMeta {
    /// What the message is, for operators reading the catalog.
    pub description: String,
    /// The context it renders with.
    pub context: ContextKind,
    /// The secret it delivers, if any: rendered only with that secret in the context.
    #[serde(default)]
    pub secret: Option<SecretKind>,
}

impl TemplateMeta {
    /// Parse a description file; the error names the line and column.
    pub fn parse(text: &str) -> Result<TemplateMeta, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_keys() {
        let m =
            TemplateMeta::parse("description: x\ncontext: notice\nsecret: temporary_access_pass\n")
                .unwrap();
        assert_eq!(m.context, ContextKind::Notice);
        assert_eq!(m.secret, Some(SecretKind::TemporaryAccessPass));
        assert!(TemplateMeta::parse("description: x\ncontext: run\ncolour: red\n").is_err());
        assert!(TemplateMeta::parse("description: x\ncontext: chat\n").is_err());
    }
}
