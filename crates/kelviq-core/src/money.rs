//! Money: integer minor units with a currency, never floating point.
//!
//! The wire shows some amounts as decimal numbers in major units (`29.99`);
//! they are parsed from their decimal text into minor units exactly, and
//! refused when they carry more decimals than the currency has. Per-unit
//! usage prices may be finer than one minor unit (`0.001` USD per call), so
//! they are kept as integer *micro*-minor units (10⁻⁶ of a minor unit).

use serde_json::Value;

/// Micro-minor units per minor unit.
pub const MICROS: i128 = 1_000_000;

/// ISO 4217 currencies accepted, with their number of minor-unit digits.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("LKR", 2),
    ("MAD", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// The currency's minor-unit digits, or `None` for an unknown code.
pub fn currency_exponent(code: &str) -> Option<u32> {
    let upper = code.to_ascii_uppercase();
    CURRENCIES.iter().find(|(c, _)| *c == upper).map(|(_, e)| *e)
}

/// Symbols for the common currencies; the code itself otherwise.
pub fn currency_symbol(code: &str) -> String {
    match code.to_ascii_uppercase().as_str() {
        "USD" | "AUD" | "CAD" | "NZD" | "SGD" | "HKD" | "MXN" => "$".into(),
        "EUR" => "€".into(),
        "GBP" => "£".into(),
        "JPY" | "CNY" => "¥".into(),
        "INR" => "₹".into(),
        other => other.to_string(),
    }
}

/// Parses a non-negative decimal text (`"29.99"`, `"1e-3"` is refused) into an
/// integer count of 10⁻`scale` units. Refuses more than `scale` decimals.
fn parse_scaled(text: &str, scale: u32) -> Result<i128, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err("must not be negative".into());
    }
    if text.contains(['e', 'E']) {
        // serde_json prints very small or large numbers in exponent form.
        return parse_exponent(text, scale);
    }
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("\"{text}\" is not a decimal number"));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() as u32 > scale {
        return Err(format!("has more than {scale} decimal places"));
    }
    let whole: i128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| "is too large".to_string())? };
    let mut frac_value: i128 =
        if frac.is_empty() { 0 } else { frac.parse().map_err(|_| "is malformed".to_string())? };
    frac_value *= 10i128.pow(scale - frac.len() as u32);
    let scaled = whole.checked_mul(10i128.pow(scale)).and_then(|w| w.checked_add(frac_value)).ok_or("is too large")?;
    if scaled > i64::MAX as i128 {
        return Err("is too large".into());
    }
    Ok(scaled)
}

fn parse_exponent(text: &str, scale: u32) -> Result<i128, String> {
    let (mantissa, exp) = text.split_once(['e', 'E']).ok_or("is malformed")?;
    let exp: i32 = exp.parse().map_err(|_| format!("\"{text}\" is not a decimal number"))?;
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{frac}");
    let point = whole.len() as i32 + exp;
    let text = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    };
    parse_scaled(&text, scale)
}

/// A JSON number or numeric string in major units → minor units of `currency`.
pub fn to_minor(value: &Value, currency_exp: u32) -> Result<i64, String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err("must be a number".into()),
    };
    parse_scaled(&text, currency_exp).map(|v| v as i64)
}

/// A JSON number or numeric string in major units → micro-minor units (up to
/// six decimals below the minor unit).
pub fn to_micro_minor(value: &Value, currency_exp: u32) -> Result<i64, String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err("must be a number".into()),
    };
    parse_scaled(&text, currency_exp + 6).map(|v| v as i64)
}

/// Minor units → the decimal text of major units (`2999`, 2 → `"29.99"`).
pub fn minor_to_decimal(minor: i64, exp: u32) -> String {
    scaled_to_decimal(minor as i128, exp, exp as usize)
}

/// Micro-minor units → the shortest decimal text of major units.
pub fn micro_minor_to_decimal(micro: i64, exp: u32) -> String {
    scaled_to_decimal(micro as i128, exp + 6, 0)
}

fn scaled_to_decimal(value: i128, scale: u32, min_decimals: usize) -> String {
    let negative = value < 0;
    let v = value.unsigned_abs();
    let div = 10u128.pow(scale);
    let whole = v / div;
    let mut frac = format!("{:0width$}", v % div, width = scale as usize);
    while frac.len() > min_decimals && frac.ends_with('0') {
        frac.pop();
    }
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac}")
    }
}

