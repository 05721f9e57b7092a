//! The v2.0 token endpoint (`POST /{tenant}/oauth2/v2.0/token`, client credentials with a
//! secret — form field or HTTP Basic — or a certificate assertion) and bearer-token checks
//! on Graph requests
//! (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
//!
//! Entra's error body: `{"error","error_description":"AADSTSnnnn: …","error_codes":[n],
//! "timestamp","trace_id","correlation_id","error_uri"}`. The AADSTS codes used here are
//! those of the Entra error-code reference (AADSTS90002 tenant not found, 700016 unknown
//! application, 7000215 invalid secret, 7000216 credential missing, 700027 assertion
//! signature / certificate not registered, 700024 assertion time range, 70003 grant type,
//! 900144 missing parameter, 1002012 scope without `/.default`); which of them Entra answers
//! with 400 versus 401 is partly unconfirmed: 401 for bad client credentials, else 400.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::model::App;
use super::odata::query_pairs;
use super::state::{Emu, Grant};

/// Outcome of a token request: status and JSON body.
pub struct TokenAnswer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
}

fn entra_error(status: u16, error: &str, code: u32, message: &str) -> TokenAnswer {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    let now = jiff::Timestamp::now();
    let ts = now.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
    TokenAnswer {
        status,
        body: json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    }
}

/// The Graph resource's `.default` scopes accepted for client credentials: the public
/// cloud's identifier URI, Graph's well-known app id, and the emulator's own origin
/// (`base`). A national cloud's Graph is its own resource (`https://graph.microsoft.us/.default`
/// for `graph.microsoft.us`), so a client derives the scope from its Graph URL; the emulator
/// is the Graph resource served at `base` and must accept the scope derived from it.
fn graph_scope_ok(scope: &str, base: &str) -> bool {
    let own = format!("{}/.default", base.trim_end_matches('/'));
    scope.split(' ').filter(|s| !s.is_empty()).all(|s| {
        let s = s.trim_end_matches('/');
        s.eq_ignore_ascii_case("https://graph.microsoft.com/.default")
            || s.eq_ignore_ascii_case("00000003-0000-0000-c000-000000000000/.default")
            || s.eq_ignore_ascii_case(&own)
    })
}

/// Handle one token request. `tenant` is the path segment, `authorization` the header.
pub fn token(emu: &Emu, tenant: &str, authorization: Option<&str>, form: &str) -> TokenAnswer {
    let pairs = query_pairs(form);
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let t = emu.read();
    let tenant_ok = tenant.eq_ignore_ascii_case(&t.tenant_id.to_string())
        || tenant.eq_ignore_ascii_case(&t.verified_domain)
        || tenant.eq_ignore_ascii_case(&t.initial_domain);
    if !tenant_ok {
        return entra_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    match field("grant_type") {
        Some("client_credentials") => {}
        None => {
            return entra_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            );
        }
        Some(other) => {
            return entra_error(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            );
        }
    }
    // HTTP Basic: base64(urlencode(client_id):urlencode(secret)) (RFC 6749 §2.3.1).
    let basic = authorization
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':').map(|(id, secret)| {
                (
                    super::odata::percent_decode(id),
                    super::odata::percent_decode(secret),
                )
            })
        });
    let client_id = field("client_id")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()));
    let Some(client_id) = client_id else {
        return entra_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(scope) = field("scope") else {
        return entra_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    if !scope.contains("/.default") {
        return entra_error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    if !graph_scope_ok(scope, &emu.base) {
        return entra_error(
            400,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {scope} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                t.tenant_id
            ),
        );
    }
    let Some(app_index) = t
        .apps
        .iter()
        .position(|a| a.client_id.to_string().eq_ignore_ascii_case(&client_id))
    else {
        return entra_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                t.tenant_id
            ),
        );
    };
    let app = &t.apps[app_index];
    let secret = field("client_secret")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(_, s)| s.clone()));
    if let Some(secret) = &secret {
        if !constant_time_eq(secret.as_bytes(), app.secret.as_bytes()) {
            return entra_error(
                401,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            );
        }
    } else if let Some(assertion) = field("client_assertion") {
        if field("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return entra_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            );
        }
        let audiences = [
            format!("{}/{}/oauth2/v2.0/token", emu.base, tenant),
            format!("{}/{}/oauth2/v2.0/token", emu.base, t.tenant_id),
            format!(
                "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                t.tenant_id
            ),
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        ];
        if let Err(answer) = verify_assertion(assertion, &client_id, &app.certificates, &audiences)
        {
            return answer;
        }
    } else {
        return entra_error(
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        );
    }
    let expires_in = (3599.0 / emu.scale).ceil().max(1.0) as u64;
    let access_token = AccessToken {
        tenant_id: &t.tenant_id.to_string(),
        app,
        audience: scope_audience(scope),
        certificate: secret.is_none(),
        lifetime_s: expires_in,
    }
    .encode();
    drop(t);
    if let Ok(mut tokens) = emu.tokens.write() {
        let now = Instant::now();
        // Forget expired tokens now and then so a long tabletop does not grow the map.
        if tokens.len() > 10_000 {
            tokens.retain(|_, g| g.expires > now);
        }
        tokens.insert(
            access_token.clone(),
            Grant {
                app: app_index as u32,
                expires: now + emu.token_lifetime,
            },
        );
    }
    TokenAnswer {
        status: 200,
        body: json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access_token,
        }),
    }
}

