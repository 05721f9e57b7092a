//! App-only authentication: OAuth2 client credentials against the v2.0 token endpoint
//! (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>),
//! with a client secret or a certificate assertion JWT
//! (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>), and a
//! token cache that refreshes before expiry with one refresh at a time.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::RsaKeyPair;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::error::{GraphError, GraphErrorKind};
use crate::config::{AppSpec, ConfigError, ConfigErrorKind, CredentialSource, Env, SigningAlg};
use crate::files::{MAX_PEM_BYTES, MAX_SECRET_BYTES, is_world_readable, read_to_string_bounded};

/// `client_assertion_type` of a certificate credential in the client-credentials grant.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of an assertion: Entra asks for 5-10 minutes after `nbf`.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A certificate credential: the RSA private key and the certificate's SHA-256 thumbprint.
/// Signing is ring's (blinded, constant-time RSA), so the key does not leak through timing.
pub struct CertificateCredential {
    /// Private key matching the certificate registered on the app.
    key: RsaKeyPair,
    /// base64url SHA-256 of the certificate DER (`x5t#S256` header).
    x5t_s256: String,
    /// Signature algorithm of assertions.
    alg: SigningAlg,
}

impl std::fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("x5t#S256", &self.x5t_s256)
            .field("alg", &self.alg)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// One PEM block: label and DER bytes.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

/// Splits PEM text into its blocks (RFC 7468; text outside blocks is ignored).
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            let label = rest.trim_end_matches('-').to_string();
            current = Some((label, String::new()));
        } else if let Some(rest) = line.strip_prefix("-----END ") {
            let label = rest.trim_end_matches('-');
            match current.take() {
                Some((l, body)) if l == label => {
                    let der = STANDARD
                        .decode(body.as_bytes())
                        .map_err(|_| format!("bad base64 in a {l} block"))?;
                    blocks.push(PemBlock { label: l, der });
                }
                _ => return Err("unbalanced PEM BEGIN/END lines".into()),
            }
        } else if let Some((_, body)) = current.as_mut()
            && !line.contains(':')
        {
            body.push_str(line);
        }
    }
    Ok(blocks)
}

