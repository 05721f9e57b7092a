//! What an access token says about the app it was issued to: the payload of the JWT Entra
//! issues for Microsoft Graph, read without verifying its signature.
//!
//! A client never validates a Graph access token, and Microsoft asks clients not to depend
//! on its contents, whose format may change
//! (<https://learn.microsoft.com/entra/identity-platform/access-tokens>). resetctl reads the
//! claims only for a diagnosis: which application permissions the tenant granted (`roles`),
//! shown before a run and when writes are refused. Graph's own answers stay the authority:
//! a token whose claims cannot be read is reported as such and nothing is concluded from
//! it. The token itself is never logged, returned or put in an error.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::{GraphError, GraphErrorKind};

/// The claims of an app-only access token that say who the app is and what it was granted
/// (<https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference>).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AccessClaims {
    /// `appid` (v1.0 tokens): the application (client) id.
    #[serde(default)]
    pub appid: Option<String>,
    /// `azp` (v2.0 tokens): the application (client) id.
    #[serde(default)]
    pub azp: Option<String>,
    /// `tid`: the tenant the token is for.
    #[serde(default)]
    pub tid: Option<String>,
    /// `oid`: the object id of the app's service principal in that tenant.
    #[serde(default)]
    pub oid: Option<String>,
    /// `aud`: the resource the token is for (Graph: `https://graph.microsoft.com` or its id).
    #[serde(default)]
    pub aud: Option<String>,
    /// `idtyp`: `app` for an app-only token.
    #[serde(default)]
    pub idtyp: Option<String>,
    /// `roles`: the application permissions granted to the app, e.g. `User.ReadWrite.All`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// `wids`: template ids of the tenant-wide directory roles the token carries.
    #[serde(default)]
    pub wids: Vec<String>,
    /// `exp`: expiry, seconds since the Unix epoch.
    #[serde(default)]
    pub exp: Option<i64>,
}

impl AccessClaims {
    /// The application (client) id, from `appid` or `azp`.
    pub fn app_id(&self) -> Option<&str> {
        self.appid.as_deref().or(self.azp.as_deref())
    }
}

/// The claims of `token`, a compact JWS (`header.payload.signature`). The signature is not
/// checked (see the module comment). An error names what is wrong with the token's shape,
/// never its content.
pub fn decode(token: &SecretString) -> Result<AccessClaims, GraphError> {
    let unreadable = |why: &str| {
        GraphError::new(
            GraphErrorKind::Decode,
            format!("the access token's claims cannot be read: {why}"),
        )
    };
    let text = token.expose_secret();
    let mut parts = text.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unreadable(
            "it is not a JSON Web Token (three dot-separated parts)",
        ));
    };
    // base64url without padding (RFC 7515 §2); tolerate padding some issuers add.
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| unreadable("its payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| unreadable("its payload is not a JSON object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> SecretString {
        let part = |s: &str| URL_SAFE_NO_PAD.encode(s);
        SecretString::from(format!(
            "{}.{}.{}",
            part(r#"{"typ":"JWT","alg":"RS256"}"#),
            part(payload),
            part("not-a-signature")
        ))
    }

    #[test]
    fn reads_an_app_token_s_claims_without_its_signature() {
        let claims = decode(&jwt(
            r#"{"aud":"https://graph.microsoft.com","appid":"c1","tid":"t1","oid":"sp1",
                "idtyp":"app","roles":["User.ReadWrite.All","GroupMember.ReadWrite.All"],
                "wids":["fe930be7-5e62-47db-91af-98c3a49a38b1"],"exp":1700000000,"extra":1}"#,
        ))
        .unwrap();
        assert_eq!(claims.app_id(), Some("c1"));
        assert_eq!(claims.tid.as_deref(), Some("t1"));
        assert_eq!(claims.oid.as_deref(), Some("sp1"));
        assert_eq!(
            claims.roles,
            ["User.ReadWrite.All", "GroupMember.ReadWrite.All"]
        );
        assert_eq!(claims.wids, ["fe930be7-5e62-47db-91af-98c3a49a38b1"]);
        assert_eq!(claims.exp, Some(1_700_000_000));
        // A v2.0 token names the app in `azp`; a token with no roles granted has none.
        let v2 = decode(&jwt(r#"{"azp":"c2"}"#)).unwrap();
        assert_eq!(v2.app_id(), Some("c2"));
        assert!(v2.roles.is_empty());
    }

    #[test]
    fn an_unreadable_token_is_an_error_that_does_not_quote_it() {
        for token in [
            "opaque-token-value",
            "a.b",
            "a.!!!.c",
            "a.bm90IGpzb24.c",
            "a.b.c.d",
        ] {
            let err = decode(&SecretString::from(token.to_owned())).unwrap_err();
            assert_eq!(err.kind, GraphErrorKind::Decode, "{token}");
            assert!(!err.message.contains(token), "{}", err.message);
        }
    }
}
