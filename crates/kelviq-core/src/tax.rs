//! Tax: an environment's rates by country (and region), which one a
//! billing address gets, and the tax of one line, exclusive or inclusive,
//! rounded once per line, half away from zero, in minor units.

use serde_json::Value;

/// Percentages are kept in ten-thousandths of a percent: 8.875 % is 88,750.
pub const PERCENT_SCALE: i64 = 10_000;
/// 100 % in that scale.
pub const HUNDRED_PERCENT: i64 = 100 * PERCENT_SCALE;

/// A tax rate of an environment: `percentage` (in [`PERCENT_SCALE`]) for a
/// country, or one region of it (`region` empty: the whole country).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRate {
    pub id: uuid::Uuid,
    pub name: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// A region code (e.g. `CA`, `BY`), upper case; empty for the whole country.
    pub region: String,
    pub percentage: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub modified_at: chrono::DateTime<chrono::Utc>,
}

/// How a price relates to its tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxBehavior {
    /// Tax is added on top of the price.
    Exclusive,
    /// The price includes its tax.
    Inclusive,
}

/// A line with its tax: `net + tax == gross`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTax {
    pub net_minor: i64,
    pub tax_minor: i64,
    pub gross_minor: i64,
}

/// `n / d` rounded half away from zero (`d > 0`).
fn div_round(n: i128, d: i128) -> i128 {
    let half = d / 2;
    if n >= 0 {
        (n + half) / d
    } else {
        -((-n + half) / d)
    }
}

/// The tax of a line of `amount_minor` at `percentage`: on top of it
/// (exclusive), or taken out of it (inclusive: the net is rounded, the tax
/// is what is left, so the line's amount never changes).
pub fn line_tax(amount_minor: i64, percentage: i64, behavior: TaxBehavior) -> LineTax {
    let (amount, pct, hundred) = (amount_minor as i128, percentage as i128, HUNDRED_PERCENT as i128);
    match behavior {
        TaxBehavior::Exclusive => {
            let tax = div_round(amount * pct, hundred) as i64;
            LineTax { net_minor: amount_minor, tax_minor: tax, gross_minor: amount_minor + tax }
        }
        TaxBehavior::Inclusive => {
            let net = div_round(amount * hundred, hundred + pct) as i64;
            LineTax { net_minor: net, tax_minor: amount_minor - net, gross_minor: amount_minor }
        }
    }
}

/// The rate for a billing address: its region's when there is one, else
/// its country's.
pub fn rate_for<'a>(rates: &'a [TaxRate], country: &str, region: Option<&str>) -> Option<&'a TaxRate> {
    let country = country.trim().to_ascii_uppercase();
    let region = region.map(|r| r.trim().to_ascii_uppercase()).filter(|r| !r.is_empty());
    let in_country = || rates.iter().filter(|r| r.country == country);
    region
        .and_then(|region| in_country().find(|r| r.region == region))
        .or_else(|| in_country().find(|r| r.region.is_empty()))
}

/// A percentage from JSON (a number or a decimal string, 0 to 100, at most
/// four decimals) in [`PERCENT_SCALE`].
pub fn parse_percentage(v: &Value) -> Result<i64, String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err("A number between 0 and 100 is required.".into()),
    };
    let bad = || "A number between 0 and 100 with at most four decimals is required.".to_string();
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty()
        || whole.len() > 3
        || frac.len() > 4
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<4}").parse().map_err(|_| bad())?;
    let value = whole * PERCENT_SCALE + frac;
    if value > HUNDRED_PERCENT {
        return Err(bad());
    }
    Ok(value)
}

/// A percentage in [`PERCENT_SCALE`] as a JSON number (`8.875`).
pub fn percentage_number(value: i64) -> Value {
    crate::money::decimal_number(&format!("{}.{:04}", value / PERCENT_SCALE, value % PERCENT_SCALE))
}

/// An ISO 3166-1 alpha-2 code's shape: two ASCII letters.
pub fn country_code(text: &str) -> Option<String> {
    let t = text.trim();
    (t.len() == 2 && t.bytes().all(|b| b.is_ascii_alphabetic())).then(|| t.to_ascii_uppercase())
}