/// The same amount as a JSON number (for wire fields the API shows as numbers).
pub fn decimal_number(text: &str) -> Value {
    text.parse::<serde_json::Number>().map(Value::Number).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// `decimal_number` for an integer count of minor units.
pub fn minor_number(minor: i64, exp: u32) -> Value {
    decimal_number(&minor_to_decimal(minor, exp))
}

/// One tier of a tiered price: up to `up_to` units (None: no bound), each at
/// `unit` micro-minor units, plus a `flat` fee in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub up_to: Option<u64>,
    pub unit_micro: i64,
    pub flat_minor: i64,
}

/// How usage is priced (spec §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceModel {
    /// `units × rate`.
    Flat { unit_micro: i64 },
    /// `ceil(units / block) × block price`.
    Package { block_size: u64, block_minor: i64 },
    /// Each tier's units at that tier's rate, plus each reached tier's flat fee.
    Graduated(Vec<Tier>),
    /// All units at the rate of the tier the total lands in, plus its flat fee.
    Volume(Vec<Tier>),
    /// The flat fee of the bracket the total lands in.
    StairStep(Vec<Tier>),
}

/// Micro-minor units to minor units, rounding half up (the one rounding step).
fn round_micro(micro: i128) -> i64 {
    ((micro + MICROS / 2).div_euclid(MICROS)) as i64
}

fn tier_for(tiers: &[Tier], units: u64) -> Option<&Tier> {
    tiers.iter().find(|t| t.up_to.is_none_or(|u| units <= u)).or(tiers.last())
}

impl PriceModel {
    /// The price of one unit, for the models that have one.
    pub fn unit_micro(&self) -> Option<i64> {
        match self {
            PriceModel::Flat { unit_micro } => Some(*unit_micro),
            _ => None,
        }
    }

    /// The charge in minor units for `units` of usage in one period.
    pub fn charge(&self, units: u64) -> i64 {
        match self {
            PriceModel::Flat { unit_micro } => round_micro(units as i128 * *unit_micro as i128),
            PriceModel::Package { block_size, block_minor } => {
                (units.div_ceil((*block_size).max(1)) as i128 * *block_minor as i128) as i64
            }
            PriceModel::Graduated(tiers) => {
                let mut micro: i128 = 0;
                let mut flat: i64 = 0;
                let mut lower = 0u64;
                for t in tiers {
                    if units <= lower {
                        break;
                    }
                    let upper = t.up_to.map_or(units, |u| u.min(units));
                    micro += (upper - lower) as i128 * t.unit_micro as i128;
                    flat += t.flat_minor;
                    lower = t.up_to.unwrap_or(u64::MAX);
                }
                round_micro(micro) + flat
            }
            PriceModel::Volume(tiers) => match tier_for(tiers, units) {
                Some(t) if units > 0 => round_micro(units as i128 * t.unit_micro as i128) + t.flat_minor,
                _ => 0,
            },
            PriceModel::StairStep(tiers) => match tier_for(tiers, units) {
                Some(t) => t.flat_minor,
                None => 0,
            },
        }
    }
}

/// One tier's share of a tiered usage line: the units that fell in it, its
/// rate and fee, and its part of the line's amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TierShare {
    pub up_to: Option<u64>,
    pub quantity: u64,
    pub unit_micro: i64,
    pub flat_minor: i64,
    pub amount_minor: i64,
}

/// A usage line priced: its amount in minor units and, for the tiered
/// models, how it breaks down by tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rated {
    pub amount_minor: i64,
    /// Graduated: every tier the units reached, in order (a free one with
    /// 0); their quantities add up to the units and their amounts to
    /// `amount_minor`. Volume and stair-step: the one tier the total lands
    /// in. Flat and package: none.
    pub tiers: Vec<TierShare>,
}

impl PriceModel {
    /// [`PriceModel::charge`] with its breakdown by tier. The line is
    /// rounded once; the rounding is shared out among the graduated tiers by
    /// largest remainder, so the tiers always add up to the line.
    pub fn rate(&self, units: u64) -> Rated {
        let amount_minor = self.charge(units);
        let tiers = match self {
            PriceModel::Flat { .. } | PriceModel::Package { .. } => Vec::new(),
            PriceModel::Graduated(tiers) => graduated_shares(tiers, units, amount_minor),
            PriceModel::Volume(tiers) | PriceModel::StairStep(tiers) => match tier_for(tiers, units) {
                Some(t) if units > 0 => vec![TierShare {
                    up_to: t.up_to,
                    quantity: units,
                    unit_micro: if matches!(self, PriceModel::Volume(_)) { t.unit_micro } else { 0 },
                    flat_minor: t.flat_minor,
                    amount_minor,
                }],
                _ => Vec::new(),
            },
        };
        Rated { amount_minor, tiers }
    }
}

