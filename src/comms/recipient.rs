//! Who a message reaches, from the directory only: the user's `mail` and `mobilePhone`, or
//! the manager's. Nothing a requester typed becomes an address, so an attacker who talks a
//! help desk into a reset cannot also choose where the secret goes.
//!
//! Mobile numbers are normalised to E.164 with libphonenumber's metadata (the `phonenumber`
//! crate): a national number is read in the user's `usageLocation` (or the organisation's
//! default region). A number that does not parse, or is not a mobile number, is not guessed
//! at: the notice becomes a manual check for that user.

use phonenumber::{Mode, PhoneNumber, Type, country};

use super::context::Person;
use crate::directory::{Manager, User};

/// A person a message can reach, with the addresses the directory holds.
#[derive(Debug, Clone)]
pub struct Contact {
    /// How messages name the person.
    pub person: Person,
    /// `mail`, when set.
    pub mail: Option<String>,
    /// `mobilePhone` in E.164; `Err` says why the directory's value cannot be used.
    pub mobile: Option<Result<String, String>>,
    /// `preferredLanguage`.
    pub language: Option<String>,
}

impl Contact {
    /// The contact of a user, reading a national mobile number in `region` (the user's
    /// `usageLocation` comes first).
    pub fn of_user(user: &User, region: Option<&str>) -> Contact {
        let region = user.usage_location.as_deref().or(region);
        Contact {
            person: Person {
                display_name: user
                    .display_name
                    .clone()
                    .unwrap_or_else(|| user.upn.clone()),
                given_name: user.given_name.clone(),
                upn: user.upn.clone(),
            },
            mail: user.mail.clone().filter(|m| !m.trim().is_empty()),
            mobile: user
                .mobile_phone
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .map(|m| e164(m, region)),
            language: user.preferred_language.clone(),
        }
    }

    /// The contact of a manager (a user or an organisational contact).
    pub fn of_manager(manager: &Manager, region: Option<&str>) -> Contact {
        let upn = manager
            .upn
            .clone()
            .or_else(|| manager.mail.clone())
            .unwrap_or_else(|| manager.id.clone());
        Contact {
            person: Person {
                display_name: manager.display_name.clone().unwrap_or_else(|| upn.clone()),
                given_name: manager.given_name.clone(),
                upn,
            },
            mail: manager.mail.clone().filter(|m| !m.trim().is_empty()),
            mobile: manager
                .mobile_phone
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .map(|m| e164(m, region)),
            language: manager.preferred_language.clone(),
        }
    }
}

/// Whether a text message can be addressed to `raw` (read in `region` when national): what
/// a playbook's `has_mobile` means. Numbers already written in international form are
/// checked by their shape alone (planning reads every target, and most directories hold
/// E.164); the rest go through [`e164`].
pub fn textable(raw: &str, region: Option<&str>) -> bool {
    let raw = raw.trim();
    if raw.is_empty() {
        return false;
    }
    if let Some(rest) = raw.strip_prefix('+') {
        let mut digits = 0usize;
        for c in rest.chars() {
            match c {
                '0'..='9' => digits += 1,
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return e164(raw, region).is_ok(),
            }
        }
        return (7..=15).contains(&digits) && !rest.trim_start().starts_with('0');
    }
    e164(raw, region).is_ok()
}

/// `raw` as an E.164 mobile number (`+14255550100`), reading a national number in `region`
/// (ISO 3166 alpha-2). The error says, without repeating the whole number, why not.
pub fn e164(raw: &str, region: Option<&str>) -> Result<String, String> {
    let region = region.and_then(|r| r.trim().to_ascii_uppercase().parse::<country::Id>().ok());
    let shown = super::message::Address::Phone(raw.trim().to_owned()).masked();
    // A number written with its country code is read without a region: the crate reads
    // `+49 1512 3456789` in region US as +49 512 3456789 (it strips the US national prefix
    // after the country code), which would text a stranger.
    let international = raw.trim_start().starts_with('+');
    let number: PhoneNumber = phonenumber::parse(
        if international { None } else { region },
        raw.trim(),
    )
    .map_err(|_| {
        if region.is_none() && !raw.trim_start().starts_with('+') {
            format!(
                "mobile number {shown} has no country code and the user has no usageLocation \
                 to read it in"
            )
        } else {
            format!("mobile number {shown} does not parse as a phone number")
        }
    })?;
    // Not `is_valid`: it checks the number against today's allocation plans, which would
    // turn a number the metadata does not know yet (or one reserved for fiction, as test
    // tenants use) into a manual check. The provider refuses an unallocated number itself.
    let digits = number
        .format()
        .mode(Mode::E164)
        .to_string()
        .len()
        .saturating_sub(1);
    if !(7..=15).contains(&digits) {
        return Err(format!(
            "mobile number {shown} has {digits} digits; an international number has 7 to 15"
        ));
    }
    // Only types that certainly cannot take a text message are refused: the metadata does
    // not always tell a mobile range from a fixed one, and a false refusal costs a manual check.
    match number.number_type(&phonenumber::metadata::DATABASE) {
        other @ (Type::TollFree
        | Type::PremiumRate
        | Type::SharedCost
        | Type::Voicemail
        | Type::Uan) => Err(format!(
            "mobile number {shown} is not a mobile number ({other:?}); a text message would \
             not arrive"
        )),
        _ => Ok(number.format().mode(Mode::E164).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_and_international_numbers_become_e164() {
        assert_eq!(
            e164("+1 (425) 555-0100", None).as_deref(),
            Ok("+14255550100")
        );
        assert_eq!(
            e164("(425) 555-0100", Some("US")).as_deref(),
            Ok("+14255550100")
        );
        assert_eq!(
            e164("0151 2345 6789", Some("de")).as_deref(),
            Ok("+4915123456789")
        );
        assert_eq!(
            e164("+49 151 23456789", Some("US")).as_deref(),
            Ok("+4915123456789")
        );
        assert_eq!(
            e164("+49 1512 3456789", Some("US")).as_deref(),
            Ok("+4915123456789")
        );
        assert_eq!(
            e164("07911 123456", Some("GB")).as_deref(),
            Ok("+447911123456")
        );
    }

    #[test]
    fn textable_is_what_has_mobile_means() {
        assert!(textable("+1 425 555 0100", None));
        assert!(textable("(425) 555-0100", Some("US")));
        assert!(!textable("(425) 555-0100", None));
        assert!(!textable("n/a", Some("US")));
        assert!(!textable("ext 4411", Some("US")));
        assert!(!textable("+12", None));
        assert!(!textable("  ", Some("US")));
    }

    #[test]
    fn unusable_numbers_are_explained_not_guessed() {
        let err = e164("n/a", Some("US")).unwrap_err();
        assert!(err.contains("does not parse"), "{err}");
        let err = e164("425 555 0100", None).unwrap_err();
        assert!(err.contains("no country code"), "{err}");
        // A toll-free number cannot take a text message.
        let err = e164("+49 800 1234567", None).unwrap_err();
        assert!(err.contains("not a mobile number"), "{err}");
        assert!(!err.contains("1234567"), "the number is masked: {err}");
    }
}