/// A region code's shape: 1 to 3 ASCII letters or digits (ISO 3166-2's part after the dash).
pub fn region_code(text: &str) -> Option<String> {
    let t = text.trim();
    ((1..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| t.to_ascii_uppercase())
}

/// A percentage as text, without trailing zeros (`19`, `7.25`).
pub fn percentage_text(value: i64) -> String {
    let text = crate::money::minor_to_decimal(value, 4);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl TaxBehavior {
    /// A price's `taxBehavior`: EXCLUSIVE or INCLUSIVE; `None` for
    /// UNSPECIFIED (or absent), which takes the environment's default.
    pub fn of_price(text: Option<&str>) -> Option<TaxBehavior> {
        match text {
            Some("EXCLUSIVE") => Some(TaxBehavior::Exclusive),
            Some("INCLUSIVE") => Some(TaxBehavior::Inclusive),
            _ => None,
        }
    }

    pub fn parse(text: &str) -> Option<TaxBehavior> {
        TaxBehavior::of_price(Some(text.trim().to_ascii_uppercase().as_str()))
    }
}

/// The lines tax is charged on: what is sold (and discounted), not the
/// customer's balance applied, nor tax itself.
fn taxable(kind: crate::billing::LineKind) -> bool {
    use crate::billing::LineKind::*;
    matches!(kind, Base | Quantity | Usage | LateUsage | Proration | Discount)
}

/// Taxes an invoice's lines at `rate`: each taxable line's tax rounded on
/// its own; exclusive tax is added on top, inclusive tax is taken out of
/// the lines (they show their net). One TAX line carries the sum. Returns
/// how much the invoice's total grows (the exclusive tax; 0 when inclusive).
pub fn tax_lines(lines: &mut Vec<crate::billing::Line>, rate: &TaxRate, behavior: TaxBehavior) -> i64 {
    let mut tax = 0;
    for l in lines.iter_mut().filter(|l| taxable(l.kind)) {
        let t = line_tax(l.amount_minor, rate.percentage, behavior);
        l.amount_minor = t.net_minor;
        tax += t.tax_minor;
    }
    let name = format!("{} ({}%)", rate.name, percentage_text(rate.percentage));
    lines.push(crate::billing::Line::of_kind(crate::billing::LineKind::Tax, name, tax));
    match behavior {
        TaxBehavior::Exclusive => tax,
        TaxBehavior::Inclusive => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn rate(country: &str, region: &str, percentage: i64) -> TaxRate {
        let now = chrono::DateTime::UNIX_EPOCH;
        TaxRate {
            id: uuid::Uuid::new_v4(),
            name: format!("{country}{region}"),
            country: country.into(),
            region: region.into(),
            percentage,
            created_at: now,
            modified_at: now,
        }
    }

    #[test]
    fn lines() {
        // 20 % on top of 10.00: 2.00.
        assert_eq!(
            line_tax(1000, 200_000, TaxBehavior::Exclusive),
            LineTax { net_minor: 1000, tax_minor: 200, gross_minor: 1200 }
        );
        // 20 % inside 12.00: 10.00 and 2.00.
        assert_eq!(
            line_tax(1200, 200_000, TaxBehavior::Inclusive),
            LineTax { net_minor: 1000, tax_minor: 200, gross_minor: 1200 }
        );
        // 8.875 % of 9.99 = 0.8866…: 0.89.
        assert_eq!(line_tax(999, 88_750, TaxBehavior::Exclusive).tax_minor, 89);
        // 19 % inside 9.99: net 8.3950… → 8.39, tax 1.60.
        assert_eq!(line_tax(999, 190_000, TaxBehavior::Inclusive).tax_minor, 160);
        // Half away from zero: 5 % of 0.10 = 0.005 → 0.01; a credit of 0.10 → −0.01.
        assert_eq!(line_tax(10, 50_000, TaxBehavior::Exclusive).tax_minor, 1);
        assert_eq!(line_tax(-10, 50_000, TaxBehavior::Exclusive).tax_minor, -1);
        assert_eq!(line_tax(1000, 0, TaxBehavior::Inclusive).tax_minor, 0);
    }

    #[test]
    fn region_before_country() {
        let rates = [rate("US", "", 0), rate("US", "CA", 72_500), rate("DE", "", 190_000)];
        assert_eq!(rate_for(&rates, "us", Some("ca")).map(|r| r.percentage), Some(72_500));
        assert_eq!(rate_for(&rates, "US", Some("NY")).map(|r| r.percentage), Some(0));
        assert_eq!(rate_for(&rates, "DE", None).map(|r| r.percentage), Some(190_000));
        assert_eq!(rate_for(&rates, "FR", None), None);
        assert_eq!(rate_for(&[rate("US", "CA", 1)], "US", None), None, "a region's rate is not the country's");
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percentage(&json!(20)), Ok(200_000));
        assert_eq!(parse_percentage(&json!(8.875)), Ok(88_750));
        assert_eq!(parse_percentage(&json!("7.25")), Ok(72_500));
        assert_eq!(parse_percentage(&json!(100)), Ok(HUNDRED_PERCENT));
        assert_eq!(parse_percentage(&json!(0)), Ok(0));
        for bad in [json!(100.01), json!(-1), json!(1.00001), json!("abc"), json!(null), json!(true), json!("1e2")] {
            assert!(parse_percentage(&bad).is_err(), "{bad}");
        }
        assert_eq!(percentage_number(88_750), json!(8.875));
        assert_eq!(percentage_number(200_000), json!(20.0));
        assert_eq!(country_code(" de "), Some("DE".into()));
        assert_eq!(country_code("DEU"), None);
        assert_eq!(region_code("by"), Some("BY".into()));
        assert_eq!(region_code("CA-ON"), None);
    }

    proptest! {
        #[test]
        fn a_line_adds_up(amount in -10_000_000i64..10_000_000, pct in 0i64..=HUNDRED_PERCENT) {
            for behavior in [TaxBehavior::Exclusive, TaxBehavior::Inclusive] {
                let t = line_tax(amount, pct, behavior);
                prop_assert_eq!(t.net_minor + t.tax_minor, t.gross_minor);
                prop_assert!(t.tax_minor.signum() * amount.signum() >= 0, "tax has the line's sign: {:?}", t);
            }
        }

        #[test]
        fn exclusive_is_within_half_a_unit(amount in 0i64..10_000_000, pct in 0i64..=HUNDRED_PERCENT) {
            let t = line_tax(amount, pct, TaxBehavior::Exclusive);
            let exact = amount as i128 * pct as i128;
            prop_assert!((t.tax_minor as i128 * HUNDRED_PERCENT as i128 - exact).abs() * 2 <= HUNDRED_PERCENT as i128);
        }

        #[test]
        fn inclusive_inverts_exclusive(net in 0i64..10_000_000, pct in 0i64..=HUNDRED_PERCENT) {
            // Tax put on a net and taken out again gives the net back, within a unit.
            let gross = line_tax(net, pct, TaxBehavior::Exclusive).gross_minor;
            let back = line_tax(gross, pct, TaxBehavior::Inclusive);
            prop_assert!((back.net_minor - net).abs() <= 1, "{} → {} → {:?}", net, gross, back);
        }
    }

    proptest::proptest! {
        /// Exclusive tax adds exactly the TAX line; inclusive tax leaves the
        /// total as it was; either way each line is taxed on its own.
        #[test]
        fn taxed_lines_add_up(amounts in proptest::collection::vec(-100_000i64..1_000_000, 1..8), pct in 0i64..=HUNDRED_PERCENT, inclusive in proptest::bool::ANY) {
            use crate::billing::{Line, LineKind};
            let rate = TaxRate { id: uuid::Uuid::nil(), name: "VAT".into(), country: "DE".into(), region: String::new(),
                percentage: pct, created_at: chrono::Utc::now(), modified_at: chrono::Utc::now() };
            let behavior = if inclusive { TaxBehavior::Inclusive } else { TaxBehavior::Exclusive };
            let mut lines: Vec<Line> = amounts.iter().map(|a| Line::of_kind(LineKind::Usage, "x", *a)).collect();
            lines.push(Line::of_kind(LineKind::Credit, "credit", -50));
            let before: i64 = lines.iter().map(|l| l.amount_minor).sum();
            let added = tax_lines(&mut lines, &rate, behavior);
            let after: i64 = lines.iter().map(|l| l.amount_minor).sum();
            proptest::prop_assert_eq!(after, before + added);
            let tax = lines.last().unwrap().amount_minor;
            let expected: i64 = amounts.iter().map(|a| line_tax(*a, pct, behavior).tax_minor).sum();
            proptest::prop_assert_eq!(tax, expected);
            proptest::prop_assert_eq!(added, if inclusive { 0 } else { tax });
        }
    }
}
