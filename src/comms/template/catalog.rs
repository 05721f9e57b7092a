//! The template catalog: the files embedded from `templates/` at build time, replaced file by
//! file from an override directory, compiled once into two Tera engines (HTML-escaping for
//! `.html`, JSON-string-escaping for `.json`; `.txt` unescaped and cleaned after rendering).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tera::Tera;

use super::meta::{ContextKind, META_FILE, TemplateMeta};
use super::{Form, TemplateContext, TemplateError, language, safety};
use crate::comms::message::Content;

include!(concat!(env!("OUT_DIR"), "/embedded_templates.rs"));

/// The relative paths of the embedded files (for the test that compares them with the
/// directory).
#[cfg(test)]
pub(super) fn embedded_names() -> Vec<String> {
    EMBEDDED.iter().map(|(p, _)| (*p).to_owned()).collect()
}

/// The directory of `templates/` that holds web pages (`resetctl serve`), not messages.
const PAGES: &str = "pages";

/// The embedded files under `templates/pages/`, by path relative to it: the approval
/// server's pages, kept with the other templates so one build step embeds them all.
pub(crate) fn embedded_pages() -> impl Iterator<Item = (&'static str, &'static str)> {
    EMBEDDED
        .iter()
        .filter_map(|(path, text)| Some((path.strip_prefix("pages/")?, *text)))
}

/// Largest template file read from an override directory.
const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// Where a template file came from.
#[derive(Debug, Clone)]
struct Source {
    text: String,
    /// The override file, or `None` for the embedded one.
    origin: Option<PathBuf>,
}

/// One template: its description and, per language, the forms it has.
#[derive(Debug, Clone)]
pub struct TemplateInfo {
    /// The template's name (its directory).
    pub name: String,
    /// Its `template.yaml`, or why it could not be read.
    pub meta: Result<TemplateMeta, String>,
    /// Language tag → forms whose files all exist in that language.
    pub languages: BTreeMap<String, Vec<Form>>,
}

impl TemplateInfo {
    /// The language tags this template is written in.
    pub fn language_tags(&self) -> Vec<String> {
        self.languages.keys().cloned().collect()
    }
}

