//! Communications: what a run tells people, rendered from templates and sent over the
//! channels the organisation configured.
//!
//! - [`channel`]: the [`Channel`] seam every sender implements (Graph mail, SMTP, Twilio,
//!   ACS SMS, Teams Workflows, a generic webhook), with its own error and limits.
//! - [`message`]: one outbound message: its address, its rendered content and the key that
//!   makes a re-send recognisable.
//! - [`channels`]: the senders, built from the `channels:` configuration into a
//!   [`channels::ChannelSet`].
//! - [`pace`]: what wraps every channel the same way: rate, concurrency, retries.
//!
//! Recipients come from the directory only (the user's `mail` and `mobilePhone`, the
//! manager's); nothing a requester types becomes an address.

pub mod card;
pub mod channel;
pub mod channels;
pub mod context;
pub mod delivery;
pub mod message;
pub mod notifier;
pub mod pace;
pub mod recipient;
pub mod sms_text;
pub mod template;

pub use channel::{Channel, ChannelError, ChannelErrorKind, ChannelTraits, Limits, Receipt};
pub use message::{Address, Content, Outbound};
