//! Tests of the catalog: every shipped template renders, every card validates, rendering is
//! safe with hostile user data, overrides replace single files, and the golden files.

use std::collections::BTreeSet;

use super::*;
use crate::comms::context::{FlowContext, NoticeContext, Person, RunContext, SecretContext};
use crate::comms::message::Content;

/// Three users: plain, hostile (HTML and template syntax, controls, bidi), non-Latin.
fn people() -> Vec<(&'static str, Person)> {
    vec![
        ("plain", Person::sample()),
        (
            "hostile",
            Person {
                display_name:
                    "<script>alert(1)</script> {{ 7*7 }} {% raw %} \"q\" \\ \u{202e}evil\u{1b}[2J"
                        .into(),
                given_name: Some("<b>{{ 7*7 }}</b>".into()),
                upn: "x\"y@contoso.com".into(),
            },
        ),
        (
            "non-latin",
            Person {
                display_name: "Zoë Ðorđević 山田 太郎".into(),
                given_name: Some("山田".into()),
                upn: "yamada@contoso.com".into(),
            },
        ),
    ]
}

fn notice_for(meta: &TemplateMeta, person: &Person, to_manager: bool) -> NoticeContext {
    let mut ctx = NoticeContext::sample();
    ctx.user = person.clone();
    ctx.recipient = person.clone();
    if to_manager {
        ctx.recipient = Person::sample_manager();
        ctx.recipient_role = "manager";
    }
    ctx.secret = meta.secret.map(SecretContext::sample);
    ctx.actions.access_pass = meta.secret == Some(SecretKind::TemporaryAccessPass);
    ctx
}

fn run_for(person: &Person) -> RunContext {
    let mut ctx = RunContext::sample();
    ctx.manual[0].display_name = person.display_name.clone();
    ctx.manual[0].upn = person.upn.clone();
    ctx
}

fn flow_for(meta: &TemplateMeta, person: &Person) -> FlowContext {
    let mut ctx = FlowContext::sample();
    ctx.user = person.clone();
    ctx.secret = meta.secret.map(SecretContext::sample);
    ctx
}

/// Render one template in every language and form for one person.
fn render_all(catalog: &Catalog, name: &str, person: &Person) -> Vec<(String, Form, Content)> {
    let info = catalog.info(name).unwrap();
    let meta = info.meta.as_ref().unwrap();
    let mut out = Vec::new();
    for (lang, forms) in &info.languages {
        for form in forms {
            let content = match meta.context {
                ContextKind::Notice => {
                    let manager = name.contains("manager");
                    catalog.render_exact(name, *form, lang, &notice_for(meta, person, manager))
                }
                ContextKind::Run => catalog.render_exact(name, *form, lang, &run_for(person)),
                ContextKind::Flow => {
                    catalog.render_exact(name, *form, lang, &flow_for(meta, person))
                }
            };
            let content = content.unwrap_or_else(|e| panic!("{name} {lang} {form}: {e}"));
            out.push((lang.clone(), *form, content));
        }
    }
    out
}

/// Every file under `templates/` is embedded, and nothing else.
#[test]
fn the_embedded_set_is_the_directory() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut on_disk = BTreeSet::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(&root).unwrap();
                on_disk.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let embedded: BTreeSet<String> = catalog::embedded_names().into_iter().collect();
    assert_eq!(embedded, on_disk);
    assert!(on_disk.len() > 100, "{}", on_disk.len());
}