impl CertificateCredential {
    /// From PEM text: the certificate (first `CERTIFICATE` block of `cert_pem`) and the key
    /// (`PRIVATE KEY` PKCS#8 or `RSA PRIVATE KEY` PKCS#1, from `key_pem` or else from
    /// `cert_pem`). Errors never include key material.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: Option<&str>,
        alg: SigningAlg,
    ) -> Result<Self, String> {
        let blocks = pem_blocks(cert_pem)?;
        let cert = blocks
            .iter()
            .find(|b| b.label == "CERTIFICATE")
            .ok_or_else(|| "no CERTIFICATE block in the certificate file".to_string())?;
        let x5t_s256 = URL_SAFE_NO_PAD.encode(Sha256::digest(&cert.der));
        let key_blocks = match key_pem {
            Some(text) => pem_blocks(text)?,
            None => blocks,
        };
        let key = key_blocks
            .iter()
            .find_map(|b| match b.label.as_str() {
                "PRIVATE KEY" => Some(RsaKeyPair::from_pkcs8(&b.der).map_err(|e| {
                    format!("unusable PKCS#8 RSA key ({e}; RSA keys of 2048 to 4096 bits)")
                })),
                "RSA PRIVATE KEY" => Some(RsaKeyPair::from_der(&b.der).map_err(|e| {
                    format!("unusable PKCS#1 RSA key ({e}; RSA keys of 2048 to 4096 bits)")
                })),
                _ => None,
            })
            .ok_or_else(|| {
                "no unencrypted private key (PRIVATE KEY or RSA PRIVATE KEY block) found; PFX and \
                 encrypted keys are not supported"
                    .to_string()
            })??;
        Ok(CertificateCredential { key, x5t_s256, alg })
    }

    /// From files (key in the certificate file when `key_file` is `None`), each read up to
    /// [`MAX_PEM_BYTES`]. Errors name the configuration key, never the path: a key pasted
    /// where its file's name belongs must not be printed back.
    pub fn from_files(
        cert_file: &Path,
        key_file: Option<&Path>,
        alg: SigningAlg,
    ) -> Result<Self, String> {
        let read = |p: &Path, key: &str| {
            read_to_string_bounded(p, MAX_PEM_BYTES)
                .map_err(|e| format!("cannot read the file named by `{key}`: {e}"))
        };
        let cert = read(cert_file, "certificate_file")?;
        let key = key_file.map(|p| read(p, "private_key_file")).transpose()?;
        Self::from_pem(&cert, key.as_deref(), alg)
    }

    /// The `x5t#S256` thumbprint.
    pub fn thumbprint_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// The signing algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// A signed client assertion
    /// (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>):
    /// header `alg`, `typ`, `x5t#S256`; claims `aud` (the token endpoint), `iss` = `sub` =
    /// client id, `jti`, `nbf`, `iat`, `exp`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: jiff::Timestamp,
    ) -> Result<SecretString, GraphError> {
        let alg = match self.alg {
            SigningAlg::Ps256 => "PS256",
            SigningAlg::Rs256 => "RS256",
        };
        let header = serde_json::json!({"alg": alg, "typ": "JWT", "x5t#S256": self.x5t_s256});
        let iat = now.as_second();
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": iat,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let padding: &'static dyn ring::signature::RsaEncoding = match self.alg {
            // PSS with SHA-256, MGF1-SHA-256, salt length 32 (RFC 7518 §3.5).
            SigningAlg::Ps256 => &ring::signature::RSA_PSS_SHA256,
            // RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
            SigningAlg::Rs256 => &ring::signature::RSA_PKCS1_SHA256,
        };
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                padding,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| {
                GraphError::new(
                    GraphErrorKind::Config,
                    "signing the client assertion failed",
                )
            })?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// How an app proves its identity.
pub enum ClientAuth {
    /// A client secret.
    Secret(SecretString),
    /// A certificate assertion.
    Certificate(Box<CertificateCredential>),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Secret(_) => f.write_str("Secret([redacted])"),
            ClientAuth::Certificate(c) => c.fmt(f),
        }
    }
}

/// One app registration with its loaded credential.
#[derive(Debug)]
pub struct AppCredential {
    /// Application (client) id.
    pub client_id: String,
    /// Its secret or certificate.
    pub auth: ClientAuth,
}

impl AppCredential {
    /// Loads the secret or certificate named by a configuration entry. Errors name the
    /// configuration key (`client_secret_env`, `client_secret_file`, ...), never its value:
    /// a secret pasted there must not be printed back. A secret or key file that other users
    /// can read is warned about.
    pub fn load(spec: &AppSpec, env: &Env) -> Result<Self, ConfigError> {
        let cred_err = |m: String| ConfigError::new(ConfigErrorKind::Credential, m);
        let auth = match &spec.credential {
            CredentialSource::SecretEnv(var) => {
                let value = env.var(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    cred_err(format!(
                        "app {}: the environment variable named by `client_secret_env` is not \
                         set or is empty",
                        spec.client_id
                    ))
                })?;
                ClientAuth::Secret(SecretString::from(value))
            }
            CredentialSource::SecretFile(path) => {
                warn_if_world_readable(&spec.client_id, "client_secret_file", path);
                let text = read_to_string_bounded(path, MAX_SECRET_BYTES).map_err(|e| {
                    cred_err(format!(
                        "app {}: cannot read the file named by `client_secret_file`: {e}",
                        spec.client_id,
                    ))
                })?;
                let value = text.trim_end_matches(['\r', '\n']).to_string();
                if value.is_empty() {
                    return Err(cred_err(format!(
                        "app {}: the file named by `client_secret_file` is empty",
                        spec.client_id,
                    )));
                }
                ClientAuth::Secret(SecretString::from(value))
            }
            CredentialSource::Certificate {
                certificate_file,
                private_key_file,
                alg,
            } => {
                match private_key_file {
                    Some(key) => warn_if_world_readable(&spec.client_id, "private_key_file", key),
                    None => warn_if_world_readable(
                        &spec.client_id,
                        "certificate_file",
                        certificate_file,
                    ),
                }
                let c = CertificateCredential::from_files(
                    certificate_file,
                    private_key_file.as_deref(),
                    *alg,
                )
                .map_err(|e| cred_err(format!("app {}: {e}", spec.client_id)))?;
                ClientAuth::Certificate(Box::new(c))
            }
        };
        Ok(AppCredential {
            client_id: spec.client_id.clone(),
            auth,
        })
    }
}

