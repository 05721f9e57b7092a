//! The one mail every mail channel sends: a MIME `multipart/alternative` message (plain text,
//! then HTML, both UTF-8) built with lettre, whose `Message-ID` and `X-Resetctl-Key` come from
//! the outbound key so a copy can be matched to its delivery record.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use crate::comms::{Address, ChannelError, ChannelErrorKind, Content, Outbound};

/// The header that carries [`Outbound::key`].
pub const KEY_HEADER: &str = "X-Resetctl-Key";

/// Builds the message from `from` to the outbound's mail address. Content that is not mail,
/// or an address that is not a mailbox, is [`ChannelErrorKind::Rejected`] (it would be
/// refused again).
pub(crate) fn build(from: &Mailbox, message: &Outbound) -> Result<Message, ChannelError> {
    let Address::Email(to) = &message.to else {
        return Err(ChannelError::new(
            ChannelErrorKind::Rejected,
            format!("a mail channel cannot send to {}", message.to.masked()),
        ));
    };
    let Content::Email {
        subject,
        html,
        text,
    } = &message.content
    else {
        return Err(ChannelError::new(
            ChannelErrorKind::Rejected,
            "a mail channel sends mail content only",
        ));
    };
    let to: lettre::Address = to.parse().map_err(|_| {
        ChannelError::new(
            ChannelErrorKind::Rejected,
            format!("{} is not a mail address", message.to.masked()),
        )
    })?;
    // RFC 5322 §3.6.4: `<id-left@id-right>`; the sender's domain makes it globally unique
    // together with the key.
    let message_id = format!("<{}@{}>", message.key, from.email.domain());
    let key = HeaderName::new_from_ascii_str(KEY_HEADER);
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(subject.clone())
        .message_id(Some(message_id))
        .date_now()
        .raw_header(HeaderValue::new(key, message.key.to_string()))
        .multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        ))
        .map_err(|e| {
            ChannelError::new(
                ChannelErrorKind::Rejected,
                format!("cannot build the message: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn outbound(to: &str) -> Outbound {
        Outbound {
            key: uuid::Uuid::parse_str("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap(),
            first_sent: jiff::Timestamp::now(),
            to: Address::Email(to.into()),
            content: Content::Email {
                subject: "Votre mot de passe a été réinitialisé".into(),
                html: "<p>Bonjour Zoë 王</p>".into(),
                text: "Bonjour Zoë 王".into(),
            },
            carries_secret: false,
        }
    }

    #[test]
    fn one_alternative_message_with_the_key_in_its_headers() {
        let from: Mailbox = "Contoso Security <security@contoso.com>".parse().unwrap();
        let bytes = build(&from, &outbound("zoe@contoso.com"))
            .unwrap()
            .formatted();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.is_ascii(), "encoded for any relay");
        assert!(
            text.contains("Content-Type: multipart/alternative"),
            "{text}"
        );
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8"),
            "{text}"
        );
        assert!(
            text.contains("Content-Type: text/html; charset=utf-8"),
            "{text}"
        );
        assert!(
            text.contains("Message-ID: <0f8fad5b-d9cb-469f-a165-70867728950e@contoso.com>"),
            "{text}"
        );
        assert!(
            text.contains("X-Resetctl-Key: 0f8fad5b-d9cb-469f-a165-70867728950e"),
            "{text}"
        );
        assert!(text.contains("To: zoe@contoso.com"), "{text}");
        assert!(text.contains("Date: "), "{text}");
    }

    #[test]
    fn wrong_content_or_address_is_rejected() {
        let from: Mailbox = "security@contoso.com".parse().unwrap();
        let mut sms = outbound("zoe@contoso.com");
        sms.content = Content::Sms { text: "x".into() };
        assert_eq!(
            build(&from, &sms).unwrap_err().kind,
            ChannelErrorKind::Rejected
        );
        let bad = outbound("not an address");
        assert_eq!(
            build(&from, &bad).unwrap_err().kind,
            ChannelErrorKind::Rejected
        );
        let mut phone = outbound("zoe@contoso.com");
        phone.to = Address::Phone("+14155550100".into());
        assert_eq!(
            build(&from, &phone).unwrap_err().kind,
            ChannelErrorKind::Rejected
        );
    }
}
