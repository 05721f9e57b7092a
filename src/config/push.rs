//! The validated `push:` section: which MFA push provider verifies a user on Path A of the
//! single-user flow (Duo Auth API or Okta Verify). Inert: the secret's source, never the
//! secret; `cmd` builds the provider.
//!
//! ```yaml
//! push:
//!   duo:
//!     base_url: https://api-1a2b3c4d.duosecurity.com
//!     integration_key: DIWJ8X6AEYOR5OMC6TQ1
//!     secret_key_env: DUO_SECRET_KEY        # or secret_key_file
//!     push_type: Password reset             # the line Duo Mobile shows (optional)
//! ```
//! or `push: { okta: { base_url: https://acme.okta.com, api_token_env: OKTA_API_TOKEN } }`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::channels::{SecretSource, at, invalid, refuse, required_secret, service_url};
use super::channels_raw::Refused;
use super::{ConfigError, ConfigErrorKind};

/// `push:`: exactly one provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPush {
    /// Duo Auth API v2.
    pub duo: Option<Spanned<RawDuo>>,
    /// Okta Verify through the Factors API.
    pub okta: Option<Spanned<RawOkta>>,
}

/// `push.duo`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDuo {
    /// `https://api-XXXXXXXX.duosecurity.com`.
    pub base_url: Spanned<String>,
    /// The Auth API application's integration key (`DI…`; not secret).
    pub integration_key: Spanned<String>,
    /// Environment variable holding the secret key.
    pub secret_key_env: Option<Spanned<String>>,
    /// File holding the secret key.
    pub secret_key_file: Option<PathBuf>,
    /// `sha512` (default, what current Duo clients send) or `sha1`.
    pub digest: Option<Spanned<String>>,
    /// What Duo Mobile shows as the request's kind.
    pub push_type: Option<String>,
    /// Refused: an inline secret key.
    pub secret_key: Refused,
}

/// `push.okta`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOkta {
    /// `https://{org}.okta.com`.
    pub base_url: Spanned<String>,
    /// Environment variable holding the API token.
    pub api_token_env: Option<Spanned<String>>,
    /// File holding the API token.
    pub api_token_file: Option<PathBuf>,
    /// Refused: an inline API token.
    pub api_token: Refused,
}

/// The configured push provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushSettings {
    /// Duo Auth API v2.
    Duo {
        /// API base URL.
        base_url: String,
        /// Integration key.
        integration_key: String,
        /// Where the secret key comes from.
        secret_key: SecretSource,
        /// Sign with HMAC-SHA512 (else SHA1).
        sha512: bool,
        /// What Duo Mobile shows.
        push_type: String,
    },
    /// Okta Verify.
    Okta {
        /// The org's base URL.
        base_url: String,
        /// Where the API token comes from.
        api_token: SecretSource,
    },
}

impl PushSettings {
    pub(crate) fn from_raw(
        raw: RawPush,
        section: &serde_saphyr::Location,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        match (raw.duo, raw.okta) {
            (Some(duo), None) => duo_settings(duo, base_dir),
            (None, Some(okta)) => okta_settings(okta, base_dir),
            (Some(_), Some(_)) => Err(invalid(
                "push: configure one provider, `duo` or `okta`, not both".into(),
                section,
            )),
            (None, None) => Err(invalid(
                "push: name a provider, `duo` or `okta`".into(),
                section,
            )),
        }
    }
}

fn url(key: &str, value: Spanned<String>) -> Result<String, ConfigError> {
    service_url(key, &value.value).map_err(|m| invalid(m, &value.referenced))
}

fn duo_settings(
    raw: Spanned<RawDuo>,
    base_dir: Option<&Path>,
) -> Result<PushSettings, ConfigError> {
    let section = raw.referenced;
    let raw = raw.value;
    refuse(&raw.secret_key, "push.duo.secret_key", "secret_key")?;
    let key = raw.integration_key;
    // Duo integration keys are 20 characters, `DI` then upper-case letters and digits.
    if key.value.len() != 20 || !key.value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "push.duo.integration_key: a Duo integration key is 20 letters and digits (DI…)".into(),
            &key.referenced,
        ));
    }
    let sha512 = match raw.digest.as_ref().map(|d| d.value.as_str()) {
        None | Some("sha512") => true,
        Some("sha1") => false,
        Some(_) => {
            let d = raw.digest.as_ref().expect("matched");
            return Err(at(
                ConfigErrorKind::Invalid,
                "push.duo.digest: `sha512` or `sha1`".into(),
                &d.referenced,
            ));
        }
    };
    Ok(PushSettings::Duo {
        base_url: url("push.duo.base_url", raw.base_url)?,
        integration_key: key.value,
        secret_key: required_secret(
            "push.duo.secret_key",
            raw.secret_key_env,
            raw.secret_key_file,
            base_dir,
            &section,
        )?,
        sha512,
        push_type: raw.push_type.unwrap_or_else(|| "Password reset".into()),
    })
}

fn okta_settings(
    raw: Spanned<RawOkta>,
    base_dir: Option<&Path>,
) -> Result<PushSettings, ConfigError> {
    let section = raw.referenced;
    let raw = raw.value;
    refuse(&raw.api_token, "push.okta.api_token", "api_token")?;
    Ok(PushSettings::Okta {
        base_url: url("push.okta.base_url", raw.base_url)?,
        api_token: required_secret(
            "push.okta.api_token",
            raw.api_token_env,
            raw.api_token_file,
            base_dir,
            &section,
        )?,
    })
}