/// Warn when the secret or key file of `key` (a configuration key) can be read by every user
/// of the machine. The file is named by its key, as errors name it.
fn warn_if_world_readable(client_id: &str, key: &str, path: &Path) {
    if is_world_readable(path) {
        tracing::warn!(
            message = "A secret or key file is readable by every user of this machine; make it \
                       readable by its owner only (chmod 600).",
            client_id,
            key
        );
    }
}

/// A cached access token.
struct Cached {
    /// The bearer token.
    token: Arc<SecretString>,
    /// When to fetch a new one (before the real expiry).
    refresh_at: Instant,
}

/// The token endpoint's success body.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// The token endpoint's error body.
#[derive(Deserialize)]
struct TokenErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

/// Access tokens for one app: cached, refreshed early, one refresh at a time.
pub struct TokenSource {
    /// HTTP client (shared with Graph calls).
    http: reqwest::Client,
    /// OAuth2 v2.0 token endpoint (also the assertion's `aud`).
    token_url: String,
    /// Requested scope (`{graph origin}/.default`).
    scope: String,
    /// The app.
    credential: AppCredential,
    /// Current token; a std mutex held only to copy an `Arc`.
    cache: Mutex<Option<Cached>>,
    /// Held while fetching: concurrent callers wait here and reuse the fresh token.
    refresh: tokio::sync::Mutex<()>,
    /// Token requests made (tests and metrics).
    requests: AtomicU64,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("client_id", &self.credential.client_id)
            .finish_non_exhaustive()
    }
}

/// How early a token is refreshed: 10 % of its lifetime, at least 5 minutes when the lifetime
/// allows (never more than half of it).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).max(Duration::from_secs(300).min(lifetime / 2))
}

impl TokenSource {
    /// A token source for `credential` at `token_url` asking for `scope`.
    pub fn new(
        http: reqwest::Client,
        token_url: String,
        scope: String,
        credential: AppCredential,
    ) -> Self {
        TokenSource {
            http,
            token_url,
            scope,
            credential,
            cache: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            requests: AtomicU64::new(0),
        }
    }

    /// The app's client id.
    pub fn client_id(&self) -> &str {
        &self.credential.client_id
    }

