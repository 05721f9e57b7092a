//! Signed one-time approval tokens: what the approve and deny links of the manager's card
//! and SMS carry.
//!
//! A token is 32 random bytes from the operating system's CSPRNG and an HMAC-SHA256 over
//! them and the facts they are bound to (request, approver, decision, expiry), both in
//! URL-safe base64 without padding: `<random>.<mac>`. Minting stores a [`TokenRecord`] under
//! the token's id, the SHA-256 of the random bytes, never the token itself: a copy of the
//! store lets no one answer an approval. Redeeming checks the shape, finds the record,
//! checks the MAC in constant time against the record's facts (so a record altered in the
//! store is refused as forged), the request and decision the link claims, single use and
//! expiry, and then marks the record used in one atomic step, so of two clicks racing only
//! one succeeds.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

use super::context::Person;
use super::runtime::{ApprovalLinks, LinkMinter};
use super::state::{Approver, Event};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of randomness in a token: 256 bits, beyond guessing.
const RANDOM_LEN: usize = 32;
/// Bytes of an HMAC-SHA256 tag.
const MAC_LEN: usize = 32;
/// The shortest server key accepted: HMAC-SHA256's own output length (RFC 2104 §3
/// recommends keys no shorter than the hash output).
pub const MIN_KEY_LEN: usize = 32;
/// Separates this MAC from any other use of the same key.
const DOMAIN: &[u8] = b"resetctl/verify/approval-token/v1";

/// Which answer a token gives. The approve and deny links carry distinct tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The approver confirms the request is the user's own.
    Approve,
    /// The approver says it is not.
    Deny,
}

impl Decision {
    /// The stored and signed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }

    /// The decision named `name`, as stored.
    pub fn parse(name: &str) -> Option<Decision> {
        match name {
            "approve" => Some(Decision::Approve),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }
}

/// The server's signing key. Its bytes never leave this type: `Debug` hides them.
#[derive(Clone)]
pub struct TokenKey(Arc<[u8]>);

impl TokenKey {
    /// A key from `bytes` (at least [`MIN_KEY_LEN`] of them).
    pub fn new(bytes: &[u8]) -> Result<TokenKey, TokenKeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(TokenKeyError { len: bytes.len() });
        }
        Ok(TokenKey(bytes.into()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// A key too short to sign with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the approval token key has {len} bytes; at least {MIN_KEY_LEN} are needed")]
pub struct TokenKeyError {
    /// How many bytes it had.
    pub len: usize,
}

/// A minted token: a credential until used. `Debug` hides it; [`Token::expose`] is the one
/// way to read it (to put it into a link).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token's text, for the link only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// What is stored for a minted token, under its id. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The SHA-256 of the token's random bytes, hex: names the token in the store and the
    /// audit trail.
    pub id: String,
    /// The verification request it answers.
    pub request: String,
    /// The directory object id of the approver it was sent to.
    pub approver: String,
    /// The answer it gives.
    pub decision: Decision,
    /// When it stops being accepted (whole milliseconds: the stored and signed precision).
    pub expires: Timestamp,
    /// When it was used, if it was.
    pub used_at: Option<Timestamp>,
}

/// Why a token store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenStoreError {
    /// A record with this id exists already (a repeated random draw: never in practice).
    #[error("approval token {0} exists already")]
    Duplicate(String),
    /// The store failed or holds a value it cannot read.
    #[error("{0}")]
    Backend(String),
}

/// Where token records live. Object-safe, so the minter can hold either store.
pub trait TokenStore: Send + Sync {
    /// Store a new, unused record.
    fn insert<'a>(&'a self, record: &'a TokenRecord) -> BoxFuture<'a, Result<(), TokenStoreError>>;

    /// The record `id`, if stored.
    fn token<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, TokenStoreError>>;

    /// Mark record `id` used at `at` if it is unused and not expired at `at`, and with it
    /// every unused record of the same request (the request is decided: the paired answer
    /// and the other message's links must not count any more), in one atomic step; whether
    /// this call marked `id` (false: used already, expired, or unknown).
    fn consume<'a>(
        &'a self,
        id: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>>;
}

/// Token records in memory, for tests and single-shot tools.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    records: Mutex<std::collections::BTreeMap<String, TokenRecord>>,
}

