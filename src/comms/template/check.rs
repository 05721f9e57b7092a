//! The template checks of `resetctl validate` (and of `plan` and `run`, which load playbooks
//! the same way): every template a playbook names exists, is for the right context, has the
//! form each of its channels needs in every language it is written in, renders with the
//! sample context, yields a card that validates and an SMS of at most two segments.

use crate::comms::context::{NoticeContext, Organisation, Person, RunContext, SecretContext};
use crate::comms::message::Content;
use crate::comms::sms_text;
use crate::playbook::{
    Channel, Diagnostic, Loaded, Recipient, Severity, TemplatePurpose, TemplateUse,
};

use super::{Catalog, ContextKind, Form, SecretKind, TemplateContext, TemplateError};

/// Most segments a message should cost; more is a warning.
const MAX_SMS_SEGMENTS: usize = 2;

/// What the template checks found, positioned at the `template:` values of the playbook.
#[derive(Debug, Default)]
pub struct TemplateFindings {
    /// Problems that make the playbook unusable: nothing may run.
    pub errors: Vec<Diagnostic>,
    /// Things worth a look (a long SMS).
    pub warnings: Vec<Diagnostic>,
}

/// Check every template `loaded` names against `catalog`, rendering with sample contexts that
/// carry `org` (the configured organisation, or [`super::sample_organisation`]).
pub fn check_playbook(loaded: &Loaded, catalog: &Catalog, org: &Organisation) -> TemplateFindings {
    let mut found = TemplateFindings::default();
    for used in &loaded.templates {
        let mut problems = Vec::new();
        let mut cautions = Vec::new();
        check_use(used, catalog, org, &mut problems, &mut cautions);
        for message in problems {
            found
                .errors
                .push(loaded.diagnostic_at(used, Severity::Error, message));
        }
        for message in cautions {
            found
                .warnings
                .push(loaded.diagnostic_at(used, Severity::Warning, message));
        }
    }
    found
}

