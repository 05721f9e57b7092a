//! `resetctl render TEMPLATE --user UPN`: preview one communication as its recipient will
//! see it, for a real user of a tenant (read only; nothing is sent). The text forms are
//! printed (SMS with its encoding and segments), the card as JSON, and the HTML mail is
//! written to a file whose path is printed, to open in a browser.
//!
//! A template that delivers a secret is previewed with an obviously fake sample secret:
//! a preview never creates or shows a real one.

use std::path::PathBuf;

use resetctl::comms::context::{FlowContext, NoticeContext, Person, RunContext, SecretContext};
use resetctl::comms::message::Content;
use resetctl::comms::recipient::Contact;
use resetctl::comms::sms_text;
use resetctl::comms::template::{Catalog, ContextKind, Form};

use super::context::Context;
use super::{CmdResult, Exit, Failure, paths, validate};
use crate::cli::{GlobalArgs, OutputFormat, RenderArgs};

/// `resetctl render`.
pub async fn run(global: &GlobalArgs, args: RenderArgs) -> CmdResult {
    let context = Context::load(global)?;
    let templates = validate::Templates::new(&context.config, args.templates.as_deref())?;
    let catalog = templates.catalog();
    let info = catalog.info(&args.template).ok_or_else(|| {
        Failure::new(
            Exit::Invalid,
            format!(
                "no template `{}`; known: {}",
                args.template,
                catalog.names().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let meta = info
        .meta
        .as_ref()
        .map_err(|e| Failure::new(Exit::Invalid, format!("template `{}`: {e}", args.template)))?;
    let forms: Vec<Form> = match args.channel.as_deref() {
        None => {
            let mut forms: Vec<Form> = info.languages.values().flatten().copied().collect();
            forms.sort_by_key(|f| f.as_str());
            forms.dedup();
            forms
        }
        Some(channel) => vec![form_of(channel)?],
    };

    let tenant = context
        .connect_read_only(args.tenant.tenant.as_deref())
        .await?;
    let looked_up = async {
        let user = tenant
            .directory
            .get_user(&args.user)
            .await
            .map_err(|e| Failure::new(Exit::Config, format!("looking up {}: {e}", args.user)))?
            .ok_or_else(|| {
                Failure::new(
                    Exit::Invalid,
                    format!("no user {} in tenant {}", args.user, tenant.name),
                )
            })?;
        let manager =
            if args.to_manager {
                tenant.directory.get_manager(&user.id).await.map_err(|e| {
                    Failure::new(Exit::Config, format!("looking up the manager: {e}"))
                })?
            } else {
                None
            };
        Ok::<_, Failure>((user, manager))
    }
    .await;
    // The organisation the tenant's messages are signed with (the demo tenant has its own).
    let tenant_org = tenant
        .messaging
        .as_ref()
        .and_then(|m| m.organisation.clone());
    tenant.close().await;
    let (user, manager) = looked_up?;
    let user = Contact::of_user(&user, None);
    let recipient = match (&manager, args.to_manager) {
        (Some(manager), true) => Contact::of_manager(manager, None),
        (None, true) => {
            return Err(Failure::new(
                Exit::Invalid,
                format!("{} has no manager in the directory", args.user),
            ));
        }
        _ => user.clone(),
    };
    let org = tenant_org
        .or_else(|| context.config.organisation.clone())
        .unwrap_or_else(resetctl::comms::template::sample_organisation);
    let secret = meta.secret.map(SecretContext::sample);
    let language = recipient.language.clone();

    let mut rendered = Vec::new();
    for form in &forms {
        let content = render_one(
            &catalog,
            &args.template,
            meta.context,
            *form,
            language.as_deref(),
            &org,
            &user.person,
            &recipient.person,
            args.to_manager,
            secret.clone(),
        )
        .map_err(|e| Failure::new(Exit::Invalid, e))?;
        rendered.push((*form, content));
    }
    show(global, &args, &rendered, language.as_deref())
}

/// The form a `--channel` names.
fn form_of(channel: &str) -> Result<Form, Failure> {
    match channel {
        "email" => Ok(Form::Email),
        "sms" => Ok(Form::Sms),
        "teams" | "card" => Ok(Form::Card),
        other => Err(Failure::new(
            Exit::Invalid,
            format!("--channel {other}: expected email, sms or teams"),
        )),
    }
}

/// Render one form with the context the template is written for.
#[allow(clippy::too_many_arguments)]
pub(super) fn render_one(
    catalog: &Catalog,
    name: &str,
    kind: ContextKind,
    form: Form,
    language: Option<&str>,
    org: &resetctl::comms::context::Organisation,
    user: &Person,
    recipient: &Person,
    to_manager: bool,
    secret: Option<SecretContext>,
) -> Result<Content, String> {
    let result = match kind {
        ContextKind::Notice => {
            let mut ctx = NoticeContext::sample();
            ctx.org = org.clone();
            ctx.user = user.clone();
            ctx.recipient = recipient.clone();
            ctx.recipient_role = if to_manager { "manager" } else { "user" };
            ctx.secret = secret;
            catalog.render(name, form, language, &ctx)
        }
        ContextKind::Run => {
            let mut ctx = RunContext::sample();
            ctx.org = org.clone();
            catalog.render(name, form, language, &ctx)
        }
        ContextKind::Flow => {
            let mut ctx = FlowContext::sample();
            ctx.org = org.clone();
            ctx.user = user.clone();
            ctx.recipient = recipient.clone();
            ctx.secret = secret;
            catalog.render(name, form, language, &ctx)
        }
    };
    result.map_err(|e| e.to_string())
}

/// Print the forms (HTML to a file), or one JSON document.
fn show(
    global: &GlobalArgs,
    args: &RenderArgs,
    rendered: &[(Form, Content)],
    language: Option<&str>,
) -> CmdResult {
    let html_path = |html: &str| -> Result<PathBuf, Failure> {
        let path = match &args.html {
            Some(path) => path.clone(),
            None => {
                let dir = paths::create_data_dir()?.join("previews");
                std::fs::create_dir_all(&dir).map_err(|e| Failure::new(Exit::Config, e))?;
                let safe: String = format!("{}-{}", args.template, args.user)
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                dir.join(format!("{safe}.html"))
            }
        };
        std::fs::write(&path, html)
            .map_err(|e| Failure::new(Exit::Config, format!("{}: {e}", path.display())))?;
        Ok(path)
    };
    let mut doc = serde_json::Map::new();
    doc.insert("template".into(), args.template.clone().into());
    doc.insert("user".into(), args.user.clone().into());
    doc.insert("language".into(), language.unwrap_or("en").into());
    for (form, content) in rendered {
        match content {
            Content::Email {
                subject,
                html,
                text,
            } => {
                let path = html_path(html)?;
                if global.output == OutputFormat::Text {
                    outln!("== email\nSubject: {subject}\n\n{text}\n");
                    outln!(
                        "HTML part written to {} (open it in a browser)\n",
                        path.display()
                    );
                }
                doc.insert(
                    "email".into(),
                    serde_json::json!({"subject": subject, "text": text, "html_file": path}),
                );
            }
            Content::Sms { text } => {
                let cost = sms_text::cost(text);
                let encoding = match cost.encoding {
                    sms_text::Encoding::Gsm7 => "GSM-7",
                    sms_text::Encoding::Ucs2 => "UCS-2",
                };
                if global.output == OutputFormat::Text {
                    outln!(
                        "== sms ({encoding}, {} units, {} segment(s))\n{text}\n",
                        cost.units,
                        cost.segments
                    );
                }
                doc.insert(
                    "sms".into(),
                    serde_json::json!({"text": text, "encoding": encoding, "units": cost.units, "segments": cost.segments}),
                );
            }
            Content::Card { card, summary } => {
                if global.output == OutputFormat::Text {
                    outln!(
                        "== teams card ({summary})\n{}\n",
                        serde_json::to_string_pretty(card).unwrap_or_default()
                    );
                }
                doc.insert("card".into(), card.clone());
            }
            Content::Json(value) => {
                doc.insert(form.as_str().into(), value.clone());
            }
        }
    }
    if global.output == OutputFormat::Json {
        outln!("{}", serde_json::Value::Object(doc));
    }
    Ok(Exit::Success)
}