impl MemoryTokenStore {
    fn records(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, TokenRecord>> {
        // A panic while holding the lock left the map whole (every change is one insert).
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TokenStore for MemoryTokenStore {
    fn insert<'a>(&'a self, record: &'a TokenRecord) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        Box::pin(async move {
            let mut records = self.records();
            if records.contains_key(&record.id) {
                return Err(TokenStoreError::Duplicate(record.id.clone()));
            }
            records.insert(record.id.clone(), record.clone());
            Ok(())
        })
    }

    fn token<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenRecord>, TokenStoreError>> {
        Box::pin(async move { Ok(self.records().get(id).cloned()) })
    }

    fn consume<'a>(
        &'a self,
        id: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        Box::pin(async move {
            let mut records = self.records();
            let request = match records.get(id) {
                Some(r) if r.used_at.is_none() && at < r.expires => r.request.clone(),
                _ => return Ok(false),
            };
            for r in records.values_mut() {
                if r.request == request && r.used_at.is_none() {
                    r.used_at = Some(at);
                }
            }
            Ok(true)
        })
    }
}

/// Why a token was not accepted. The page shows the approver a message per kind; none says
/// which bound fact (request or approver) a wrong token was minted for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a token this server signed: bad shape, bad encoding or a MAC that does not match.
    #[error("the approval link is not valid")]
    Forged,
    /// Signed-looking, but no token with this id was ever minted here.
    #[error("the approval link is not known")]
    Unknown,
    /// The token's time is up.
    #[error("the approval link has expired")]
    Expired,
    /// The token was used already.
    #[error("the approval link was used already")]
    Replayed,
    /// The token answers another request than the link names.
    #[error("the approval link does not belong to this request")]
    WrongRequest,
    /// The token gives the other answer (an approve token on the deny page, or back).
    #[error("the approval link does not give this answer")]
    WrongDecision,
    /// The token store failed: nothing was decided.
    #[error("approval tokens: {0}")]
    Store(#[from] TokenStoreError),
}

/// The facts a valid token was bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The token's id (the stored hash, never the token).
    pub token_id: String,
    /// The request it answers.
    pub request: String,
    /// The approver's directory object id.
    pub approver: String,
    /// The answer it gives.
    pub decision: Decision,
    /// When it expires.
    pub expires: Timestamp,
}

/// Where a link was opened from, for the audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// Mints and checks approval tokens with one key and one store.
#[derive(Clone)]
pub struct Tokens {
    key: TokenKey,
    store: Arc<dyn TokenStore>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

impl Tokens {
    /// Tokens signed with `key`, recorded in `store`.
    pub fn new(key: TokenKey, store: Arc<dyn TokenStore>) -> Tokens {
        Tokens { key, store }
    }

    /// A new token for `approver` (object id) to give `decision` on `request` until
    /// `expires` (truncated to whole milliseconds); its record is stored before it is
    /// returned.
    pub async fn mint(
        &self,
        request: &str,
        approver: &str,
        decision: Decision,
        expires: Timestamp,
    ) -> Result<Token, TokenStoreError> {
        let random = random_bytes().map_err(TokenStoreError::Backend)?;
        let expires = Timestamp::from_millisecond(expires.as_millisecond())
            .map_err(|e| TokenStoreError::Backend(e.to_string()))?;
        let record = TokenRecord {
            id: token_id(&random),
            request: request.to_owned(),
            approver: approver.to_owned(),
            decision,
            expires,
            used_at: None,
        };
        let mac = self.sign(&random, &record).finalize().into_bytes();
        self.store.insert(&record).await?;
        Ok(Token(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(random),
            URL_SAFE_NO_PAD.encode(mac)
        )))
    }

    /// Check `token` without using it: the facts it is bound to, or why it is refused.
    /// `request` is the request the link names, if it names one; `decision` the answer of
    /// the page it was opened on.
    pub async fn verify(
        &self,
        token: &str,
        request: Option<&str>,
        decision: Decision,
        now: Timestamp,
    ) -> Result<Bound, Refusal> {
        let (random, mac) = parse(token).ok_or(Refusal::Forged)?;
        let id = token_id(&random);
        let record = self.store.token(&id).await?.ok_or(Refusal::Unknown)?;
        // Constant-time comparison (`verify_slice`), against the record's facts.
        self.sign(&random, &record)
            .verify_slice(&mac)
            .map_err(|_| Refusal::Forged)?;
        if request.is_some_and(|r| r != record.request) {
            return Err(Refusal::WrongRequest);
        }
        if decision != record.decision {
            return Err(Refusal::WrongDecision);
        }
        if record.used_at.is_some() {
            return Err(Refusal::Replayed);
        }
        if now >= record.expires {
            return Err(Refusal::Expired);
        }
        Ok(Bound {
            token_id: record.id,
            request: record.request,
            approver: record.approver,
            decision: record.decision,
            expires: record.expires,
        })
    }

