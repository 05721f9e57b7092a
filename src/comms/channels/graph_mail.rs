//! Mail through Graph `sendMail` as a pool of mailboxes: each message is one MIME
//! `multipart/alternative` message sent as one mailbox of the pool (round robin, skipping a
//! mailbox that already has its 4 requests in flight), so the pool sends `n` times what one
//! mailbox may.
//!
//! Exchange Online accepts about 30 messages a minute per mailbox, and Graph 4 concurrent
//! requests per app and mailbox (<https://learn.microsoft.com/graph/throttling-limits>,
//! Outlook service limits).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use lettre::message::Mailbox;

use super::mime;
use crate::comms::{
    Channel, ChannelError, ChannelErrorKind, ChannelTraits, Limits, Outbound, Receipt,
};
use crate::config::GraphMailSettings;
use crate::directory::{Directory, DirectoryError, DirectoryErrorKind};
use crate::playbook::Channel as Kind;

/// Concurrent requests Graph allows per app and mailbox.
const PER_MAILBOX_CONCURRENCY: usize = 4;

/// One mailbox of the pool.
struct PoolMailbox {
    /// Its address (the `sendMail` path segment and the `From:`).
    from: Mailbox,
    /// Requests in flight as this mailbox.
    in_flight: AtomicUsize,
}

/// Graph `sendMail` (MIME) over a pool of mailboxes.
pub struct GraphMail {
    directory: Arc<dyn Directory>,
    pool: Vec<PoolMailbox>,
    /// Where the next round-robin pick starts.
    next: AtomicUsize,
    per_mailbox_per_minute: f64,
}

impl fmt::Debug for GraphMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphMail")
            .field("mailboxes", &self.pool.len())
            .field("per_mailbox_per_minute", &self.per_mailbox_per_minute)
            .finish()
    }
}