    /// Number of token requests sent so far.
    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<Arc<SecretString>> {
        let guard = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// Drops the cached token (after a 401), so the next call fetches a new one.
    pub fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A valid access token: the cached one, or a new one fetched by exactly one caller
    /// while the others wait for it.
    pub async fn token(&self) -> Result<Arc<SecretString>, GraphError> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let _refreshing = self.refresh.lock().await;
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let (token, lifetime) = self.fetch_with_retries().await?;
        let token = Arc::new(token);
        let refresh_at = Instant::now() + lifetime.saturating_sub(refresh_margin(lifetime));
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    /// `fetch`, retried (3 attempts, jittered back-off) when the token endpoint is
    /// unreachable, throttles (429) or fails (5xx); a refusal (4xx) is returned at once.
    async fn fetch_with_retries(&self) -> Result<(SecretString, Duration), GraphError> {
        let mut attempt = 0;
        loop {
            match self.fetch().await {
                Err(e) if attempt < 2 && e.status.is_none_or(|s| s == 429 || s >= 500) => {
                    attempt += 1;
                    let delay = crate::throttle::equal_jitter(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(5),
                    );
                    tracing::warn!(message = "Retrying the token request.", error = %e, delay_ms = delay.as_millis() as u64);
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    async fn fetch(&self) -> Result<(SecretString, Duration), GraphError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let client_id = self.credential.client_id.as_str();
        let span = tracing::debug_span!("graph.token", client_id, status = tracing::field::Empty);
        let _enter = span.enter();
        let assertion;
        let mut form: Vec<(&str, &str)> = vec![
            ("client_id", client_id),
            ("scope", &self.scope),
            ("grant_type", "client_credentials"),
        ];
        match &self.credential.auth {
            ClientAuth::Secret(s) => form.push(("client_secret", s.expose_secret())),
            ClientAuth::Certificate(c) => {
                assertion = c.assertion(client_id, &self.token_url, jiff::Timestamp::now())?;
                form.push(("client_assertion_type", ASSERTION_TYPE));
                form.push(("client_assertion", assertion.expose_secret()));
            }
        }
        drop(_enter);
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                // The endpoint was not reached: a transport failure, not a refusal of the
                // app's credentials.
                GraphError::new(
                    GraphErrorKind::Transport,
                    format!(
                        "no token: no answer from {}",
                        super::transport::describe("the token endpoint", &self.token_url, &e)
                    ),
                )
            })?;
        let status = response.status().as_u16();
        span.record("status", status);
        let body = response.bytes().await.map_err(|e| {
            GraphError::new(
                GraphErrorKind::Transport,
                format!(
                    "no token: the answer was lost from {}",
                    super::transport::describe("the token endpoint", &self.token_url, &e)
                ),
            )
        })?;
        if !(200..300).contains(&status) {
            let detail = serde_json::from_slice::<TokenErrorResponse>(&body)
                .ok()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.error.unwrap_or_default(),
                        e.error_description.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            let mut err = GraphError::new(
                GraphErrorKind::Auth,
                format!("token endpoint refused app {client_id}: {detail}"),
            );
            err.status = Some(status);
            return Err(err);
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            GraphError::new(
                GraphErrorKind::Auth,
                "token response is not the expected JSON",
            )
        })?;
        let secs = match parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(3599.0),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3599.0),
            _ => 3599.0,
        };
        let lifetime = Duration::from_secs_f64(secs.clamp(1.0, 86_400.0));
        tracing::debug!(
            message = "Token acquired.",
            client_id,
            lifetime_secs = lifetime.as_secs()
        );
        Ok((SecretString::from(parsed.access_token), lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_millis(359_900)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(1200)),
            Duration::from_secs(300)
        );
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    /// base64url SHA-256 of the fixture certificate's DER, computed independently with
    /// `openssl x509 -outform DER | openssl dgst -sha256` (see tests/fixtures/README.md).
    const EXPECTED_X5T_S256: &str = "r5wto-Invxe_2dr_wO-XPRh8AVmEwtttcQXKQwz7nYc";

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// The assertion's signature, verified against the certificate's own public key by
    /// rustls-webpki (as the emulator and Entra do), independently of the key file.
    fn verify(alg: &str, message: &[u8], signature: &[u8]) -> bool {
        let pem = std::fs::read_to_string(format!("{FIXTURES}/test-app.cert.pem")).unwrap();
        let blocks = pem_blocks(&pem).unwrap();
        let der = rustls_pki_types::CertificateDer::from(blocks[0].der.clone());
        let cert = webpki::EndEntityCert::try_from(&der).unwrap();
        let algorithm = match alg {
            "PS256" => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            _ => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        };
        cert.verify_signature(algorithm, message, signature).is_ok()
    }