fn check_use(
    used: &TemplateUse,
    catalog: &Catalog,
    org: &Organisation,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let name = used.template.as_str();
    let wanted = match used.purpose {
        TemplatePurpose::Notice { .. } => ContextKind::Notice,
        TemplatePurpose::RunLevel(_) => ContextKind::Run,
    };
    let Some(info) = catalog.info(name) else {
        errors.push(format!(
            "unknown template `{name}`: templates for {} messages are {}",
            describe_kind(wanted),
            catalog.names_of(wanted).join(", ")
        ));
        return;
    };
    let meta = match &info.meta {
        Ok(meta) => meta,
        Err(e) => {
            errors.push(format!("template `{name}` is not described: {e}"));
            return;
        }
    };
    if meta.context != wanted {
        errors.push(format!(
            "template `{name}` is written for {} messages, not for {} messages",
            describe_kind(meta.context),
            describe_kind(wanted)
        ));
        return;
    }
    if let (
        Some(kind),
        TemplatePurpose::Notice {
            to,
            temporary_password_before,
            access_pass_before,
        },
    ) = (meta.secret, used.purpose)
    {
        check_secret_use(
            name,
            kind,
            to,
            temporary_password_before,
            access_pass_before,
            &used.channels,
            errors,
        );
    }
    if info.languages.is_empty() {
        errors.push(format!(
            "template `{name}` has no language directory (such as `{name}/en/`)"
        ));
        return;
    }
    let mut forms: Vec<Form> = used
        .channels
        .iter()
        .map(|c| Form::for_channel(*c))
        .collect();
    forms.sort();
    forms.dedup();
    for form in forms {
        for (lang, has) in &info.languages {
            if !has.contains(&form) {
                let channel = used
                    .channels
                    .iter()
                    .find(|c| Form::for_channel(**c) == form)
                    .map_or("", |c| c.as_str());
                errors.push(format!(
                    "template `{name}` has no {form} form in `{lang}`, which channel {channel} needs ({})",
                    form.files()
                        .iter()
                        .map(|f| format!("{name}/{lang}/{f}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            }
            match render_samples(catalog, used, meta.secret, org, form, lang) {
                Err(e) => errors.push(format!("template `{name}` ({lang}, {form}): {e}")),
                Ok(Content::Sms { text }) => {
                    let cost = sms_text::cost(&text);
                    if cost.segments > MAX_SMS_SEGMENTS {
                        warnings.push(format!(
                            "template `{name}` ({lang}): the SMS for the sample user is {} segments ({} {:?} units); keep it within {MAX_SMS_SEGMENTS}",
                            cost.segments, cost.units, cost.encoding
                        ));
                    }
                }
                Ok(_) => {}
            }
        }
    }
    if used.channels.contains(&Channel::Webhook)
        && let Err(e) =
            catalog.render_webhook(name, None, &run_sample(org, true), uuid::Uuid::nil())
    {
        errors.push(format!("template `{name}` (webhook): {e}"));
    }
}

/// A template that delivers a secret: the secret must exist by then, and go only where a
/// secret may go (not Teams, not the user's own mailbox).
fn check_secret_use(
    name: &str,
    kind: SecretKind,
    to: Recipient,
    temporary_password_before: bool,
    access_pass_before: bool,
    channels: &[Channel],
    errors: &mut Vec<String>,
) {
    let (created, what) = match kind {
        SecretKind::TemporaryPassword => (temporary_password_before, "temporary password"),
        SecretKind::TemporaryAccessPass => (access_pass_before, "Temporary Access Pass"),
    };
    if !created {
        errors.push(format!(
            "template `{name}` delivers a {what}, but no earlier step creates one"
        ));
    }
    if channels.contains(&Channel::Teams) {
        errors.push(format!(
            "template `{name}` delivers a {what}: a Teams card is posted to a chat or channel, not to one verified person; send it by sms (or email to: manager)"
        ));
    }
    if channels.contains(&Channel::Email) && to == Recipient::User {
        errors.push(format!(
            "template `{name}` delivers a {what}: not by email to the user's own mailbox, which the attacker may read; send it by sms"
        ));
    }
}

fn describe_kind(kind: ContextKind) -> &'static str {
    match kind {
        ContextKind::Notice => "per-user (notify)",
        ContextKind::Run => "run-level (communications)",
        ContextKind::Flow => "single-user verification",
    }
}

/// Render with the full sample and with one whose optional values are all absent, so an
/// unguarded optional value is found here and not in the middle of a run. The full sample's
/// result is returned.
fn render_samples(
    catalog: &Catalog,
    used: &TemplateUse,
    secret: Option<SecretKind>,
    org: &Organisation,
    form: Form,
    lang: &str,
) -> Result<Content, TemplateError> {
    match used.purpose {
        TemplatePurpose::Notice { to, .. } => {
            let full = notice_sample(org, to, secret, true);
            let content = render(catalog, &used.template, form, lang, &full)?;
            render(
                catalog,
                &used.template,
                form,
                lang,
                &notice_sample(org, to, secret, false),
            )?;
            Ok(content)
        }
        TemplatePurpose::RunLevel(_) => {
            let content = render(catalog, &used.template, form, lang, &run_sample(org, true))?;
            render(catalog, &used.template, form, lang, &run_sample(org, false))?;
            Ok(content)
        }
    }
}

fn render<C: TemplateContext>(
    catalog: &Catalog,
    name: &str,
    form: Form,
    lang: &str,
    ctx: &C,
) -> Result<Content, TemplateError> {
    catalog.render_exact(name, form, lang, ctx)
}

/// The sample notice for a recipient; `full` fills every optional value, otherwise none.
fn notice_sample(
    org: &Organisation,
    to: Recipient,
    secret: Option<SecretKind>,
    full: bool,
) -> NoticeContext {
    let mut ctx = NoticeContext::sample();
    ctx.org = org.clone();
    if to == Recipient::Manager {
        ctx.recipient = Person::sample_manager();
        ctx.recipient_role = "manager";
    }
    ctx.secret = secret.map(SecretContext::sample);
    if let Some(s) = ctx.secret.as_ref().map(|s| s.kind) {
        ctx.actions.access_pass = s == "temporary_access_pass";
    }
    if !full {
        ctx.recipient.given_name = None;
        ctx.user.given_name = None;
        ctx.incident.description = None;
        ctx.incident.reference = None;
        if let Some(s) = ctx.secret.as_mut() {
            s.lifetime_minutes = None;
            s.usable_once = None;
        }
    }
    ctx
}

/// The sample run-level context; `full` as for [`notice_sample`].
fn run_sample(org: &Organisation, full: bool) -> RunContext {
    let mut ctx = RunContext::sample();
    ctx.org = org.clone();
    if !full {
        ctx.state = "planned";
        ctx.manual.clear();
        ctx.failures.clear();
        ctx.files.clear();
        ctx.elapsed_seconds = None;
        ctx.incident.description = None;
        ctx.incident.reference = None;
    }
    ctx
}
