//! Configuration errors: a kind, a message and, when the problem sits in the file, its
//! `file:line:col`.

use std::fmt;
use std::path::PathBuf;

/// What went wrong while loading configuration or credentials. Callers map all of these to
/// exit code 4 (configuration/authentication error); the kind lets tests and callers tell
/// them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The YAML is malformed or has an unknown or mistyped key.
    Syntax,
    /// The YAML parsed but a value is not acceptable (e.g. an app with two credential sources).
    Invalid,
    /// A secret was written inline in the file; only `*_env` and `*_file` keys are accepted.
    InlineSecret,
    /// A named tenant is neither in the file nor in the Azure SDK environment variables.
    UnknownTenant,
    /// A credential named by the configuration is missing or unusable (env var unset, file
    /// unreadable, PEM without a key, ...).
    Credential,
}

/// A configuration error. `Display` renders `file:line:col: message` when the location is
/// known. Messages never contain a secret value (only names of variables and files).
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The category, for callers that branch on it.
    pub kind: ConfigErrorKind,
    /// Human-readable explanation (names keys, variables or files, never secret values).
    pub message: String,
    /// The configuration file concerned, when there is one.
    pub file: Option<PathBuf>,
    /// 1-based line and column within `file`, when known.
    pub position: Option<(u32, u32)>,
}

impl ConfigError {
    /// Builds an error without a file position.
    pub fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            file: None,
            position: None,
        }
    }

    /// A YAML error of the file, at its position. Values found in the file are never part of
    /// the message: a secret pasted as the value of a key (or as a key) must not be printed
    /// back. Keys are named when they look like keys (`snake_case`).
    pub fn yaml(err: &serde_saphyr::Error) -> Self {
        use serde_saphyr::Error as E;
        let mut inner = err;
        while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
            inner = error;
        }
        let key = |k: &str| {
            if looks_like_key(k) {
                format!("`{k}`")
            } else {
                "a key that is not a setting name (not shown)".to_owned()
            }
        };
        let message = match inner {
            E::SerdeInvalidType { expected, .. } => {
                format!("wrong type of value, expected {expected}")
            }
            E::SerdeInvalidValue { expected, .. } => format!("invalid value, expected {expected}"),
            E::SerdeInvalidLength { expected, .. } => {
                format!("wrong number of items, expected {expected}")
            }
            E::SerdeUnknownVariant { expected, .. } => {
                format!("unknown value, expected one of {}", expected.join(", "))
            }
            E::SerdeUnknownField {
                field, expected, ..
            } => format!(
                "unknown key {}, expected one of {}",
                key(field),
                expected.join(", ")
            ),
            E::DuplicateMappingKey { key: Some(k), .. } => {
                format!(
                    "duplicate key {}: each key may appear once in a mapping",
                    key(k)
                )
            }
            E::DuplicateMappingKey { key: None, .. } => {
                "duplicate key: each key may appear once in a mapping".to_owned()
            }
            E::NonFiniteFloat { .. } => "a number that is not finite".to_owned(),
            other => {
                // Structural messages (syntax, missing field, limits) quote no value.
                let text = other.to_string();
                match other.location() {
                    Some(l) => {
                        let suffix = format!(" at line {}, column {}", l.line(), l.column());
                        text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
                    }
                    None => text,
                }
            }
        };
        let position = err.location().map(|l| (l.line() as u32, l.column() as u32));
        Self::new(ConfigErrorKind::Syntax, message).at(None, position)
    }

    /// Attaches a position in a file.
    pub fn at(mut self, file: Option<PathBuf>, position: Option<(u32, u32)>) -> Self {
        if self.file.is_none() {
            self.file = file;
        }
        if self.position.is_none() {
            self.position = position;
        }
        self
    }
}

/// A setting name as the file's keys are written: lower-case letters, digits and `_`, short.
fn looks_like_key(k: &str) -> bool {
    (1..=40).contains(&k.len())
        && k.starts_with(|c: char| c.is_ascii_lowercase())
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.position) {
            (Some(file), Some((line, col))) => {
                write!(f, "{}:{line}:{col}: {}", file.display(), self.message)
            }
            (Some(file), None) => write!(f, "{}: {}", file.display(), self.message),
            (None, Some((line, col))) => write!(f, "{line}:{col}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}
