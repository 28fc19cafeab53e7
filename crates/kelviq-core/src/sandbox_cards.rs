//! The sandbox payment provider's cards: how a test card behaves.
//!
//! `4242 4242 4242 4242` always pays; `4000 0000 0000 0002` is declined;
//! `4000 0000 0000 0341` can be saved but every later charge fails (for
//! renewal failures). Other well-formed numbers are refused: the sandbox
//! never accepts what might be a real card.

/// What the sandbox does with a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    /// Saves and pays.
    Pays,
    /// Declined when first charged.
    Declined,
    /// Saves and pays the first charge, then every later charge fails.
    FailsLater,
}

/// A test card, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCard {
    pub behaviour: CardBehaviour,
    pub brand: &'static str,
    pub last4: String,
}

/// Why a card number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("Your card number is incomplete or invalid.")]
    Invalid,
    #[error("This is the sandbox: use a test card such as 4242 4242 4242 4242.")]
    NotATestCard,
}

/// The Luhn checksum every card number carries.
pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else { return false };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

pub fn brand(digits: &str) -> &'static str {
    match digits.as_bytes() {
        [b'4', ..] => "visa",
        [b'5', b'1'..=b'5', ..] => "mastercard",
        [b'3', b'4' | b'7', ..] => "amex",
        _ => "unknown",
    }
}

/// Reads a card number as typed (spaces and dashes allowed).
pub fn sandbox_card(number: &str) -> Result<SandboxCard, CardError> {
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !(12..=19).contains(&digits.len()) || !luhn_ok(&digits) {
        return Err(CardError::Invalid);
    }
    let behaviour = match digits.as_str() {
        "4242424242424242" => CardBehaviour::Pays,
        "4000000000000002" => CardBehaviour::Declined,
        "4000000000000341" => CardBehaviour::FailsLater,
        _ => return Err(CardError::NotATestCard),
    };
    Ok(SandboxCard { behaviour, brand: brand(&digits), last4: digits[digits.len() - 4..].to_string() })
}

/// Whether the `nth` charge (0 = the first) on a saved card goes through.
pub fn charge_succeeds(card: CardBehaviour, nth: u32) -> bool {
    match card {
        CardBehaviour::Pays => true,
        CardBehaviour::Declined => false,
        CardBehaviour::FailsLater => nth == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards() {
        let ok = sandbox_card("4242 4242 4242 4242").unwrap();
        assert_eq!((ok.behaviour, ok.brand, ok.last4.as_str()), (CardBehaviour::Pays, "visa", "4242"));
        assert_eq!(sandbox_card("4000-0000-0000-0002").unwrap().behaviour, CardBehaviour::Declined);
        let later = sandbox_card("4000000000000341").unwrap();
        assert!(charge_succeeds(later.behaviour, 0) && !charge_succeeds(later.behaviour, 1));
        assert!(!charge_succeeds(CardBehaviour::Declined, 0));
        assert_eq!(sandbox_card("4242 4242 4242 4241"), Err(CardError::Invalid), "bad checksum");
        assert_eq!(sandbox_card("42"), Err(CardError::Invalid));
        assert_eq!(sandbox_card("abcd"), Err(CardError::Invalid));
        assert_eq!(
            sandbox_card("5555 5555 5555 4444"),
            Err(CardError::NotATestCard),
            "a valid number that is not a test card"
        );
        assert_eq!(brand("5555555555554444"), "mastercard");
        assert_eq!(brand("378282246310005"), "amex");
    }
}
