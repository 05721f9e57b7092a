//! Cross-site request forgery defence of the approval form: the double-submit cookie,
//! signed. The page (GET) sets a random cookie value and puts `HMAC(server key, cookie,
//! token id)` into a hidden field; the post must bring both, matching. A site that makes
//! the approver's browser post cannot read the cookie (`HttpOnly`, `SameSite=Strict`, and
//! `__Host-` where the page is https) nor compute the field without the key, which lives
//! only in this process (a page opened before a restart must be opened again).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Separates this MAC from any other use of a key.
const DOMAIN: &[u8] = b"resetctl/serve/csrf/v1";

/// The server's CSRF key: 32 random bytes drawn at start. `Debug` hides it.
pub struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

impl CsrfKey {
    /// A fresh key from the system's CSPRNG.
    pub fn random() -> Result<CsrfKey, String> {
        Ok(CsrfKey(random_bytes()?))
    }

    /// The hidden field's value for `cookie` and `token_id`.
    pub fn field(&self, cookie: &str, token_id: &str) -> String {
        hex::encode(self.mac(cookie, token_id).finalize().into_bytes())
    }

    /// Whether `field` was made by [`CsrfKey::field`] for `cookie` and `token_id`
    /// (constant-time).
    pub fn check(&self, cookie: &str, token_id: &str, field: &str) -> bool {
        let Ok(field) = hex::decode(field) else {
            return false;
        };
        self.mac(cookie, token_id).verify_slice(&field).is_ok()
    }

    fn mac(&self, cookie: &str, token_id: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        for part in [DOMAIN, cookie.as_bytes(), token_id.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }
}

/// A new cookie value: 32 random bytes, URL-safe base64.
pub fn new_cookie() -> Result<String, String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes()?))
}

fn random_bytes() -> Result<[u8; 32], String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("the system random source failed: {e}"))?;
    Ok(bytes)
}

/// The cookie's name and attributes: `__Host-` (which browsers accept only with `Secure`,
/// `Path=/` and no `Domain`) when approvers reach the server over https, a plain name on
/// plain loopback http (where `Secure` cookies are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieKind {
    secure: bool,
}

impl CookieKind {
    /// The kind for pages served under `public_base_url`.
    pub fn for_base(public_base_url: &str) -> CookieKind {
        CookieKind {
            secure: public_base_url
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://")),
        }
    }

    /// The cookie's name.
    pub fn name(self) -> &'static str {
        if self.secure {
            "__Host-resetctl-csrf"
        } else {
            "resetctl-csrf"
        }
    }

    /// The `Set-Cookie` value for `value` (a session cookie: it ends with the browser).
    pub fn set_cookie(self, value: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict{secure}",
            self.name()
        )
    }

    /// This cookie's value in a `Cookie` header, if it is there once.
    pub fn find(self, cookie_header: &str) -> Option<String> {
        let mut found = cookie_header.split(';').filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == self.name()).then(|| value.trim().to_owned())
        });
        let value = found.next()?;
        // Two cookies of the name (one planted from a sibling domain): trust neither.
        found.next().is_none().then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_binds_the_cookie_and_the_token() {
        let key = CsrfKey::random().unwrap();
        let cookie = new_cookie().unwrap();
        let field = key.field(&cookie, "tok-1");
        assert!(key.check(&cookie, "tok-1", &field));
        assert!(!key.check(&cookie, "tok-2", &field));
        assert!(!key.check(&new_cookie().unwrap(), "tok-1", &field));
        assert!(!key.check(&cookie, "tok-1", "zz"));
        assert!(!CsrfKey::random().unwrap().check(&cookie, "tok-1", &field));
        assert_eq!(format!("{key:?}"), "CsrfKey(..)");
    }

    #[test]
    fn the_cookie_is_host_bound_on_https_and_plain_on_loopback_http() {
        let https = CookieKind::for_base("https://approve.example");
        assert_eq!(
            https.set_cookie("v"),
            "__Host-resetctl-csrf=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let http = CookieKind::for_base("http://127.0.0.1:8080");
        assert_eq!(
            http.set_cookie("v"),
            "resetctl-csrf=v; Path=/; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            https.find("a=1; __Host-resetctl-csrf=abc ; b=2").as_deref(),
            Some("abc")
        );
        assert_eq!(https.find("resetctl-csrf=abc"), None);
        assert_eq!(
            https.find("__Host-resetctl-csrf=a; __Host-resetctl-csrf=b"),
            None
        );
    }
}