/// Releases a mailbox's in-flight slot when a send ends, however it ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl GraphMail {
    /// The channel for `settings`, sending through `directory` (the tenant's Graph client:
    /// its `Mail` budget and token pool). Fails on a mailbox that is not an address.
    pub fn new(
        settings: &GraphMailSettings,
        directory: Arc<dyn Directory>,
    ) -> Result<Self, String> {
        let pool = settings
            .mailboxes
            .iter()
            .map(|m| {
                m.parse::<lettre::Address>()
                    .map(|a| PoolMailbox {
                        from: Mailbox::new(None, a),
                        in_flight: AtomicUsize::new(0),
                    })
                    .map_err(|_| "channels.email.graph.mailboxes: not a mail address".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if pool.is_empty() {
            return Err("channels.email.graph.mailboxes: no mailbox".into());
        }
        Ok(GraphMail {
            directory,
            pool,
            next: AtomicUsize::new(0),
            per_mailbox_per_minute: settings.per_mailbox_per_minute,
        })
    }

    /// The next mailbox in round-robin order that has a free request slot (or, when all are
    /// busy, the least loaded), with its slot taken.
    fn pick(&self) -> (&PoolMailbox, Slot<'_>) {
        let n = self.pool.len();
        let start = self.next.fetch_add(1, Ordering::AcqRel) % n;
        let order = (0..n).map(|i| &self.pool[(start + i) % n]);
        let chosen = order
            .clone()
            .find(|m| m.in_flight.load(Ordering::Acquire) < PER_MAILBOX_CONCURRENCY)
            .unwrap_or_else(|| {
                order
                    .min_by_key(|m| m.in_flight.load(Ordering::Acquire))
                    .unwrap_or(&self.pool[start])
            });
        chosen.in_flight.fetch_add(1, Ordering::AcqRel);
        (chosen, Slot(&chosen.in_flight))
    }

    async fn send_one(&self, message: &Outbound) -> Result<Receipt, ChannelError> {
        let (mailbox, _slot) = self.pick();
        let mime = mime::build(&mailbox.from, message)?.formatted();
        let sender = mailbox.from.email.to_string();
        self.directory
            .send_mime(&sender, &mime)
            .await
            .map_err(from_directory)?;
        // sendMail answers 202 with no body: there is no message id to keep.
        Ok(Receipt::default())
    }
}

/// A directory failure as the channel's: a mailbox that does not exist is a configuration
/// to fix (denied), like a missing permission.
fn from_directory(e: DirectoryError) -> ChannelError {
    let kind = match e.kind {
        DirectoryErrorKind::Throttled => ChannelErrorKind::Throttled,
        DirectoryErrorKind::OutcomeUnknown => ChannelErrorKind::OutcomeUnknown,
        DirectoryErrorKind::Denied | DirectoryErrorKind::NotFound => ChannelErrorKind::Denied,
        DirectoryErrorKind::Rejected => ChannelErrorKind::Rejected,
        _ => ChannelErrorKind::Unavailable,
    };
    ChannelError {
        kind,
        status: e.detail.status,
        code: e.detail.code.clone(),
        retry_after: None,
        message: e.message,
    }
}

impl Channel for GraphMail {
    fn name(&self) -> &'static str {
        "email/graph"
    }

    fn kind(&self) -> Kind {
        Kind::Email
    }

    fn traits(&self) -> ChannelTraits {
        ChannelTraits {
            in_tenant: true,
            idempotent: false,
            carries_secrets: true,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            per_minute: self.per_mailbox_per_minute * self.pool.len() as f64,
            concurrency: PER_MAILBOX_CONCURRENCY * self.pool.len(),
            recipients_per_request: 1,
        }
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        self.send_one(message).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comms::{Address, Content};
    use crate::directory::memory::{MemoryDirectory, Op};

    fn outbound(i: usize) -> Outbound {
        Outbound {
            key: uuid::Uuid::new_v4(),
            first_sent: jiff::Timestamp::now(),
            to: Address::Email(format!("user{i}@contoso.com")),
            content: Content::Email {
                subject: "Your password was reset".into(),
                html: "<p>Hello</p>".into(),
                text: "Hello".into(),
            },
            carries_secret: false,
        }
    }

    fn pool(directory: Arc<MemoryDirectory>) -> GraphMail {
        GraphMail::new(
            &GraphMailSettings {
                mailboxes: vec!["noreply1@contoso.com".into(), "noreply2@contoso.com".into()],
                per_mailbox_per_minute: 30.0,
            },
            directory,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn messages_are_spread_over_the_mailboxes() {
        let directory = Arc::new(
            MemoryDirectory::new()
                .with_user("noreply1@contoso.com")
                .with_user("noreply2@contoso.com"),
        );
        let channel = pool(directory.clone());
        assert_eq!(channel.limits().per_minute, 60.0);
        assert_eq!(channel.limits().concurrency, 8);
        for i in 0..6 {
            channel.send(&outbound(i)).await.unwrap();
        }
        let sent = directory.sent_mime();
        let by = |m: &str| sent.iter().filter(|(s, _)| s == m).count();
        assert_eq!(by("noreply1@contoso.com"), 3);
        assert_eq!(by("noreply2@contoso.com"), 3);
        // Each is the mailbox's own MIME message to its recipient.
        let (sender, mime) = &sent[0];
        let text = String::from_utf8(mime.clone()).unwrap();
        assert!(text.contains(&format!("From: {sender}")), "{text}");
        assert!(text.contains("To: user0@contoso.com"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
    }

    #[tokio::test]
    async fn a_busy_mailbox_is_skipped() {
        let directory = Arc::new(MemoryDirectory::new());
        let channel = pool(directory);
        let (first, _a) = channel.pick();
        let first = first.from.email.to_string();
        // Fill the other mailbox's four slots: the next picks go to the first.
        let mut held = Vec::new();
        while held.len() < 4 {
            let (m, slot) = channel.pick();
            if m.from.email.to_string() != first {
                held.push(slot);
            }
        }
        for _ in 0..3 {
            let (m, _s) = channel.pick();
            assert_eq!(m.from.email.to_string(), first);
        }
    }

    #[tokio::test]
    async fn directory_failures_keep_their_meaning() {
        let directory = Arc::new(MemoryDirectory::new().with_user("noreply1@contoso.com"));
        let channel = pool(directory.clone());
        directory.fail_next(Op::SendMime, DirectoryErrorKind::Throttled);
        let e = channel.send(&outbound(0)).await.unwrap_err();
        assert_eq!(e.kind, ChannelErrorKind::Throttled);
        directory.lose_next_answer(Op::SendMime);
        let e = channel.send(&outbound(0)).await.unwrap_err();
        assert_eq!(e.kind, ChannelErrorKind::OutcomeUnknown);
        // noreply2 is not a mailbox of the tenant: Graph answers 404, a configuration error.
        let mut kinds = Vec::new();
        for i in 0..2 {
            if let Err(e) = channel.send(&outbound(i)).await {
                kinds.push(e.kind);
            }
        }
        assert_eq!(kinds, vec![ChannelErrorKind::Denied]);
        let mut sms = outbound(0);
        sms.content = Content::Sms { text: "x".into() };
        assert_eq!(
            channel.send(&sms).await.unwrap_err().kind,
            ChannelErrorKind::Rejected
        );
    }
}