/// The templates the shipped playbooks and the single-user flow name all exist, in English and
/// German, with the forms their channels need.
#[test]
fn the_catalog_has_every_template_in_en_and_de() {
    let catalog = Catalog::embedded();
    let expected = [
        (
            "credential-dump-notice",
            ContextKind::Notice,
            &[Form::Email, Form::Sms, Form::Card][..],
        ),
        ("credential-dump-sms", ContextKind::Notice, &[Form::Sms]),
        (
            "helpdesk-brief",
            ContextKind::Run,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        (
            "manual-queue",
            ContextKind::Run,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        (
            "manual-queue-privileged",
            ContextKind::Run,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        (
            "soc-summary",
            ContextKind::Run,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        ("ransomware-notice-sms", ContextKind::Notice, &[Form::Sms]),
        (
            "ransomware-notice-manager",
            ContextKind::Notice,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        (
            "tap-for-manager",
            ContextKind::Notice,
            &[Form::Email, Form::Sms],
        ),
        (
            "mfa-reset-notice",
            ContextKind::Notice,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        ("temporary-password-sms", ContextKind::Notice, &[Form::Sms]),
        (
            "temporary-password-manager",
            ContextKind::Notice,
            &[Form::Email],
        ),
        (
            "password-spray-notice",
            ContextKind::Notice,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        (
            "privileged-compromise-notice",
            ContextKind::Notice,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        (
            "verify-push-sent",
            ContextKind::Flow,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        (
            "verify-manager-approval",
            ContextKind::Flow,
            &[Form::Email, Form::Card],
        ),
        ("verify-manager-sms", ContextKind::Flow, &[Form::Sms]),
        (
            "verify-escalation",
            ContextKind::Flow,
            &[Form::Email, Form::Card],
        ),
        (
            "verify-outcome",
            ContextKind::Flow,
            &[Form::Email, Form::Sms, Form::Card],
        ),
        (
            "temporary-password-delivery",
            ContextKind::Flow,
            &[Form::Email, Form::Sms],
        ),
        (
            "access-pass-delivery",
            ContextKind::Flow,
            &[Form::Email, Form::Sms],
        ),
        (
            "verify-mfa-approval",
            ContextKind::Flow,
            &[Form::Email, Form::Card],
        ),
        (
            "verify-mfa-access-pass",
            ContextKind::Flow,
            &[Form::Email, Form::Sms],
        ),
        (
            "verify-mfa-done",
            ContextKind::Flow,
            &[Form::Email, Form::Card],
        ),
    ];
    for (name, kind, forms) in expected {
        let info = catalog
            .info(name)
            .unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(info.meta.as_ref().unwrap().context, kind, "{name}");
        assert_eq!(info.language_tags(), ["de", "en"], "{name}");
        for (lang, has) in &info.languages {
            let mut has = has.clone();
            has.sort();
            assert_eq!(has, forms, "{name} {lang}");
        }
    }
    assert_eq!(catalog.names().count(), expected.len());
}

/// A secret never goes into a card; secret templates say which secret they carry.
#[test]
fn secrets_are_declared_and_never_in_cards() {
    let catalog = Catalog::embedded();
    for name in catalog.names() {
        let info = catalog.info(name).unwrap();
        let meta = info.meta.as_ref().unwrap();
        let uses_secret = info.languages.keys().any(|lang| {
            Form::ALL.iter().flat_map(|f| f.files()).any(|f| {
                catalog
                    .source(&format!("{name}/{lang}/{f}"))
                    .is_some_and(|s| s.contains("secret.value"))
            })
        });
        assert_eq!(uses_secret, meta.secret.is_some(), "{name}");
        if meta.secret.is_some() {
            assert!(
                info.languages.values().all(|f| !f.contains(&Form::Card)),
                "{name}"
            );
        }
    }
}

/// Every template, language and form renders for the three users; every card validates
/// against the Adaptive Card schema (render checks it), and every per-user card mentions its
/// reader.
#[test]
fn every_template_renders_and_every_card_validates() {
    let catalog = Catalog::embedded();
    let mut cards = 0;
    for name in catalog.names().collect::<Vec<_>>() {
        for (_, person) in people() {
            for (lang, form, content) in render_all(&catalog, name, &person) {
                if let Content::Card { card, summary } = &content {
                    cards += 1;
                    assert!(!summary.is_empty());
                    let kind = catalog.info(name).unwrap().meta.as_ref().unwrap().context;
                    if kind != ContextKind::Run {
                        let mention = &card["msteams"]["entities"][0];
                        assert_eq!(mention["type"], "mention", "{name} {lang}");
                        let text = mention["text"].as_str().unwrap();
                        assert!(card["body"][0]["text"].as_str().unwrap().contains(text));
                    }
                }
                if let Content::Sms { text } = &content {
                    assert!(!text.is_empty(), "{name} {lang} {form}");
                }
            }
        }
    }
    assert!(cards > 40, "{cards}");
}

/// The hostile name arrives literally in text and SMS, escaped in HTML, intact in the card's
/// JSON; control and bidirectional characters are gone everywhere.
#[test]
fn hostile_names_are_data() {
    let catalog = Catalog::embedded();
    let (_, hostile) = people().remove(1);
    let literal = "<script>alert(1)</script> {{ 7*7 }} {% raw %} \"q\" \\ evil[2J";
    let mut ctx = NoticeContext::sample();
    ctx.user = hostile.clone();
    ctx.recipient = hostile;
    for lang in [Some("en"), Some("de-DE")] {
        let Content::Email {
            subject,
            html,
            text,
        } = catalog
            .render("credential-dump-notice", Form::Email, lang, &ctx)
            .unwrap()
        else {
            panic!()
        };
        assert!(text.contains("x\"y@contoso.com"), "{text}");
        assert!(!html.contains("<script>"), "{html}");
        let escaped_given = "&lt;b&gt;{{ 7*7 }}&lt;/b&gt;";
        let escaped_name =
            "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} {% raw %} &quot;q&quot;";
        assert!(
            html.contains(escaped_given) || html.contains(escaped_name),
            "{html}"
        );
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("49") && !text.contains("49"));
        for out in [&subject, &html, &text] {
            assert!(
                !out.contains('\u{202e}') && !out.contains('\u{1b}'),
                "{out}"
            );
        }
        let Content::Card { card, .. } = catalog
            .render("credential-dump-notice", Form::Card, lang, &ctx)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(card["msteams"]["entities"][0]["mentioned"]["name"], literal);
        assert_eq!(
            card["msteams"]["entities"][0]["mentioned"]["id"],
            "x\"y@contoso.com"
        );
        assert!(card["body"][0]["text"].as_str().unwrap().contains(literal));
    }
    let mut ctx = FlowContext::sample();
    ctx.user.display_name = "A\u{202e}B\u{0}C\r\n{{ x }}".into();
    let Content::Sms { text } = catalog
        .render("verify-manager-sms", Form::Sms, None, &ctx)
        .unwrap()
    else {
        panic!()
    };
    assert!(text.contains("ABC\n{{ x }}"), "{text}");
}

#[test]
fn the_language_follows_preferred_language() {
    let catalog = Catalog::embedded();
    let ctx = NoticeContext::sample();
    let sms = |lang| match catalog
        .render("credential-dump-sms", Form::Sms, lang, &ctx)
        .unwrap()
    {
        Content::Sms { text } => text,
        _ => panic!(),
    };
    assert!(sms(Some("de-DE")).contains("Passwort"));
    assert!(sms(Some("de")).contains("Passwort"));
    assert!(sms(Some("fr-FR")).contains("password"));
    assert!(sms(None).contains("password"));
}

#[test]
fn the_wrong_context_and_a_missing_secret_are_refused() {
    let catalog = Catalog::embedded();
    let err = catalog
        .render("soc-summary", Form::Email, None, &NoticeContext::sample())
        .unwrap_err();
    assert!(err.to_string().contains("is a run template"), "{err}");
    let err = catalog
        .render("tap-for-manager", Form::Sms, None, &NoticeContext::sample())
        .unwrap_err();
    assert!(matches!(err, TemplateError::MissingSecret { .. }), "{err}");
    let err = catalog
        .render(
            "credential-dump-sms",
            Form::Card,
            None,
            &NoticeContext::sample(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("has no card form"), "{err}");
    let err = catalog
        .render("no-such", Form::Sms, None, &NoticeContext::sample())
        .unwrap_err();
    assert!(err.to_string().contains("credential-dump-notice"), "{err}");
}

#[test]
fn an_override_replaces_one_file_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let sms = dir.path().join("credential-dump-sms/en");
    std::fs::create_dir_all(&sms).unwrap();
    std::fs::write(
        sms.join("sms.txt"),
        "Hi {{ user.display_name }}, from {{ org.name }}.\n",
    )
    .unwrap();
    let catalog = Catalog::load(Some(dir.path())).unwrap();
    let ctx = NoticeContext::sample();
    let render = |name, lang| match catalog.render(name, Form::Sms, lang, &ctx).unwrap() {
        Content::Sms { text } => text,
        _ => panic!(),
    };
    assert_eq!(
        render("credential-dump-sms", None),
        "Hi Alex Wilber, from Contoso."
    );
    assert!(render("credential-dump-sms", Some("de")).contains("Datenleck"));
    assert!(render("credential-dump-notice", None).contains("data leak"));
}

#[test]
fn a_broken_override_names_its_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let sms = dir.path().join("credential-dump-sms/en");
    std::fs::create_dir_all(&sms).unwrap();
    std::fs::write(sms.join("sms.txt"), "Hi\n{{ user.display_name }\n").unwrap();
    let path = sms.join("sms.txt");
    let catalog = Catalog::load(Some(dir.path())).unwrap();
    let err = catalog
        .render(
            "credential-dump-sms",
            Form::Sms,
            None,
            &NoticeContext::sample(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("{}:2:", path.display())), "{err}");
    // The other language still renders.
    catalog
        .render(
            "credential-dump-sms",
            Form::Sms,
            Some("de"),
            &NoticeContext::sample(),
        )
        .unwrap();
    std::fs::write(sms.join("sms.txt"), "Hi {{ user.nickname }}\n").unwrap();
    let catalog = Catalog::load(Some(dir.path())).unwrap();
    let err = catalog
        .render(
            "credential-dump-sms",
            Form::Sms,
            None,
            &NoticeContext::sample(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&format!("{}:1:", path.display())), "{err}");
    assert!(Catalog::load(Some(&dir.path().join("missing"))).is_err());
}

#[test]
fn the_webhook_body_is_the_text_form_and_the_context() {
    let catalog = Catalog::embedded();
    let key = uuid::Uuid::from_u128(7);
    let Content::Json(body) = catalog
        .render_webhook("soc-summary", None, &RunContext::sample(), key)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(body["type"], "resetctl.message");
    assert_eq!(body["key"], key.to_string());
    assert_eq!(body["template"], "soc-summary");
    assert!(
        body["subject"]
            .as_str()
            .unwrap()
            .contains("118/120 succeeded")
    );
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("Graph throttling (429 answers): 14")
    );
    assert_eq!(body["data"]["counts"]["failed"], 2);
    assert!(
        catalog
            .render_webhook("access-pass-delivery", None, &FlowContext::sample(), key)
            .is_err()
    );
}

/// SMS lengths of the shipped reset and secret messages for the plain user: two segments at
/// most (most fit one).
#[test]
fn shipped_sms_stay_within_two_segments() {
    let catalog = Catalog::embedded();
    let (_, plain) = people().remove(0);
    for name in catalog.names().collect::<Vec<_>>() {
        for (lang, form, content) in render_all(&catalog, name, &plain) {
            if let (Form::Sms, Content::Sms { text }) = (form, content) {
                let cost = crate::comms::sms_text::cost(&text);
                assert!(cost.segments <= 2, "{name} {lang}: {cost:?} {text}");
            }
        }
    }
}

/// Golden files: every template, language and form for the three users, one snapshot per
/// template (`src/comms/template/snapshots/`). Review changes with `cargo insta review`.
#[test]
fn golden_renderings() {
    let catalog = Catalog::embedded();
    for name in catalog.names().collect::<Vec<_>>() {
        let mut out = String::new();
        for (who, person) in people() {
            for (lang, form, content) in render_all(&catalog, name, &person) {
                out.push_str(&format!("===== {who} / {lang} / {form}\n"));
                match content {
                    Content::Email {
                        subject,
                        html,
                        text,
                    } => {
                        out.push_str(&format!(
                            "Subject: {subject}\n--- text\n{text}\n--- html\n{html}\n"
                        ));
                    }
                    Content::Sms { text } => {
                        let cost = crate::comms::sms_text::cost(&text);
                        out.push_str(&format!(
                            "[{:?}, {} units, {} segment(s)]\n{text}\n",
                            cost.encoding, cost.units, cost.segments
                        ));
                    }
                    Content::Card { card, summary } => {
                        out.push_str(&format!(
                            "Summary: {summary}\n{}\n",
                            serde_json::to_string_pretty(&card).unwrap()
                        ));
                    }
                    Content::Json(v) => out.push_str(&format!("{v}\n")),
                }
            }
        }
        insta::assert_snapshot!(name, out);
    }
}