/// What an issued access token says about its app. Encoded as Entra encodes a v1.0 token
/// for Microsoft Graph (Graph accepts v1.0 tokens): a JWT whose payload carries `aud`,
/// `iss`, `iat`/`nbf`/`exp`, `appid`, `appidacr`, `idtyp: app`, `oid`/`sub` (the app's
/// service principal), `tid`, `uti`, `ver`, the directory role in `wids`, and the granted
/// application permissions as a JSON array in `roles`
/// (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
/// The signature is random bytes: a Graph access token is opaque to its client, which must
/// not validate it, and the emulator accepts only the tokens it issued (see [`check_bearer`]).
struct AccessToken<'a> {
    tenant_id: &'a str,
    app: &'a App,
    /// `aud`: the resource the scope named.
    audience: String,
    /// Issued for a certificate assertion (`appidacr` 2) rather than a secret (1).
    certificate: bool,
    lifetime_s: u64,
}

impl AccessToken<'_> {
    fn encode(&self) -> String {
        let mut rng = rand::rng();
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let mut signature = [0u8; 256];
        rng.fill_bytes(&mut signature);
        // A stable key id per emulator build of the tenant, like Entra's signing key's.
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(self.tenant_id.as_bytes())[..20]);
        let header = json!({ "typ": "JWT", "alg": "RS256", "x5t": kid, "kid": kid });
        let now = jiff::Timestamp::now().as_second();
        let issuer = format!("https://sts.windows.net/{}/", self.tenant_id);
        let principal = self.app.service_principal_id();
        let claims = json!({
            "aud": self.audience,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_s as i64,
            "aio": URL_SAFE_NO_PAD.encode(&id[..12]),
            "app_displayname": self.app.display_name,
            "appid": self.app.client_id.to_string(),
            "appidacr": if self.certificate { "2" } else { "1" },
            "idp": issuer,
            "idtyp": "app",
            "oid": principal,
            "rh": format!("0.{}.", URL_SAFE_NO_PAD.encode(&id[4..])),
            "roles": self.app.permissions,
            "sub": principal,
            "tid": self.tenant_id,
            "uti": URL_SAFE_NO_PAD.encode(id),
            "ver": "1.0",
            "wids": [self.app.role],
        });
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.{}",
            part(&header),
            part(&claims),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }
}