/// The graduated tiers `units` reached, with the line's `amount_minor`
/// shared among them: each gets its flat fee and its units' exact amount
/// rounded down, and the cents the line's one rounding adds go to the tiers
/// with the largest remainders (the earlier on a tie).
fn graduated_shares(tiers: &[Tier], units: u64, amount_minor: i64) -> Vec<TierShare> {
    let mut shares = Vec::new();
    let mut remainders = Vec::new();
    let mut lower = 0u64;
    for t in tiers {
        if units <= lower {
            break;
        }
        let upper = t.up_to.map_or(units, |u| u.min(units));
        let micro = (upper - lower) as i128 * t.unit_micro as i128;
        remainders.push(micro.rem_euclid(MICROS));
        shares.push(TierShare {
            up_to: t.up_to,
            quantity: upper - lower,
            unit_micro: t.unit_micro,
            flat_minor: t.flat_minor,
            amount_minor: micro.div_euclid(MICROS) as i64 + t.flat_minor,
        });
        lower = t.up_to.unwrap_or(u64::MAX);
    }
    let mut left = amount_minor - shares.iter().map(|s| s.amount_minor).sum::<i64>();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|a, b| remainders[*b].cmp(&remainders[*a]).then(a.cmp(b)));
    for i in order.into_iter().cycle().take(shares.len() * 2) {
        if left <= 0 {
            break;
        }
        shares[i].amount_minor += 1;
        left -= 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn decimal_amounts_to_minor_units() {
        assert_eq!(to_minor(&json!(29.99), 2), Ok(2999));
        assert_eq!(to_minor(&json!("29.99"), 2), Ok(2999));
        assert_eq!(to_minor(&json!(49), 2), Ok(4900));
        assert_eq!(to_minor(&json!(0.1), 2), Ok(10));
        assert_eq!(to_minor(&json!(1000), 0), Ok(1000));
        assert!(to_minor(&json!(29.999), 2).is_err());
        assert!(to_minor(&json!(1.5), 0).is_err());
        assert!(to_minor(&json!(-1), 2).is_err());
        assert!(to_minor(&json!("abc"), 2).is_err());
        assert!(to_minor(&json!(true), 2).is_err());
        assert_eq!(to_micro_minor(&json!(0.001), 2), Ok(100_000), "a tenth of a cent");
        assert_eq!(to_micro_minor(&json!(1e-7), 2), Ok(10));
        assert!(to_micro_minor(&json!(1e-9), 2).is_err());
        assert_eq!(minor_to_decimal(2999, 2), "29.99");
        assert_eq!(minor_to_decimal(4900, 2), "49.00");
        assert_eq!(minor_to_decimal(5, 0), "5");
        assert_eq!(micro_minor_to_decimal(100_000, 2), "0.001");
        assert_eq!(minor_number(2999, 2), json!(29.99));
        assert_eq!(currency_exponent("usd"), Some(2));
        assert_eq!(currency_exponent("JPY"), Some(0));
        assert_eq!(currency_exponent("XXX"), None);
    }

    fn tiers() -> Vec<Tier> {
        vec![
            Tier { up_to: Some(1000), unit_micro: 0, flat_minor: 0 },
            Tier { up_to: Some(5000), unit_micro: 100_000, flat_minor: 500 },
            Tier { up_to: None, unit_micro: 50_000, flat_minor: 0 },
        ]
    }

    #[test]
    fn pricing_models() {
        assert_eq!(PriceModel::Flat { unit_micro: 2_000_000 }.charge(10), 20);
        assert_eq!(PriceModel::Flat { unit_micro: 100_000 }.charge(15), 2, "1.5 cents round half up");
        assert_eq!(PriceModel::Package { block_size: 100, block_minor: 500 }.charge(250), 1500);
        assert_eq!(PriceModel::Package { block_size: 100, block_minor: 500 }.charge(0), 0);
        // Graduated: 1000 free, 4000 at 0.1¢ (= 400¢) + 500¢ fee, 1000 at 0.05¢ (= 50¢).
        assert_eq!(PriceModel::Graduated(tiers()).charge(6000), 400 + 500 + 50);
        assert_eq!(PriceModel::Graduated(tiers()).charge(1000), 0);
        // Volume: 6000 all at 0.05¢.
        assert_eq!(PriceModel::Volume(tiers()).charge(6000), 300);
        assert_eq!(PriceModel::Volume(tiers()).charge(2000), 200 + 500);
        assert_eq!(PriceModel::StairStep(tiers()).charge(3000), 500);
        assert_eq!(PriceModel::StairStep(tiers()).charge(10), 0);
    }

    #[test]
    fn tier_breakdowns() {
        // 6000 units: 1000 free, 4000 at 0.1¢ with a 5.00 fee, 1000 at 0.05¢.
        let rated = PriceModel::Graduated(tiers()).rate(6000);
        assert_eq!(rated.amount_minor, 950);
        let shares: Vec<(Option<u64>, u64, i64)> =
            rated.tiers.iter().map(|t| (t.up_to, t.quantity, t.amount_minor)).collect();
        assert_eq!(shares, [(Some(1000), 1000, 0), (Some(5000), 4000, 900), (None, 1000, 50)]);
        // Three tiers at a third of a cent, 1 unit each: the line is 1¢ and one tier carries it.
        let third = Tier { up_to: None, unit_micro: 333_333, flat_minor: 0 };
        let thirds = vec![Tier { up_to: Some(1), ..third }, Tier { up_to: Some(2), ..third }, third];
        let rated = PriceModel::Graduated(thirds).rate(3);
        assert_eq!(rated.amount_minor, 1);
        assert_eq!(rated.tiers.iter().map(|t| t.amount_minor).collect::<Vec<_>>(), [1, 0, 0]);
        let volume = PriceModel::Volume(tiers()).rate(2000);
        assert_eq!(volume.tiers.len(), 1);
        assert_eq!((volume.tiers[0].quantity, volume.tiers[0].amount_minor), (2000, 700));
        assert!(PriceModel::Graduated(tiers()).rate(0).tiers.is_empty());
        assert!(PriceModel::Flat { unit_micro: 1 }.rate(10).tiers.is_empty());
    }

    fn any_tiers() -> impl Strategy<Value = Vec<Tier>> {
        prop::collection::vec((1u64..5_000, 0i64..3_000_000, 0i64..1_000), 1..5).prop_map(|raw| {
            let mut up_to = 0;
            let mut tiers: Vec<Tier> = raw
                .into_iter()
                .map(|(step, unit_micro, flat_minor)| {
                    up_to += step;
                    Tier { up_to: Some(up_to), unit_micro, flat_minor }
                })
                .collect();
            tiers.last_mut().expect("at least one").up_to = None;
            tiers
        })
    }

    proptest! {
        #[test]
        fn graduated_tiers_add_up(tiers in any_tiers(), units in 0u64..30_000) {
            let rated = PriceModel::Graduated(tiers.clone()).rate(units);
            prop_assert_eq!(rated.amount_minor, PriceModel::Graduated(tiers).charge(units));
            prop_assert_eq!(rated.tiers.iter().map(|t| t.quantity).sum::<u64>(), units);
            prop_assert_eq!(rated.tiers.iter().map(|t| t.amount_minor).sum::<i64>(), rated.amount_minor);
            for t in &rated.tiers {
                // Within a cent of its exact amount.
                let exact = t.quantity as i128 * t.unit_micro as i128 + t.flat_minor as i128 * MICROS;
                prop_assert!((t.amount_minor as i128 * MICROS - exact).abs() < MICROS, "{:?}", t);
            }
        }

        #[test]
        fn volume_and_stairs_show_the_tier_they_land_in(tiers in any_tiers(), units in 1u64..30_000) {
            for model in [PriceModel::Volume(tiers.clone()), PriceModel::StairStep(tiers.clone())] {
                let rated = model.rate(units);
                prop_assert_eq!(rated.tiers.len(), 1);
                prop_assert_eq!(rated.tiers[0].quantity, units);
                prop_assert_eq!(rated.tiers[0].amount_minor, rated.amount_minor);
                prop_assert!(rated.tiers[0].up_to.is_none_or(|u| units <= u));
            }
        }

        #[test]
        fn minor_round_trips(minor in 0i64..10_000_000_000, exp in 0u32..4) {
            let text = minor_to_decimal(minor, exp);
            prop_assert_eq!(to_minor(&Value::String(text), exp), Ok(minor));
        }

        #[test]
        fn graduated_never_decreases(a in 0u64..20_000, b in 0u64..20_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let m = PriceModel::Graduated(tiers());
            prop_assert!(m.charge(lo) <= m.charge(hi));
        }

        #[test]
        fn package_is_ceil_of_blocks(units in 0u64..1_000_000, block in 1u64..1000) {
            let m = PriceModel::Package { block_size: block, block_minor: 7 };
            prop_assert_eq!(m.charge(units) as u64, units.div_ceil(block) * 7);
        }
    }
}