/// Every template, ready to render. Immutable once built; share it behind an `Arc`.
pub struct Catalog {
    files: BTreeMap<String, Source>,
    templates: BTreeMap<String, TemplateInfo>,
    /// `.html` escaped for HTML, `.txt` as is.
    text: Tera,
    /// `.json` escaped as JSON string content.
    json: Tera,
    /// Files that did not compile (a syntax error, a missing parent), with the reason.
    broken: BTreeMap<String, String>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("templates", &self.templates.keys().collect::<Vec<_>>())
            .field("broken", &self.broken.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Catalog {
    /// The templates built into this binary.
    pub fn embedded() -> Catalog {
        Catalog::build(embedded_files())
    }

    /// The embedded templates, each file replaced by the file of the same relative path under
    /// `overrides` when there is one (`templates:` in the configuration, `--templates DIR`).
    /// Files only in the directory are added (a new template or language).
    pub fn load(overrides: Option<&Path>) -> Result<Catalog, TemplateError> {
        let mut files = embedded_files();
        if let Some(dir) = overrides {
            files.extend(read_overrides(dir)?);
        }
        Ok(Catalog::build(files))
    }

    fn build(files: BTreeMap<String, Source>) -> Catalog {
        let mut templates: BTreeMap<String, TemplateInfo> = BTreeMap::new();
        for path in files.keys() {
            let parts: Vec<&str> = path.split('/').collect();
            // `_*` holds shared layouts; `pages/` the approval server's web pages.
            let Some(name) = parts
                .first()
                .filter(|n| !n.starts_with('_') && **n != PAGES)
            else {
                continue;
            };
            templates
                .entry((*name).to_owned())
                .or_insert_with(|| TemplateInfo {
                    name: (*name).to_owned(),
                    meta: Err(format!("{name}/{META_FILE} is missing")),
                    languages: BTreeMap::new(),
                });
            if let [_, lang, _] = parts.as_slice() {
                let info = templates.get_mut(*name).expect("inserted above");
                let forms = info.languages.entry((*lang).to_owned()).or_default();
                for form in Form::ALL {
                    let has_all = form
                        .files()
                        .iter()
                        .all(|f| files.contains_key(&format!("{name}/{lang}/{f}")));
                    if has_all && !forms.contains(&form) {
                        forms.push(form);
                    }
                }
            }
        }
        for info in templates.values_mut() {
            let meta_path = format!("{}/{META_FILE}", info.name);
            if let Some(source) = files.get(&meta_path) {
                info.meta = TemplateMeta::parse(&source.text)
                    .map_err(|e| format!("{}: {e}", display(&files, &meta_path)));
            }
        }
        let mut broken = BTreeMap::new();
        let text = compile(&files, &mut broken, |t| t.autoescape_on([".html"]));
        let json = compile(&files, &mut broken, |t| {
            t.autoescape_on([".json"]);
            t.set_escape_fn(safety::escape_json_string);
        });
        Catalog {
            files,
            templates,
            text,
            json,
            broken,
        }
    }

    /// Every template's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    /// What `name` is and which languages and forms it has.
    pub fn info(&self, name: &str) -> Option<&TemplateInfo> {
        self.templates.get(name)
    }

    /// Render template `name` in `form` for a recipient whose `preferredLanguage` is
    /// `language` (see [`language::choose`]), with `ctx`. User data in `ctx` is cleaned of
    /// control and bidirectional-override characters first; HTML is escaped, card values are
    /// JSON-escaped and the card checked against the Adaptive Card 1.5 schema.
    pub fn render<C: TemplateContext>(
        &self,
        name: &str,
        form: Form,
        language: Option<&str>,
        ctx: &C,
    ) -> Result<Content, TemplateError> {
        let info = self.template(name, C::KIND)?;
        let with_form: Vec<String> = info
            .languages
            .iter()
            .filter(|(_, forms)| forms.contains(&form))
            .map(|(lang, _)| lang.clone())
            .collect();
        let lang =
            language::choose(language, &with_form).ok_or_else(|| TemplateError::MissingForm {
                name: name.to_owned(),
                form,
                language: language.unwrap_or(language::FALLBACK).to_owned(),
            })?;
        self.render_exact(name, form, lang, ctx)
    }

    /// Render `name` in `form` in exactly language `lang` (validation renders every language).
    pub fn render_exact<C: TemplateContext>(
        &self,
        name: &str,
        form: Form,
        lang: &str,
        ctx: &C,
    ) -> Result<Content, TemplateError> {
        let info = self.template(name, C::KIND)?;
        let meta = info.meta.as_ref().map_err(|e| TemplateError::Describe {
            name: name.to_owned(),
            message: e.clone(),
        })?;
        if !info.languages.get(lang).is_some_and(|f| f.contains(&form)) {
            return Err(TemplateError::MissingForm {
                name: name.to_owned(),
                form,
                language: lang.to_owned(),
            });
        }
        let mut value = serde_json::to_value(ctx).map_err(|e| TemplateError::Context {
            message: e.to_string(),
        })?;
        if let Some(kind) = meta.secret {
            let carried = value.pointer("/secret/kind").and_then(|k| k.as_str());
            if carried != Some(kind.as_str()) {
                return Err(TemplateError::MissingSecret {
                    name: name.to_owned(),
                    kind: kind.as_str(),
                });
            }
        }
        safety::clean_value(&mut value);
        let tera_ctx =
            tera::Context::from_serialize(&value).map_err(|e| TemplateError::Context {
                message: e.to_string(),
            })?;
        let file = |f: &str| format!("{name}/{lang}/{f}");
        let text = |f: &str| self.render_file(&self.text, &file(f), &tera_ctx);
        Ok(match form {
            Form::Email => Content::Email {
                subject: safety::one_line(&safety::clean_text(&text("subject.txt")?)),
                html: text("email.html")?,
                text: safety::tidy_text(&text("email.txt")?),
            },
            Form::Sms => Content::Sms {
                text: safety::tidy_text(&text("sms.txt")?),
            },
            Form::Card => {
                let path = file("card.json");
                let rendered = self.render_file(&self.json, &path, &tera_ctx)?;
                let card: serde_json::Value =
                    serde_json::from_str(&rendered).map_err(|e| TemplateError::CardJson {
                        file: self.display(&path),
                        message: e.to_string(),
                    })?;
                crate::comms::card::validate(&card).map_err(|invalid| {
                    TemplateError::InvalidCard {
                        file: self.display(&path),
                        problems: without_values(&card, invalid.problems).join("; "),
                    }
                })?;
                Content::Card {
                    card,
                    summary: safety::one_line(&safety::clean_text(&text("subject.txt")?)),
                }
            }
        })
    }

    /// The generic webhook's body for a run-level message: the plain-text form (subject and
    /// `email.txt`) plus the context as `data` (see [`super::webhook_body`]).
    pub fn render_webhook<C: TemplateContext>(
        &self,
        name: &str,
        language: Option<&str>,
        ctx: &C,
        key: uuid::Uuid,
    ) -> Result<Content, TemplateError> {
        let info = self.template(name, C::KIND)?;
        if let Ok(meta) = &info.meta
            && meta.secret.is_some()
        {
            return Err(TemplateError::SecretOverWebhook {
                name: name.to_owned(),
            });
        }
        let Content::Email { subject, text, .. } = self.render(name, Form::Email, language, ctx)?
        else {
            unreachable!("the email form renders as Content::Email")
        };
        let mut data = serde_json::to_value(ctx).map_err(|e| TemplateError::Context {
            message: e.to_string(),
        })?;
        safety::clean_value(&mut data);
        Ok(Content::Json(super::webhook_body(
            key, name, &subject, &text, data,
        )))
    }

    fn template(&self, name: &str, kind: ContextKind) -> Result<&TemplateInfo, TemplateError> {
        let info = self
            .templates
            .get(name)
            .ok_or_else(|| TemplateError::Unknown {
                name: name.to_owned(),
                known: self.names_of(kind).join(", "),
            })?;
        if let Ok(meta) = &info.meta
            && meta.context != kind
        {
            return Err(TemplateError::WrongContext {
                name: name.to_owned(),
                actual: meta.context.as_str(),
                wanted: kind.as_str(),
            });
        }
        Ok(info)
    }

    /// The names of the templates rendered with contexts of `kind`.
    pub fn names_of(&self, kind: ContextKind) -> Vec<&str> {
        self.templates
            .values()
            .filter(|t| t.meta.as_ref().is_ok_and(|m| m.context == kind))
            .map(|t| t.name.as_str())
            .collect()
    }

    fn render_file(
        &self,
        engine: &Tera,
        path: &str,
        ctx: &tera::Context,
    ) -> Result<String, TemplateError> {
        if let Some(reason) = self.broken.get(path) {
            return Err(TemplateError::Tera {
                message: reason.clone(),
            });
        }
        engine.render(path, ctx).map_err(|e| TemplateError::Tera {
            message: describe(&e, &self.files),
        })
    }

    /// How a file is named in messages: its override path, or `templates/PATH (embedded)`.
    pub fn display(&self, path: &str) -> String {
        display(&self.files, path)
    }

    /// The text of a template file as this catalog has it (embedded or overridden).
    pub fn source(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(|s| s.text.as_str())
    }
}

/// Schema problems with the offending values left out: a value comes from the context (a
/// name, or in a careless override a secret) and must not reach a log or a terminal. Each
/// problem is `POINTER: message`, where the message may start with the value at POINTER.
fn without_values(card: &serde_json::Value, problems: Vec<String>) -> Vec<String> {
    problems
        .into_iter()
        .map(|problem| {
            let Some((at, message)) = problem.split_once(": ") else {
                return problem;
            };
            let pointer = if at == "/" { "" } else { at };
            let shown = card.pointer(pointer).map(|v| v.to_string());
            match shown {
                Some(value) if message.contains(&value) => {
                    format!("{at}: {}", message.replace(&value, "the value"))
                }
                _ => format!("{at}: {message}"),
            }
        })
        .collect()
}

fn display(files: &BTreeMap<String, Source>, path: &str) -> String {
    match files.get(path).and_then(|s| s.origin.as_ref()) {
        Some(origin) => origin.display().to_string(),
        None => format!("templates/{path} (embedded)"),
    }
}

fn embedded_files() -> BTreeMap<String, Source> {
    EMBEDDED
        .iter()
        .map(|(path, text)| {
            let source = Source {
                text: (*text).to_owned(),
                origin: None,
            };
            ((*path).to_owned(), source)
        })
        .collect()
}

/// Whether a catalog file is Tera source (the rest is description).
fn is_template_file(path: &str) -> bool {
    [".txt", ".html", ".json"].iter().any(|s| path.ends_with(s))
}

/// Compile every template file into one engine; a file that does not compile (or extends one
/// that does not) is left out and recorded in `broken`, so the others still render.
fn compile(
    files: &BTreeMap<String, Source>,
    broken: &mut BTreeMap<String, String>,
    configure: impl Fn(&mut Tera),
) -> Tera {
    let mut good: Vec<(&str, &str)> = files
        .iter()
        .filter(|(p, _)| is_template_file(p) && !broken.contains_key(*p))
        .map(|(p, s)| (p.as_str(), s.text.as_str()))
        .collect();
    loop {
        let mut tera = Tera::default();
        configure(&mut tera);
        let Err(e) = tera.add_raw_templates(good.iter().copied()) else {
            return tera;
        };
        let culprit = match e.kind() {
            tera::ErrorKind::SyntaxError(r) | tera::ErrorKind::RenderingError(r) => {
                Some(r.filename().to_owned())
            }
            tera::ErrorKind::MissingParent { current, .. } => Some(current.clone()),
            tera::ErrorKind::CircularExtend { tpl, .. }
            | tera::ErrorKind::CircularInclude { tpl, .. } => Some(tpl.clone()),
            _ => None,
        };
        match culprit.filter(|c| good.iter().any(|(p, _)| p == c)) {
            Some(c) => {
                broken.insert(c.clone(), describe(&e, files));
                good.retain(|(p, _)| *p != c);
            }
            None => {
                // Not attributable to one file: every file is reported with the reason.
                let reason = describe(&e, files);
                for (p, _) in good {
                    broken.insert(p.to_owned(), reason.clone());
                }
                let mut empty = Tera::default();
                configure(&mut empty);
                return empty;
            }
        }
    }
}

/// A Tera error on one line: `FILE:LINE:COL: message` for syntax and rendering errors (the
/// file as [`display`] names it), the error's own text otherwise, with its causes.
fn describe(e: &tera::Error, files: &BTreeMap<String, Source>) -> String {
    let mut out = match e.kind() {
        tera::ErrorKind::SyntaxError(r) | tera::ErrorKind::RenderingError(r) => {
            let span = r.span();
            format!(
                "{}:{}:{}: {}",
                display(files, r.filename()),
                span.start_line,
                span.start_col + 1,
                r.message()
            )
        }
        other => other.to_string(),
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Every file under `dir` (not hidden), by relative path with `/`.
fn read_overrides(dir: &Path) -> Result<BTreeMap<String, Source>, TemplateError> {
    let fail = |path: &Path, e: &dyn std::fmt::Display| TemplateError::Overrides {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|e| fail(&current, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| fail(&current, &e))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|e| fail(&path, &e))?;
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(relative) = path.strip_prefix(dir) else {
                continue;
            };
            let key: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let text = crate::files::read_to_string_bounded(&path, MAX_TEMPLATE_BYTES)
                .map_err(|e| fail(&path, &e))?;
            out.insert(
                key.join("/"),
                Source {
                    text,
                    origin: Some(path),
                },
            );
        }
    }
    Ok(out)
}