/// A v1.0 token's `aud`: the resource of the first `/.default` scope
/// (`https://graph.microsoft.com`, or Graph's app id when the scope used it).
fn scope_audience(scope: &str) -> String {
    scope
        .split(' ')
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .trim_end_matches('/')
        .trim_end_matches("/.default")
        .to_string()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn b64_any(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .ok()
}

fn bad_assertion(code: u32, message: &str) -> TokenAnswer {
    entra_error(401, "invalid_client", code, message)
}

/// Check a client assertion JWT
/// (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>): header
/// `alg` PS256 or RS256 with `x5t#S256` (SHA-256) or `x5t` (SHA-1) naming a registered
/// certificate, a valid signature by that certificate's key, `iss` = `sub` = client id, `aud` =
/// the token endpoint, `nbf`/`exp`.
fn verify_assertion(
    jwt: &str,
    client_id: &str,
    certificates: &[Vec<u8>],
    audiences: &[String],
) -> Result<(), TokenAnswer> {
    let malformed = || bad_assertion(50027, "JWT token is invalid or malformed.");
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header: Value = b64_any(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    let claims: Value = b64_any(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    let signature = b64_any(s).ok_or_else(malformed)?;
    let algorithm: &dyn rustls_pki_types::SignatureVerificationAlgorithm = match header["alg"]
        .as_str()
    {
        Some("PS256") => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        Some("RS256") => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        _ => {
            return Err(bad_assertion(
                700027,
                "Client assertion contains an invalid signature. [Reason - The key algorithm is not supported.]",
            ));
        }
    };
    let wanted_sha256 = header["x5t#S256"].as_str().and_then(b64_any);
    let wanted_sha1 = header["x5t"].as_str().and_then(b64_any);
    if wanted_sha256.is_none() && wanted_sha1.is_none() {
        return Err(bad_assertion(
            700027,
            "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: 'none']",
        ));
    }
    let cert = certificates.iter().find(|der| {
        wanted_sha256
            .as_ref()
            .is_some_and(|w| Sha256::digest(der).as_slice() == w.as_slice())
            || wanted_sha1.as_ref().is_some_and(|w| {
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref()
                    == w.as_slice()
            })
    });
    let Some(cert) = cert else {
        return Err(bad_assertion(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application.",
        ));
    };
    let der = rustls_pki_types::CertificateDer::from(cert.as_slice());
    let end_entity = webpki::EndEntityCert::try_from(&der).map_err(|_| malformed())?;
    let signed = &jwt[..h.len() + 1 + p.len()];
    if end_entity
        .verify_signature(algorithm, signed.as_bytes(), &signature)
        .is_err()
    {
        return Err(bad_assertion(
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    if claims["iss"].as_str() != Some(client_id) || claims["sub"].as_str() != Some(client_id) {
        return Err(bad_assertion(
            700023,
            "Client assertion audience or issuer claim does not match the client id.",
        ));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => audiences.iter().any(|x| x.eq_ignore_ascii_case(a)),
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x.eq_ignore_ascii_case(a))),
        _ => false,
    };
    if !aud_ok {
        return Err(bad_assertion(
            700021,
            "Client assertion audience claim does not match Realm issuer.",
        ));
    }
    let now = jiff::Timestamp::now().as_second();
    let skew = 300;
    let exp = claims["exp"].as_i64();
    let nbf = claims["nbf"].as_i64().unwrap_or(now);
    if exp.is_none_or(|e| e + skew < now) || nbf - skew > now {
        return Err(bad_assertion(
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}

/// Why a Graph request's bearer token was refused.
pub enum TokenProblem {
    /// No Authorization header.
    Missing,
    /// Not a token the emulator issued.
    Invalid,
    /// Issued but expired.
    Expired,
}

impl TokenProblem {
    /// Graph's 401 message (code `InvalidAuthenticationToken`; messages as reported in
    /// github.com/microsoftgraph/msgraph-sample-reactspa/issues/54 and
    /// github.com/microsoftgraph/console-java-connect-sample/issues/1).
    pub fn message(&self) -> &'static str {
        match self {
            TokenProblem::Missing => "Access token is empty.",
            TokenProblem::Invalid => "Access token validation failure.",
            TokenProblem::Expired => "Lifetime validation failed, the token is expired.",
        }
    }
}

/// The app index a Graph request is authorised as.
pub fn check_bearer(emu: &Emu, authorization: Option<&str>) -> Result<u32, TokenProblem> {
    let Some(header) = authorization else {
        return Err(TokenProblem::Missing);
    };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(TokenProblem::Invalid)?;
    if token.is_empty() {
        return Err(TokenProblem::Missing);
    }
    let tokens = emu.tokens.read().map_err(|_| TokenProblem::Invalid)?;
    let grant = tokens.get(token).ok_or(TokenProblem::Invalid)?;
    if grant.expires <= Instant::now() {
        return Err(TokenProblem::Expired);
    }
    Ok(grant.app)
}

#[cfg(test)]
mod tests {
    use super::{graph_scope_ok, scope_audience};

    #[test]
    fn the_audience_is_the_scopes_resource() {
        assert_eq!(
            scope_audience("https://graph.microsoft.com/.default"),
            "https://graph.microsoft.com"
        );
        assert_eq!(
            scope_audience("00000003-0000-0000-c000-000000000000/.default"),
            "00000003-0000-0000-c000-000000000000"
        );
    }

    #[test]
    fn graph_scopes_include_the_emulators_own_origin() {
        let base = "http://127.0.0.1:8080";
        assert!(graph_scope_ok("https://graph.microsoft.com/.default", base));
        assert!(graph_scope_ok(
            "00000003-0000-0000-c000-000000000000/.default",
            base
        ));
        assert!(graph_scope_ok("http://127.0.0.1:8080/.default", base));
        assert!(!graph_scope_ok("http://127.0.0.1:9999/.default", base));
        assert!(!graph_scope_ok("https://graph.microsoft.us/.default", base));
        assert!(!graph_scope_ok("https://vault.azure.net/.default", base));
    }
}
