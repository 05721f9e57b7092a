//! Generated passwords: the scramble nobody ever sees and the temporary one a user types.
//!
//! Both come from the operating system's CSPRNG (`rand::rngs::OsRng` through
//! `rand::rng()`, a ChaCha-based generator reseeded from it) and always satisfy Entra ID's
//! complexity rule: 8 to 256 characters with at least three of lower case, upper case,
//! digits and symbols ("Password policies and account restrictions in Microsoft Entra ID").
//! We always include all four, so a stricter on-premises policy is met too.
//! They are returned as [`SecretString`] so they cannot reach a log line by accident.

use rand::Rng;
use rand::seq::SliceRandom;
use secrecy::SecretString;

const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
/// Symbols Entra accepts that survive SMS, Teams and copy-paste unchanged.
const SYMBOLS: &[u8] = b"!#$%&*+-=?@^_~.:";

/// Length of a scramble: far beyond guessing, well under Entra's 256 maximum.
pub const SCRAMBLE_LEN: usize = 40;
/// Length of a temporary password: typed by a person from a message, so shorter, and free
/// of look-alike characters (no l/1/I, o/0/O).
pub const TEMPORARY_LEN: usize = 16;

/// A password nobody learns: the user recovers through SSPR, which re-verifies them.
pub fn scramble() -> SecretString {
    generate(SCRAMBLE_LEN)
}

/// A temporary password to hand to the notify step, and only to it.
pub fn temporary() -> SecretString {
    generate(TEMPORARY_LEN)
}

fn generate(len: usize) -> SecretString {
    let mut rng = rand::rng();
    let classes = [LOWER, UPPER, DIGITS, SYMBOLS];
    let mut chars: Vec<u8> = classes
        .iter()
        .map(|class| class[rng.random_range(0..class.len())])
        .collect();
    let all: Vec<u8> = classes.concat();
    while chars.len() < len {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    // Every byte comes from the ASCII tables above.
    SecretString::from(chars.into_iter().map(char::from).collect::<String>())
}

/// Entra ID's cloud complexity rule: 8–256 characters, three of the four classes.
pub fn meets_entra_complexity(password: &str) -> bool {
    let len = password.chars().count();
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    (8..=256).contains(&len) && classes.iter().filter(|&&c| c).count() >= 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashSet;

    #[test]
    fn every_generated_password_meets_complexity_and_is_unique() {
        let mut seen = HashSet::new();
        for _ in 0..5_000 {
            for secret in [scramble(), temporary()] {
                let password = secret.expose_secret();
                assert!(meets_entra_complexity(password), "{password}");
                assert!(password.bytes().any(|b| LOWER.contains(&b)));
                assert!(password.bytes().any(|b| UPPER.contains(&b)));
                assert!(password.bytes().any(|b| DIGITS.contains(&b)));
                assert!(password.bytes().any(|b| SYMBOLS.contains(&b)));
                assert!(seen.insert(password.to_owned()), "repeated password");
            }
        }
    }

    #[test]
    fn lengths_and_no_look_alikes_in_temporary_passwords() {
        assert_eq!(scramble().expose_secret().len(), SCRAMBLE_LEN);
        let temp = temporary();
        assert_eq!(temp.expose_secret().len(), TEMPORARY_LEN);
        for _ in 0..1_000 {
            let temp = temporary();
            assert!(
                !temp
                    .expose_secret()
                    .contains(['l', '1', 'I', 'o', '0', 'O'])
            );
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let secret = scramble();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(secret.expose_secret()));
    }

    #[test]
    fn complexity_rule() {
        assert!(meets_entra_complexity("Abcdefg1"));
        assert!(meets_entra_complexity("abcdefg1!"));
        assert!(!meets_entra_complexity("abcdefgh1"));
        assert!(!meets_entra_complexity("Ab1!"));
        assert!(!meets_entra_complexity(&"Ab1!".repeat(65)));
    }
}