    fn check_assertion(cred: &CertificateCredential, alg: &str) {
        let now: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let aud = "https://login.microsoftonline.com/t1/oauth2/v2.0/token";
        let jwt = cred.assertion("client-1", aud, now).unwrap();
        let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["x5t#S256"], EXPECTED_X5T_S256);
        let claims = decode_part(parts[1]);
        assert_eq!(claims["aud"], aud);
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        assert_eq!(claims["nbf"], now.as_second());
        assert_eq!(claims["iat"], now.as_second());
        assert_eq!(claims["exp"], now.as_second() + 600);
        let message = format!("{}.{}", parts[0], parts[1]);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 256, "an RSA-2048 signature");
        assert!(verify(alg, message.as_bytes(), &sig), "{alg} verifies");
        // Not under the other padding, and not for a tampered payload.
        let other = if alg == "PS256" { "RS256" } else { "PS256" };
        assert!(!verify(other, message.as_bytes(), &sig));
        assert!(!verify(alg, format!("{message}x").as_bytes(), &sig));
    }

    #[test]
    fn certificate_assertion_ps256_and_rs256_verify() {
        let cert = std::path::PathBuf::from(format!("{FIXTURES}/test-app.cert.pem"));
        let key = std::path::PathBuf::from(format!("{FIXTURES}/test-app.key.pem"));
        let ps = CertificateCredential::from_files(&cert, Some(&key), SigningAlg::Ps256).unwrap();
        assert_eq!(ps.thumbprint_s256(), EXPECTED_X5T_S256);
        check_assertion(&ps, "PS256");
        let rs = CertificateCredential::from_files(&cert, Some(&key), SigningAlg::Rs256).unwrap();
        check_assertion(&rs, "RS256");
        // Combined PEM (the Azure SDK layout) and a PKCS#1 key both load.
        let combined = std::path::PathBuf::from(format!("{FIXTURES}/test-app.combined.pem"));
        check_assertion(
            &CertificateCredential::from_files(&combined, None, SigningAlg::Ps256).unwrap(),
            "PS256",
        );
        let pkcs1 = std::path::PathBuf::from(format!("{FIXTURES}/test-app.rsa-key.pem"));
        check_assertion(
            &CertificateCredential::from_files(&cert, Some(&pkcs1), SigningAlg::Rs256).unwrap(),
            "RS256",
        );
        assert!(!format!("{ps:?}").contains("BEGIN"));
    }

    #[test]
    fn app_credential_loads_from_env_and_file() {
        let env = Env::from_pairs([("S", "value-1")]);
        let spec = AppSpec {
            client_id: "c".into(),
            credential: CredentialSource::SecretEnv("S".into()),
        };
        let cred = AppCredential::load(&spec, &env).unwrap();
        assert!(matches!(&cred.auth, ClientAuth::Secret(s) if s.expose_secret() == "value-1"));
        assert!(!format!("{cred:?}").contains("value-1"));
        let spec = AppSpec {
            client_id: "c".into(),
            credential: CredentialSource::SecretEnv("MISSING".into()),
        };
        assert_eq!(
            AppCredential::load(&spec, &env).unwrap_err().kind,
            ConfigErrorKind::Credential
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "file-secret\n").unwrap();
        let spec = AppSpec {
            client_id: "c".into(),
            credential: CredentialSource::SecretFile(file),
        };
        let cred = AppCredential::load(&spec, &env).unwrap();
        assert!(matches!(&cred.auth, ClientAuth::Secret(s) if s.expose_secret() == "file-secret"));
        let spec = AppSpec {
            client_id: "c".into(),
            credential: CredentialSource::Certificate {
                certificate_file: format!("{FIXTURES}/test-app.combined.pem").into(),
                private_key_file: None,
                alg: SigningAlg::Ps256,
            },
        };
        assert!(matches!(
            AppCredential::load(&spec, &env).unwrap().auth,
            ClientAuth::Certificate(_)
        ));
    }

    #[test]
    fn pem_errors_do_not_leak() {
        let e = CertificateCredential::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            None,
            SigningAlg::Ps256,
        )
        .unwrap_err();
        assert!(e.contains("no unencrypted private key"), "{e}");
        assert!(pem_blocks("-----BEGIN X-----\n").is_ok());
        assert!(pem_blocks("-----BEGIN X-----\nAA==\n-----END Y-----\n").is_err());
    }
}
