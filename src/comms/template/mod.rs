//! Message templates: the catalog of `templates/` (embedded, overridable from a directory),
//! rendering with the contexts of [`crate::comms::context`] in the recipient's language, the
//! safety rules user data is rendered under, and the checks `resetctl validate` runs on every
//! template a playbook names.
//!
//! Layout: `templates/<name>/template.yaml` says what the template is for (its context, the
//! secret it delivers); `templates/<name>/<lang>/` holds its forms: `subject.txt` (always),
//! `email.html` + `email.txt` (mail), `sms.txt` (text message), `card.json` (Teams Adaptive
//! Card). Directories starting with `_` hold shared layouts and partials.

mod catalog;
mod check;
pub mod language;
pub mod meta;
pub mod safety;
mod samples;

pub(crate) use catalog::embedded_pages;
pub use catalog::{Catalog, TemplateInfo};
pub use check::{TemplateFindings, check_playbook};
pub use meta::{ContextKind, SecretKind, TemplateMeta};
pub use samples::sample_organisation;

use crate::comms::context::{FlowContext, NoticeContext, RunContext};
use crate::playbook::Channel;

/// A form of a message: which files render it and which channel carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Form {
    /// Mail: subject, HTML and plain text (also the generic webhook's text).
    Email,
    /// A text message.
    Sms,
    /// A Teams Adaptive Card with the subject as its summary.
    Card,
}

impl Form {
    /// Every form.
    pub const ALL: [Form; 3] = [Form::Email, Form::Sms, Form::Card];

    /// The files of a language directory this form needs.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Form::Email => &["subject.txt", "email.html", "email.txt"],
            Form::Sms => &["sms.txt"],
            Form::Card => &["card.json", "subject.txt"],
        }
    }

    /// The form a playbook channel sends (the webhook carries the mail's plain text).
    pub fn for_channel(channel: Channel) -> Form {
        match channel {
            Channel::Email | Channel::Webhook => Form::Email,
            Channel::Sms => Form::Sms,
            Channel::Teams => Form::Card,
        }
    }

    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Email => "email",
            Form::Sms => "sms",
            Form::Card => "card",
        }
    }
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A context a template renders with; ties each context type to the `context:` its
/// templates declare, so a run-level template cannot be rendered as a per-user notice.
pub trait TemplateContext: serde::Serialize {
    /// The `context:` of the templates this renders.
    const KIND: ContextKind;
}

impl TemplateContext for NoticeContext {
    const KIND: ContextKind = ContextKind::Notice;
}

impl TemplateContext for RunContext {
    const KIND: ContextKind = ContextKind::Run;
}

impl TemplateContext for FlowContext {
    const KIND: ContextKind = ContextKind::Flow;
}

/// Why a template could not be rendered. Messages name templates and files, never a value of
/// the context (which may hold a secret).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No template of that name.
    #[error("unknown template `{name}`; templates of this kind: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The templates that exist for the same context, comma-separated.
        known: String,
    },
    /// The template lacks the files of a form in a language.
    #[error("template `{name}` has no {form} form in `{language}` (needs {})", .form.files().join(", "))]
    MissingForm {
        /// Template name.
        name: String,
        /// The form.
        form: Form,
        /// The language.
        language: String,
    },
    /// `template.yaml` is missing or invalid.
    #[error("template `{name}` is not described: {message}")]
    Describe {
        /// Template name.
        name: String,
        /// What is wrong with the description.
        message: String,
    },
    /// The template is for another context.
    #[error("template `{name}` is a {actual} template; it cannot be used as a {wanted} message")]
    WrongContext {
        /// Template name.
        name: String,
        /// Its `context:`.
        actual: &'static str,
        /// The context it was rendered with.
        wanted: &'static str,
    },
    /// The template delivers a secret the context does not hold.
    #[error("template `{name}` delivers a {kind}, and this message has none")]
    MissingSecret {
        /// Template name.
        name: String,
        /// The secret it delivers.
        kind: &'static str,
    },
    /// A template that delivers a secret cannot go to a webhook.
    #[error("template `{name}` delivers a secret and cannot be sent to a webhook")]
    SecretOverWebhook {
        /// Template name.
        name: String,
    },
    /// Tera could not compile or render a file (`FILE:LINE:COL: message`).
    #[error("{message}")]
    Tera {
        /// The error, positioned in the template file.
        message: String,
    },
    /// A card template did not render to JSON.
    #[error("{file}: the rendered card is not JSON: {message}")]
    CardJson {
        /// The card file.
        file: String,
        /// The parser's error (line and column in the rendered text).
        message: String,
    },
    /// A card does not validate against the Adaptive Card 1.5 schema.
    #[error("{file}: the card does not validate against the Adaptive Card 1.5 schema: {problems}")]
    InvalidCard {
        /// The card file.
        file: String,
        /// The violations, by JSON pointer, without the offending values.
        problems: String,
    },
    /// The context could not be serialised (a bug, not bad input).
    #[error("the message context cannot be serialised: {message}")]
    Context {
        /// serde's error.
        message: String,
    },
    /// The override directory could not be read.
    #[error("cannot read template override {path}: {message}")]
    Overrides {
        /// The file or directory.
        path: String,
        /// Why.
        message: String,
    },
}

/// The generic webhook's JSON body (`POST` with `X-Resetctl-Signature`):
/// `{"type": "resetctl.message", "key", "template", "subject", "text", "data"}`, where `data`
/// is the message's context and `key` the message's idempotency key.
pub fn webhook_body(
    key: uuid::Uuid,
    template: &str,
    subject: &str,
    text: &str,
    data: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "type": "resetctl.message",
        "key": key.to_string(),
        "template": template,
        "subject": subject,
        "text": text,
        "data": data,
    })
}

#[cfg(test)]
mod tests;