    /// Use `token` once: [`Tokens::verify`], then mark it used atomically. On success, the
    /// bound facts and the event the verification flow takes for a link answer (its
    /// approver carries the token's id, never the token).
    pub async fn redeem(
        &self,
        token: &str,
        request: Option<&str>,
        decision: Decision,
        client: &Client,
        now: Timestamp,
    ) -> Result<(Bound, Event), Refusal> {
        let bound = self.verify(token, request, decision, now).await?;
        if !self.store.consume(&bound.token_id, now).await? {
            // Another click used it between the check and now (or it expired just then).
            return Err(Refusal::Replayed);
        }
        let event = Event::LinkUsed {
            approve: bound.decision == Decision::Approve,
            approver: Approver {
                id: bound.approver.clone(),
                ip: client.ip.clone(),
                user_agent: client.user_agent.clone(),
                token_id: Some(bound.token_id.clone()),
            },
        };
        Ok((bound, event))
    }

    /// The MAC over the random bytes and the bound facts, each length-prefixed so no two
    /// different fact lists sign the same bytes.
    fn sign(&self, random: &[u8], record: &TokenRecord) -> HmacSha256 {
        let mut mac = self.key.mac();
        for field in [
            DOMAIN,
            random,
            record.request.as_bytes(),
            record.approver.as_bytes(),
            record.decision.as_str().as_bytes(),
            &record.expires.as_millisecond().to_be_bytes(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac
    }
}

/// 32 bytes from the operating system's CSPRNG.
fn random_bytes() -> Result<[u8; RANDOM_LEN], String> {
    let mut random = [0u8; RANDOM_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut random)
        .map_err(|e| format!("the system random source failed: {e}"))?;
    Ok(random)
}

/// A token's id: the hex SHA-256 of its random bytes.
fn token_id(random: &[u8]) -> String {
    hex::encode(Sha256::digest(random))
}

/// The id a well-formed `token` is stored under (the SHA-256 of its random part, never the
/// token), for the audit record of a link that was refused.
pub fn id_of(token: &str) -> Option<String> {
    parse(token).map(|(random, _)| token_id(&random))
}

/// The random bytes and MAC of a well-formed token.
fn parse(token: &str) -> Option<([u8; RANDOM_LEN], [u8; MAC_LEN])> {
    let (random, mac) = token.split_once('.')?;
    let random = URL_SAFE_NO_PAD.decode(random).ok()?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    Some((random.try_into().ok()?, mac.try_into().ok()?))
}

/// The runtime's [`LinkMinter`] over [`Tokens`]: an approve link and a deny link, each with
/// its own token, under a base URL from the configuration:
/// `<base>/approve/<request>/<token>` and `<base>/deny/<request>/<token>`.
#[derive(Clone)]
pub struct TokenMinter {
    tokens: Tokens,
    base: String,
}

impl std::fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMinter")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    /// Links under `base` (`https://runner.example`; a trailing `/` is dropped).
    pub fn new(tokens: Tokens, base: &str) -> TokenMinter {
        TokenMinter {
            tokens,
            base: base.trim_end_matches('/').to_owned(),
        }
    }
}

impl LinkMinter for TokenMinter {
    fn mint<'a>(
        &'a self,
        request: &'a str,
        approver: &'a Person,
        expires: Timestamp,
    ) -> BoxFuture<'a, Result<ApprovalLinks, String>> {
        Box::pin(async move {
            // Request ids are the runtime's own (`vr-<hex>`); anything else in a path is refused.
            if request.is_empty()
                || !request
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!("request id {request:?} cannot be put into a link"));
            }
            let link = |decision: Decision| async move {
                let token = self
                    .tokens
                    .mint(request, &approver.id, decision, expires)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(format!(
                    "{}/{}/{request}/{}",
                    self.base,
                    decision.as_str(),
                    token.expose()
                ))
            };
            Ok(ApprovalLinks {
                approve_url: link(Decision::Approve).await?,
                deny_url: link(Decision::Deny).await?,
            })
        })
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The behaviour every [`TokenStore`] must have, run against each implementation.

    use super::*;

    /// A key for tests.
    pub fn key() -> TokenKey {
        TokenKey::new(&[7u8; 32]).unwrap()
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    /// Mint, verify and redeem through `store`, covering every refusal.
    pub async fn check(store: Arc<dyn TokenStore>) {
        let tokens = Tokens::new(key(), store.clone());
        let expires = at(900);
        let client = Client {
            ip: Some("198.51.100.7".into()),
            user_agent: Some("Mobile Safari".into()),
        };

        // Once, then replayed.
        let t = tokens
            .mint("vr-a", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        let (bound, event) = tokens
            .redeem(t.expose(), Some("vr-a"), Decision::Approve, &client, at(10))
            .await
            .unwrap();
        assert_eq!(
            (bound.request.as_str(), bound.approver.as_str()),
            ("vr-a", "mgr-1")
        );
        assert_eq!(bound.token_id, token_id(&parse(t.expose()).unwrap().0));
        assert_eq!(
            event,
            Event::LinkUsed {
                approve: true,
                approver: Approver {
                    id: "mgr-1".into(),
                    ip: Some("198.51.100.7".into()),
                    user_agent: Some("Mobile Safari".into()),
                    token_id: Some(bound.token_id.clone()),
                },
            }
        );
        let stored = store.token(&bound.token_id).await.unwrap().unwrap();
        assert_eq!(stored.used_at, Some(at(10)));
        assert_eq!(
            tokens
                .redeem(t.expose(), Some("vr-a"), Decision::Approve, &client, at(11))
                .await,
            Err(Refusal::Replayed)
        );

        // A deny token gives a denial, without the request named by the link.
        let d = tokens
            .mint("vr-a", "mgr-1", Decision::Deny, expires)
            .await
            .unwrap();
        let (_, event) = tokens
            .redeem(d.expose(), None, Decision::Deny, &client, at(12))
            .await
            .unwrap();
        assert!(matches!(event, Event::LinkUsed { approve: false, .. }));

        // Expired at exactly its expiry (injected time), and not consumed by the attempt.
        let e = tokens
            .mint("vr-a", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        assert_eq!(
            tokens
                .redeem(
                    e.expose(),
                    Some("vr-a"),
                    Decision::Approve,
                    &client,
                    expires
                )
                .await,
            Err(Refusal::Expired)
        );
        assert!(
            tokens
                .redeem(
                    e.expose(),
                    Some("vr-a"),
                    Decision::Approve,
                    &client,
                    at(899)
                )
                .await
                .is_ok()
        );

        // Minted for request A, used on request B; an approve token used as a deny. Neither
        // refusal uses the token up.
        let w = tokens
            .mint("vr-a", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        assert_eq!(
            tokens
                .redeem(w.expose(), Some("vr-b"), Decision::Approve, &client, at(1))
                .await,
            Err(Refusal::WrongRequest)
        );
        assert_eq!(
            tokens
                .redeem(w.expose(), Some("vr-a"), Decision::Deny, &client, at(1))
                .await,
            Err(Refusal::WrongDecision)
        );
        assert!(
            tokens
                .redeem(w.expose(), Some("vr-a"), Decision::Approve, &client, at(1))
                .await
                .is_ok()
        );

        // Tampered: a MAC bit, the random part, the shape; another key.
        let f = tokens
            .mint("vr-a", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        let (random, mac) = f.expose().split_once('.').unwrap();
        let mut bad_mac = URL_SAFE_NO_PAD.decode(mac).unwrap();
        bad_mac[0] ^= 1;
        let tampered = format!("{random}.{}", URL_SAFE_NO_PAD.encode(&bad_mac));
        let refuse = |token: String| {
            let tokens = tokens.clone();
            let client = client.clone();
            async move {
                tokens
                    .redeem(&token, Some("vr-a"), Decision::Approve, &client, at(1))
                    .await
            }
        };
        assert_eq!(refuse(tampered).await, Err(Refusal::Forged));
        for shape in [
            String::new(),
            random.to_owned(),
            format!("{random}.{mac}.x"),
            format!("{random}.{}", &mac[1..]),
            format!("{random}=.{mac}"),
            format!("{}.{mac}", random.replace(|_| true, "+")),
        ] {
            assert_eq!(refuse(shape).await, Err(Refusal::Forged));
        }
        let mut other = URL_SAFE_NO_PAD.decode(random).unwrap();
        other[0] ^= 1;
        assert_eq!(
            refuse(format!("{}.{mac}", URL_SAFE_NO_PAD.encode(&other))).await,
            Err(Refusal::Unknown)
        );
        let stranger = Tokens::new(TokenKey::new(&[8u8; 32]).unwrap(), store.clone());
        assert_eq!(
            stranger
                .redeem(f.expose(), Some("vr-a"), Decision::Approve, &client, at(1))
                .await,
            Err(Refusal::Forged)
        );
        // The genuine token survived all of that.
        assert!(refuse(f.expose().to_owned()).await.is_ok());

        // A record altered in the store (pointed at another request) no longer verifies.
        let moved = tokens
            .mint("vr-a", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        let mut record = store
            .token(&token_id(&parse(moved.expose()).unwrap().0))
            .await
            .unwrap()
            .unwrap();
        record.id = token_id(&[0u8; 32]);
        record.request = "vr-b".into();
        store.insert(&record).await.unwrap();
        assert_eq!(
            tokens
                .redeem(
                    &format!(
                        "{}.{}",
                        URL_SAFE_NO_PAD.encode([0u8; 32]),
                        moved.expose().split_once('.').unwrap().1
                    ),
                    Some("vr-b"),
                    Decision::Approve,
                    &client,
                    at(1)
                )
                .await,
            Err(Refusal::Forged)
        );
        assert_eq!(
            store.insert(&record).await,
            Err(TokenStoreError::Duplicate(record.id.clone()))
        );

        // The store's consume is the single-use guarantee on its own (two redeems that both
        // verified before either consumed): once, then never; never after expiry.
        let once = tokens
            .mint("vr-a", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        let once = token_id(&parse(once.expose()).unwrap().0);
        assert!(!store.consume(&once, expires).await.unwrap());
        assert!(store.consume(&once, at(1)).await.unwrap());
        assert!(!store.consume(&once, at(2)).await.unwrap());
        assert_eq!(
            store.token(&once).await.unwrap().unwrap().used_at,
            Some(at(1))
        );
        assert!(!store.consume(&token_id(&[9u8; 32]), at(1)).await.unwrap());

        // A decision spends every link of the request: the paired answer and the other
        // message's links; another request's links are untouched.
        let yes = tokens
            .mint("vr-c", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        let no = tokens
            .mint("vr-c", "mgr-1", Decision::Deny, expires)
            .await
            .unwrap();
        let sms_yes = tokens
            .mint("vr-c", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        let elsewhere = tokens
            .mint("vr-d", "mgr-1", Decision::Deny, expires)
            .await
            .unwrap();
        tokens
            .redeem(no.expose(), Some("vr-c"), Decision::Deny, &client, at(3))
            .await
            .unwrap();
        for spent in [&yes, &sms_yes] {
            assert_eq!(
                tokens
                    .redeem(
                        spent.expose(),
                        Some("vr-c"),
                        Decision::Approve,
                        &client,
                        at(4)
                    )
                    .await,
                Err(Refusal::Replayed)
            );
        }
        assert!(
            tokens
                .verify(elsewhere.expose(), Some("vr-d"), Decision::Deny, at(4))
                .await
                .is_ok()
        );

        // Two clicks racing: exactly one wins.
        let r = tokens
            .mint("vr-a", "mgr-1", Decision::Approve, expires)
            .await
            .unwrap();
        let (one, two) =
            futures::join!(refuse(r.expose().to_owned()), refuse(r.expose().to_owned()));
        assert_eq!(
            [one.is_ok(), two.is_ok()].iter().filter(|ok| **ok).count(),
            1
        );
        assert!(
            [one, two]
                .iter()
                .any(|r| matches!(r, Err(Refusal::Replayed)))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::context::{Context, Manager};
    use crate::verify::{Action, Flow, PathBReason, Policy, State, step};

    #[tokio::test]
    async fn the_memory_store_behaves() {
        conformance::check(Arc::new(MemoryTokenStore::default())).await;
    }

    #[test]
    fn a_short_key_is_refused_and_no_key_or_token_shows_in_debug() {
        assert_eq!(
            TokenKey::new(&[1u8; 31]).unwrap_err(),
            TokenKeyError { len: 31 }
        );
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef-secret").unwrap();
        let tokens = Tokens::new(key.clone(), Arc::new(MemoryTokenStore::default()));
        let minter = TokenMinter::new(tokens.clone(), "https://runner.example/");
        for shown in [
            format!("{key:?}"),
            format!("{tokens:?}"),
            format!("{minter:?}"),
        ] {
            assert!(!shown.contains("secret"), "{shown}");
            assert!(!shown.contains("0123"), "{shown}");
        }
        assert_eq!(format!("{:?}", Token("abc.def".into())), "Token(..)");
    }

    #[tokio::test]
    async fn links_carry_distinct_tokens_that_never_reach_the_audit_record() {
        let store = Arc::new(MemoryTokenStore::default());
        let tokens = Tokens::new(conformance::key(), store.clone());
        let minter = TokenMinter::new(tokens.clone(), "https://runner.example/");
        let manager = Person {
            id: "mgr-1".into(),
            upn: "mgr@contoso.example".into(),
        };
        let expires = Timestamp::from_second(1_700_000_900).unwrap();
        let links = minter.mint("vr-abc", &manager, expires).await.unwrap();
        assert_eq!(format!("{links:?}"), "ApprovalLinks(..)");
        let approve = links
            .approve_url
            .strip_prefix("https://runner.example/approve/vr-abc/")
            .unwrap();
        let deny = links
            .deny_url
            .strip_prefix("https://runner.example/deny/vr-abc/")
            .unwrap();
        assert_ne!(approve, deny);
        assert!(
            approve
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        // The approve link's token does not deny, and the other way round.
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let client = Client::default();
        assert_eq!(
            tokens
                .verify(deny, Some("vr-abc"), Decision::Approve, now)
                .await,
            Err(Refusal::WrongDecision)
        );
        assert!(minter.mint("vr/../x", &manager, expires).await.is_err());

        let (bound, event) = tokens
            .redeem(approve, Some("vr-abc"), Decision::Approve, &client, now)
            .await
            .unwrap();
        // The stored record, the event and the audit record of the flow's transition on it
        // hold the token's id and never the token, nor its random part.
        let random = approve.split_once('.').unwrap().0;
        let record = store.token(&bound.token_id).await.unwrap().unwrap();
        // The flow takes the event (the manager answered the SMS link); its audit record.
        let person = |id: &str| Person {
            id: id.into(),
            upn: format!("{id}@contoso.example"),
        };
        let context = Context {
            user: person("user-1"),
            requester: person("agent-1"),
            manager: Some(Manager {
                person: manager.clone(),
                mobile: Some("+14255550123".into()),
            }),
            push_enrolled: false,
            device_available: false,
            manager_fallback: true,
            high_risk: false,
            in_open_mass_reset: false,
            critical_role: false,
            previous_request_at: None,
            recent_pushes: Vec::new(),
            recent_denials: Vec::new(),
            outcome: Default::default(),
        };
        let flow = Flow {
            id: "vr-abc".into(),
            context,
            state: State::ManagerSmsSent {
                reason: PathBReason::DeviceUnavailable,
                sent_at: now,
                due: expires,
            },
        };
        let (next, actions) = step(&flow, &event, now, &Policy::default()).unwrap();
        assert!(matches!(next.state, State::Verified { .. }));
        let Some(Action::Audit(audit)) = actions.last() else {
            panic!("no audit record: {actions:?}");
        };
        assert_eq!(audit.token_id.as_ref(), Some(&bound.token_id));
        for text in [
            serde_json::to_string(&event).unwrap(),
            serde_json::to_string(&actions).unwrap(),
            format!("{event:?}{bound:?}{record:?}{actions:?}"),
        ] {
            assert!(!text.contains(approve), "{text}");
            assert!(!text.contains(random), "{text}");
            assert!(text.contains(&bound.token_id), "{text}");
        }
    }
}
