//! Resource quantities (`100m`, `1.5Gi`, `2e3`) with Kubernetes' parsing, rounding and
//! canonical form (apimachinery v0.32 `pkg/api/resource`), in exact integer arithmetic.
//!
//! A [`ParsedQuantity`] holds a signed number of nano-units in an `i128`: Kubernetes rounds
//! every quantity up to a whole nano-unit when parsing, so nothing finer is ever needed, and
//! 128 bits cover magnitudes up to about 1.7·10²⁹, far past Kubernetes' own 2⁶³−1 limit on the
//! values it hands to quota and scheduling code. Larger decimal quantities, which Kubernetes
//! keeps in a big decimal, are rejected with [`QuantityError::OutOfRange`].
//!
//! Printing follows Kubernetes' `Quantity.String()`: the canonical form (`1.5Gi` → `1536Mi`,
//! `1000m` → `1`, `0.1` → `100m`), except that a string Kubernetes recognises as already
//! canonical while parsing is echoed exactly as written, quirks included (`+1`, `1.500`, `1E3`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The pattern Kubernetes names in its error for malformed quantities.
pub const QUANTITY_REGEX: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

const NANOS_PER_UNIT: u128 = 1_000_000_000;
/// Kubernetes caps binary-suffixed quantities at 2⁶³−1 units.
const BINARY_CAP_NANOS: u128 = i64::MAX as u128 * NANOS_PER_UNIT;
/// Decimal digits in `u128::MAX`; longer digit strings cannot fit.
const U128_DIGITS: usize = 39;
const DECIMAL_SUFFIXES: [(i32, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];
const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// How a quantity prints; remembered from the suffix it was parsed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Powers of ten as an exponent: `12e6`.
    DecimalExponent,
    /// Powers of 1024: `12Mi`.
    BinarySI,
    /// Powers of 1000: `12M`, `12m`.
    #[default]
    DecimalSI,
}

/// Why a quantity could not be parsed or computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not a number followed by a suffix (Kubernetes' `ErrFormatWrong`).
    #[error("quantities must match the regular expression '{}'", QUANTITY_REGEX)]
    Format,
    /// The suffix is not one Kubernetes knows (Kubernetes' `ErrSuffix`).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value is beyond the ±1.7·10²⁹ this type holds.
    #[error("quantity is out of range: magnitudes above 1.7e29 are not supported")]
    OutOfRange,
}

/// A parsed resource quantity. Equality, ordering and hashing compare values only, as
/// Kubernetes' `Cmp` does: `1Gi == 1024Mi == 1073741824`.
#[derive(Debug, Clone, Default)]
pub struct ParsedQuantity {
    nanos: i128,
    format: Format,
    /// The text as written, when Kubernetes would print it back unchanged.
    text: Option<Box<str>>,
}

impl ParsedQuantity {
    /// Parses a quantity as `resource.ParseQuantity` does. Values are rounded up (away from
    /// zero) to a whole nano-unit, binary values are capped at 2⁶³−1, and a binary value
    /// below one unit takes the decimal format. Surrounding whitespace is an error.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Format);
        }
        let scanned = scan(text)?;
        let (base, exponent, mut format) =
            interpret_suffix(scanned.suffix).ok_or(QuantityError::Suffix)?;
        let magnitude = match base {
            Base::Ten => decimal_nanos(scanned.int, scanned.frac, exponent)?,
            Base::Two => binary_nanos(scanned.int, scanned.frac, exponent)?,
        };
        if format == Format::BinarySI && magnitude > 0 && magnitude < NANOS_PER_UNIT {
            format = Format::DecimalSI;
        }
        let magnitude = i128::try_from(magnitude).map_err(|_| QuantityError::OutOfRange)?;
        let nanos = if scanned.negative {
            -magnitude
        } else {
            magnitude
        };
        let text = is_echoed(&scanned, base, exponent).then(|| Box::from(text));
        Ok(Self {
            nanos,
            format,
            text,
        })
    }

    /// `value` whole units (`resource.NewQuantity`).
    pub fn from_value(value: i64, format: Format) -> Self {
        Self {
            nanos: i128::from(value) * NANOS_PER_UNIT as i128,
            format,
            text: None,
        }
    }

    /// `value` thousandths of a unit (`resource.NewMilliQuantity`), e.g. millicores.
    pub fn from_milli(value: i64, format: Format) -> Self {
        Self {
            nanos: i128::from(value) * 1_000_000,
            format,
            text: None,
        }
    }

    /// The format the quantity prints in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The exact value in nano-units.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in whole units, rounded up (`Value()`): memory in bytes, pods, counts.
    /// Rounding is away from zero, as Kubernetes' integer path does; beyond `i64` it saturates.
    pub fn as_value(&self) -> i64 {
        scaled(self.nanos, NANOS_PER_UNIT as i128)
    }

    /// The value in thousandths, rounded up (`MilliValue()`): CPU in millicores.
    pub fn as_milli(&self) -> i64 {
        scaled(self.nanos, 1_000_000)
    }

    /// `self + other` (`Quantity.Add`); a zero left side takes the right side's format.
    pub fn checked_add(&self, other: &Self) -> Result<Self, QuantityError> {
        self.combine(other, self.nanos.checked_add(other.nanos))
    }

    /// `self - other` (`Quantity.Sub`); a zero left side takes the right side's format.
    pub fn checked_sub(&self, other: &Self) -> Result<Self, QuantityError> {
        self.combine(other, self.nanos.checked_sub(other.nanos))
    }

    fn combine(&self, other: &Self, nanos: Option<i128>) -> Result<Self, QuantityError> {
        // i128::MIN is excluded so that negation can never overflow.
        let nanos = nanos
            .filter(|n| *n != i128::MIN)
            .ok_or(QuantityError::OutOfRange)?;
        let format = if self.is_zero() {
            other.format
        } else {
            self.format
        };
        Ok(Self {
            nanos,
            format,
            text: None,
        })
    }

    /// The canonical form, ignoring how the quantity was written: no fractional digits,
    /// the largest suffix of its format that loses nothing, `-` only when negative.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_owned();
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let binary = self.format == Format::BinarySI
            && magnitude >= 1024 * NANOS_PER_UNIT
            && magnitude.is_multiple_of(NANOS_PER_UNIT);
        if binary {
            let mut units = magnitude / NANOS_PER_UNIT;
            let mut power = 0;
            // Kubernetes has no suffix past Ei; larger values stay in Ei.
            while units.is_multiple_of(1024) && power + 1 < BINARY_SUFFIXES.len() {
                units /= 1024;
                power += 1;
            }
            return format!("{sign}{units}{}", BINARY_SUFFIXES[power]);
        }
        let mut mantissa = magnitude;
        let mut exponent: i32 = -9;
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exponent += 1;
        }
        // Down to a multiple of three: this only puts back zeros just removed.
        while exponent.rem_euclid(3) != 0 {
            mantissa *= 10;
            exponent -= 1;
        }
        if self.format == Format::DecimalExponent {
            return if exponent == 0 {
                format!("{sign}{mantissa}")
            } else {
                format!("{sign}{mantissa}e{exponent}")
            };
        }
        // Kubernetes has no suffix past E; larger values stay in E (the value is below
        // 1.7e29, so this multiplication stays below the original magnitude).
        while exponent > 18 {
            mantissa *= 1000;
            exponent -= 3;
        }
        let suffix = DECIMAL_SUFFIXES
            .iter()
            .find(|(e, _)| *e == exponent)
            .map_or("", |(_, s)| s);
        format!("{sign}{mantissa}{suffix}")
    }
}

/// `nanos / divisor` rounded away from zero, saturated to `i64`.
fn scaled(nanos: i128, divisor: i128) -> i64 {
    let mut quotient = nanos / divisor;
    if nanos % divisor != 0 {
        quotient += nanos.signum();
    }
    i64::try_from(quotient).unwrap_or(if quotient < 0 { i64::MIN } else { i64::MAX })
}

impl fmt::Display for ParsedQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => f.write_str(text),
            None => f.write_str(&self.canonical()),
        }
    }
}

impl FromStr for ParsedQuantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl PartialEq for ParsedQuantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for ParsedQuantity {}

impl PartialOrd for ParsedQuantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ParsedQuantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Hash for ParsedQuantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl std::ops::Neg for ParsedQuantity {
    type Output = Self;

    fn neg(self) -> Self {
        Self {
            nanos: -self.nanos,
            format: self.format,
            text: None,
        }
    }
}

impl TryFrom<&Quantity> for ParsedQuantity {
    type Error = QuantityError;

    /// Parses the string of a `k8s-openapi` quantity, trimming whitespace around it as
    /// Kubernetes' JSON decoding does.
    fn try_from(quantity: &Quantity) -> Result<Self, Self::Error> {
        Self::parse(quantity.0.trim())
    }
}

impl From<&ParsedQuantity> for Quantity {
    fn from(quantity: &ParsedQuantity) -> Self {
        Quantity(quantity.to_string())
    }
}

impl From<ParsedQuantity> for Quantity {
    fn from(quantity: ParsedQuantity) -> Self {
        Quantity::from(&quantity)
    }
}

impl serde::Serialize for ParsedQuantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ParsedQuantity {
    /// Accepts a string (whitespace around it trimmed) or a JSON number, as Kubernetes'
    /// `UnmarshalJSON` does.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = ParsedQuantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity string or number")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ParsedQuantity::parse(v.trim()).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Ten,
    Two,
}

/// The parts of a quantity string, split as Kubernetes' `parseQuantityString` splits them.
#[derive(Debug)]
struct Scanned<'a> {
    negative: bool,
    /// Integer digits without leading zeros; empty means zero.
    int: &'a str,
    /// Fraction digits as written, trailing zeros included.
    frac: &'a str,
    suffix: &'a str,
}

fn scan(text: &str) -> Result<Scanned<'_>, QuantityError> {
    let bytes = text.as_bytes();
    let end = bytes.len();
    let mut pos = 0;
    let mut scanned = Scanned {
        negative: false,
        int: "",
        frac: "",
        suffix: "",
    };
    match bytes.first() {
        Some(b'-') => {
            scanned.negative = true;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && bytes[pos] == b'0' {
        pos += 1;
    }
    let digits_from = |mut pos: usize| {
        while pos < end && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        pos
    };
    let int_end = digits_from(pos);
    scanned.int = &text[pos..int_end];
    pos = int_end;
    if pos < end && bytes[pos] == b'.' {
        let frac_end = digits_from(pos + 1);
        scanned.frac = &text[pos + 1..frac_end];
        pos = frac_end;
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < end && matches!(bytes[pos], b'+' | b'-') {
        pos += 1;
    }
    if digits_from(pos) < end {
        return Err(QuantityError::Format);
    }
    scanned.suffix = &text[suffix_start..];
    Ok(scanned)
}

fn interpret_suffix(suffix: &str) -> Option<(Base, i64, Format)> {
    if let Some((exponent, _)) = DECIMAL_SUFFIXES.iter().find(|(_, s)| *s == suffix) {
        return Some((Base::Ten, i64::from(*exponent), Format::DecimalSI));
    }
    if let Some(power) = BINARY_SUFFIXES[1..].iter().position(|s| *s == suffix) {
        return Some((Base::Two, 10 * (power as i64 + 1), Format::BinarySI));
    }
    let rest = suffix.strip_prefix(['e', 'E'])?;
    let exponent = rest.parse::<i64>().ok()?;
    Some((Base::Ten, exponent, Format::DecimalExponent))
}

/// The digits of `int.frac` without leading zeros, and the power of ten to apply to them
/// once their trailing zeros are dropped too.
fn significant_digits<'a>(int: &str, frac: &str, buffer: &'a mut String) -> (&'a str, i128) {
    buffer.clear();
    buffer.push_str(int);
    buffer.push_str(frac);
    let all = buffer.trim_start_matches('0');
    let trimmed = all.trim_end_matches('0');
    let trailing = all.len() - trimmed.len();
    let power = trailing as i128 - frac.len() as i128;
    (trimmed, power)
}

/// |value| × 10⁹ rounded up, for `digits × 10^exponent`.
fn decimal_nanos(int: &str, frac: &str, exponent: i64) -> Result<u128, QuantityError> {
    let mut buffer = String::new();
    let (digits, power) = significant_digits(int, frac, &mut buffer);
    if digits.is_empty() {
        return Ok(0);
    }
    let power = power + i128::from(exponent) + 9;
    if power >= 0 {
        if digits.len() as i128 + power > U128_DIGITS as i128 {
            return Err(QuantityError::OutOfRange);
        }
        let mantissa: u128 = digits.parse().map_err(|_| QuantityError::OutOfRange)?;
        return 10u128
            .checked_pow(power as u32)
            .and_then(|scale| mantissa.checked_mul(scale))
            .ok_or(QuantityError::OutOfRange);
    }
    // Dropping digits: the last one is non-zero, so the value always rounds up by one.
    let keep = digits.len() as i128 + power;
    if keep <= 0 {
        return Ok(1);
    }
    if keep > U128_DIGITS as i128 {
        return Err(QuantityError::OutOfRange);
    }
    let head: u128 = digits[..keep as usize]
        .parse()
        .map_err(|_| QuantityError::OutOfRange)?;
    head.checked_add(1).ok_or(QuantityError::OutOfRange)
}

/// |value| × 10⁹ rounded up and capped at 2⁶³−1 units, for `int.frac × 2^exponent`.
fn binary_nanos(int: &str, frac: &str, exponent: i64) -> Result<u128, QuantityError> {
    let mut buffer = String::new();
    let (digits, power) = significant_digits(int, frac, &mut buffer);
    if digits.is_empty() {
        return Ok(0);
    }
    // At least 10^(integer digits - 1) units, which past 19 digits exceeds the cap.
    let integer_digits = digits.len() as i128 + power;
    if integer_digits > 19 {
        return Ok(BINARY_CAP_NANOS);
    }
    // Fraction digits past 10 + exponent cannot change the rounded-up result (the product
    // with 2^exponent × 10^9 has no integer strictly inside the truncated interval), as long
    // as a non-zero digit stands in for the dropped ones.
    let mut fraction_digits = -power;
    let max_fraction_digits = 10 + i128::from(exponent);
    let truncated;
    let digits = if fraction_digits > max_fraction_digits {
        let keep = (digits.len() as i128 - (fraction_digits - max_fraction_digits)).max(0) as usize;
        truncated = format!("{}1", &digits[..keep]);
        fraction_digits = max_fraction_digits + 1;
        truncated.as_str()
    } else {
        digits
    };
    let mut value = BigUint::from_decimal(digits);
    for _ in 0..exponent / 10 {
        value.mul_small(1024);
    }
    value.mul_small(NANOS_PER_UNIT as u32);
    let mut inexact = false;
    if fraction_digits < 0 {
        for _ in 0..-fraction_digits {
            value.mul_small(10);
        }
    } else {
        for _ in 0..fraction_digits {
            inexact |= value.div_small(10) != 0;
        }
    }
    let nanos = value
        .to_u128()
        .and_then(|n| n.checked_add(u128::from(inexact)))
        .unwrap_or(u128::MAX);
    Ok(nanos.min(BINARY_CAP_NANOS))
}

/// Whether Kubernetes keeps the text as written: its integer fast path stores the string
/// when it looks canonical, and `String()` / JSON then return it verbatim.
fn is_echoed(scanned: &Scanned<'_>, base: Base, exponent: i64) -> bool {
    let int = if scanned.int.is_empty() {
        "0"
    } else {
        scanned.int
    };
    let frac = scanned.frac;
    match base {
        Base::Ten => {
            let scale = exponent.saturating_sub(frac.len() as i64);
            if int.len() + frac.len() > 18 || scale < -9 {
                return false;
            }
            let shifted = format!("{int}{frac}");
            scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
        }
        Base::Two => {
            let precision = 15 - int.len() as i64 - exponent * 3 / 10 - 1;
            if !frac.is_empty() || precision < 0 {
                return false;
            }
            let Ok(value) = int.parse::<i64>() else {
                return false;
            };
            value.checked_mul(1 << exponent).is_some() && value & 0x07 != 0
        }
    }
}

/// Just enough of an unsigned big integer to scale binary quantities exactly.
struct BigUint {
    /// Little-endian base-2³² limbs.
    limbs: Vec<u32>,
}

impl BigUint {
    fn from_decimal(digits: &str) -> Self {
        let mut value = Self { limbs: Vec::new() };
        for b in digits.bytes() {
            value.mul_small(10);
            value.add_small(u32::from(b - b'0'));
        }
        value
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            self.limbs.push(carry as u32);
        }
    }

    fn add_small(&mut self, addend: u32) {
        let mut carry = u64::from(addend);
        for limb in &mut self.limbs {
            if carry == 0 {
                return;
            }
            let sum = u64::from(*limb) + carry;
            *limb = sum as u32;
            carry = sum >> 32;
        }
        if carry > 0 {
            self.limbs.push(carry as u32);
        }
    }

    /// Divides in place and returns the remainder.
    fn div_small(&mut self, divisor: u32) -> u32 {
        let mut remainder = 0u64;
        for limb in self.limbs.iter_mut().rev() {
            let current = (remainder << 32) | u64::from(*limb);
            *limb = (current / u64::from(divisor)) as u32;
            remainder = current % u64::from(divisor);
        }
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
        remainder as u32
    }

    fn to_u128(&self) -> Option<u128> {
        if self.limbs.len() > 4 {
            return None;
        }
        Some(
            self.limbs
                .iter()
                .rev()
                .fold(0u128, |acc, limb| (acc << 32) | u128::from(*limb)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mantissa × 10^exponent` units in nanos, like Kubernetes' test helper `decQuantity`.
    fn dec(mantissa: i128, exponent: i32) -> i128 {
        let shift = exponent + 9;
        if shift >= 0 {
            mantissa * 10i128.pow(shift as u32)
        } else {
            mantissa / 10i128.pow((-shift) as u32)
        }
    }

    fn q(nanos: i128, format: Format) -> ParsedQuantity {
        ParsedQuantity {
            nanos,
            format,
            text: None,
        }
    }

    use Format::{BinarySI as Bin, DecimalExponent as Exp, DecimalSI as Dec};

    const MAX_ALLOWED: i128 = i64::MAX as i128 * 1_000_000_000;

    // TestQuantityParse in apimachinery's api/resource/quantity_test.go, including its
    // negative and explicit-plus variants.
    #[test]
    fn parse_table() {
        let table: &[(&str, i128, Format)] = &[
            ("0", 0, Dec),
            ("0n", 0, Dec),
            ("0u", 0, Dec),
            ("0m", 0, Dec),
            ("0Ki", 0, Bin),
            ("0k", 0, Dec),
            ("0Mi", 0, Bin),
            ("0M", 0, Dec),
            ("0Gi", 0, Bin),
            ("0G", 0, Dec),
            ("0Ti", 0, Bin),
            ("0T", 0, Dec),
            ("1", dec(1, 0), Dec),
            ("1Ki", dec(1024, 0), Bin),
            ("8Ki", dec(8 * 1024, 0), Bin),
            ("7Mi", dec(7 << 20, 0), Bin),
            ("6Gi", dec(6 << 30, 0), Bin),
            ("5Ti", dec(5 << 40, 0), Bin),
            ("4Pi", dec(4 << 50, 0), Bin),
            ("3Ei", dec(3 << 60, 0), Bin),
            ("10Ti", dec(10 << 40, 0), Bin),
            ("100Ti", dec(100 << 40, 0), Bin),
            ("5n", dec(5, -9), Dec),
            ("4u", dec(4, -6), Dec),
            ("3m", dec(3, -3), Dec),
            ("9", dec(9, 0), Dec),
            ("8k", dec(8, 3), Dec),
            ("50k", dec(5, 4), Dec),
            ("7M", dec(7, 6), Dec),
            ("6G", dec(6, 9), Dec),
            ("5T", dec(5, 12), Dec),
            ("40T", dec(4, 13), Dec),
            ("300T", dec(3, 14), Dec),
            ("2P", dec(2, 15), Dec),
            ("1E", dec(1, 18), Dec),
            ("1E-3", dec(1, -3), Exp),
            ("1e3", dec(1, 3), Exp),
            ("1E6", dec(1, 6), Exp),
            ("1e9", dec(1, 9), Exp),
            ("1E12", dec(1, 12), Exp),
            ("1e15", dec(1, 15), Exp),
            ("1E18", dec(1, 18), Exp),
            ("1e14", dec(1, 14), Exp),
            ("1e13", dec(1, 13), Exp),
            ("100.035k", dec(100035, 0), Dec),
            ("0.001", dec(1, -3), Dec),
            ("0.0005k", dec(5, -1), Dec),
            ("0.005", dec(5, -3), Dec),
            ("0.05", dec(5, -2), Dec),
            ("0.5", dec(5, -1), Dec),
            ("0.00050k", dec(5, -1), Dec),
            ("0.00500", dec(5, -3), Dec),
            ("0.05000", dec(5, -2), Dec),
            ("0.50000", dec(5, -1), Dec),
            ("0.5e0", dec(5, -1), Exp),
            ("0.5e-1", dec(5, -2), Exp),
            ("0.5e-2", dec(5, -3), Exp),
            ("10.035M", dec(10035, 3), Dec),
            ("1.2e3", dec(12, 2), Exp),
            ("1.3E+6", dec(13, 5), Exp),
            ("1.40e9", dec(14, 8), Exp),
            ("1.53E12", dec(153, 10), Exp),
            ("1.6e15", dec(16, 14), Exp),
            ("1.7E18", dec(17, 17), Exp),
            ("9.01", dec(901, -2), Dec),
            ("8.1k", dec(81, 2), Dec),
            ("7.123456M", dec(7123456, 0), Dec),
            ("6.987654321G", dec(6987654321, 0), Dec),
            ("5.444T", dec(5444, 9), Dec),
            ("40.1T", dec(401, 11), Dec),
            ("300.2T", dec(3002, 11), Dec),
            ("2.5P", dec(25, 14), Dec),
            ("1.01E", dec(101, 16), Dec),
            // Things that saturate or round up.
            ("3.001n", dec(4, -9), Dec),
            ("1.1E-9", dec(2, -9), Exp),
            ("0.0000000001", dec(1, -9), Dec),
            ("0.0000000005", dec(1, -9), Dec),
            ("0.00000000050", dec(1, -9), Dec),
            ("0.5e-9", dec(1, -9), Exp),
            ("0.9n", dec(1, -9), Dec),
            ("0.00000012345", dec(124, -9), Dec),
            ("0.00000012354", dec(124, -9), Dec),
            ("9Ei", MAX_ALLOWED, Bin),
            ("9223372036854775807Ki", MAX_ALLOWED, Bin),
            ("12E", dec(12, 18), Dec),
            // Fractional binary values.
            ("100.035Ki", dec(10243584, -2), Bin),
            ("0.5Mi", dec(512 * 1024, 0), Bin),
            ("0.05Gi", dec(536870912, -1), Bin),
            ("0.025Ti", dec(274877906944, -1), Bin),
            // "Things written by trolls".
            ("0.000000000001Ki", dec(2, -9), Dec),
            (".001", dec(1, -3), Dec),
            (".0001k", dec(100, -3), Dec),
            ("1.", dec(1, 0), Dec),
            ("1.G", dec(1, 9), Dec),
        ];
        for (input, nanos, format) in table {
            for (prefix, sign) in [("", 1), ("-", -1), ("+", 1)] {
                let text = format!("{prefix}{input}");
                let got = ParsedQuantity::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(got.as_nanos(), sign * nanos, "{text}");
                assert_eq!(got.format(), *format, "{text}");
            }
        }
    }

    // The invalid list of TestQuantityParse, with the error each one gets.
    #[test]
    fn parse_errors() {
        let cases = [
            ("", QuantityError::Format),
            ("1.1.M", QuantityError::Format),
            ("1+1.0M", QuantityError::Format),
            ("0.1mi", QuantityError::Suffix),
            ("0.1am", QuantityError::Format),
            ("aoeu", QuantityError::Format),
            (".5i", QuantityError::Suffix),
            ("1i", QuantityError::Suffix),
            ("-3.01i", QuantityError::Suffix),
            ("-3.01e-", QuantityError::Suffix),
            (" 1", QuantityError::Format),
            ("1 ", QuantityError::Format),
            ("1e", QuantityError::Suffix),
            ("1kk", QuantityError::Suffix),
            ("1Gib", QuantityError::Format),
            ("1e100", QuantityError::OutOfRange),
            ("200000000000000000000E", QuantityError::OutOfRange),
        ];
        for (input, want) in cases {
            assert_eq!(ParsedQuantity::parse(input), Err(want), "{input:?}");
        }
        assert_eq!(
            QuantityError::Format.to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    // Kubernetes' scanner is looser than its regular expression: a lone sign or dot is zero.
    #[test]
    fn lenient_forms_like_kubernetes() {
        for input in [".", "-.", "+", "-", "00", "-0", "+0"] {
            let got = ParsedQuantity::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert!(got.is_zero(), "{input:?}");
            assert_eq!(got.to_string(), "0", "{input:?}");
        }
    }

    // TestQuantityString: canonical form of values in each format, the alternate spellings
    // that canonicalise to it, and the negated values.
    #[test]
    fn canonical_form_table() {
        let table: &[(i128, Format, &str, &str)] = &[
            (dec(1 << 30, 0), Bin, "1Gi", "1024Mi"),
            (dec(300 << 20, 0), Bin, "300Mi", "307200Ki"),
            (dec(6 * 1024, 0), Bin, "6Ki", ""),
            (dec(1001 << 30, 0), Bin, "1001Gi", "1025024Mi"),
            (dec(1 << 40, 0), Bin, "1Ti", "1024Gi"),
            (dec(5, 0), Bin, "5", "5000m"),
            (dec(500, -3), Bin, "500m", "0.5"),
            (dec(1, 9), Dec, "1G", "1000M"),
            (dec(1000, 6), Dec, "1G", "0.001T"),
            (dec(1000000, 3), Dec, "1G", ""),
            (dec(1000000000, 0), Dec, "1G", ""),
            (dec(1, -3), Dec, "1m", "1000u"),
            (dec(80, -3), Dec, "80m", ""),
            (dec(1080, -3), Dec, "1080m", "1.08"),
            (dec(108, -2), Dec, "1080m", "1080000000n"),
            (dec(10800, -4), Dec, "1080m", ""),
            (dec(300, 6), Dec, "300M", ""),
            (dec(1, 12), Dec, "1T", ""),
            (dec(1234567, 6), Dec, "1234567M", ""),
            (dec(1234567, -3), Bin, "1234567m", ""),
            (dec(3, 3), Dec, "3k", ""),
            (dec(1025, 0), Bin, "1025", ""),
            (0, Dec, "0", ""),
            (0, Bin, "0", ""),
            (dec(1, 9), Exp, "1e9", ".001e12"),
            (dec(1, -3), Exp, "1e-3", "0.001e0"),
            (dec(1, -9), Exp, "1e-9", "1000e-12"),
            (dec(80, -3), Exp, "80e-3", ""),
            (dec(300, 6), Exp, "300e6", ""),
            (dec(1, 12), Exp, "1e12", ""),
            (dec(1, 3), Exp, "1e3", ""),
            (dec(3, 3), Exp, "3e3", ""),
            (0, Exp, "0", "00"),
            (dec(1, -9), Dec, "1n", ""),
            (dec(80, -9), Dec, "80n", ""),
            (dec(1080, -9), Dec, "1080n", ""),
            (dec(1, -6), Dec, "1u", ""),
            (dec(80, -6), Dec, "80u", ""),
            (dec(1080, -6), Dec, "1080u", ""),
        ];
        for (nanos, format, expect, alternate) in table {
            let value = q(*nanos, *format);
            assert_eq!(value.to_string(), *expect, "{nanos} {format:?}");
            let reparsed = ParsedQuantity::parse(expect).unwrap();
            assert_eq!(reparsed, value, "{expect}");
            assert_eq!(reparsed.to_string(), *expect, "{expect}");
            if !alternate.is_empty() {
                let alternate = ParsedQuantity::parse(alternate).unwrap();
                assert_eq!(alternate.to_string(), *expect, "{alternate:?}");
            }
            if *nanos != 0 {
                assert_eq!((-value).to_string(), format!("-{expect}"), "{expect}");
            }
        }
    }

    // TestQuantityParseEmit, plus the brief's examples.
    #[test]
    fn parse_then_print() {
        let cases = [
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("1.5Gi", "1536Mi"),
            ("1000m", "1"),
            ("0.1", "100m"),
            ("1.5", "1500m"),
            ("2e3", "2e3"),
            ("2000", "2k"),
            ("1e1", "10"),
            ("100m", "100m"),
            ("500u", "500u"),
            ("1k", "1k"),
            ("-1", "-1"),
            ("1E", "1E"),
            ("1000E", "1000E"),
            ("2048Ei", "9223372036854775807"),
            ("1.0000000000000000000000000001Ki", "1024000000001n"),
            (
                "0.3333333333333333333333333333333333333333333Ki",
                "341333333334n",
            ),
        ];
        for (input, want) in cases {
            let got = ParsedQuantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "{input}");
            if !got.is_zero() && !input.starts_with('-') {
                let negative = ParsedQuantity::parse(&format!("-{input}")).unwrap();
                assert_eq!(negative.to_string(), format!("-{want}"), "-{input}");
            }
        }
    }

    // ParseQuantity keeps the text of what its fast path deems canonical, and String() /
    // MarshalJSON return it as written; canonical() always recomputes.
    #[test]
    fn echoes_text_kubernetes_keeps() {
        let cases = [
            ("+1", "+1", "1"),
            ("007", "007", "7"),
            ("1.500", "1.500", "1500m"),
            ("1E3", "1E3", "1e3"),
            ("1e+3", "1e+3", "1e3"),
            ("+1Ki", "+1Ki", "1Ki"),
            ("1025Ki", "1025Ki", "1025Ki"),
            ("1.5", "1500m", "1500m"),
            ("1.50", "1500m", "1500m"),
            ("8Ki", "8Ki", "8Ki"),
            ("+8Ki", "8Ki", "8Ki"),
            ("1Pi", "1Pi", "1Pi"),
        ];
        for (input, shown, canonical) in cases {
            let got = ParsedQuantity::parse(input).unwrap();
            assert_eq!(got.to_string(), shown, "{input}");
            assert_eq!(got.canonical(), canonical, "{input}");
        }
    }

    // TestQuantityCmp and TestQuantityCmpInt64AndDec.
    #[test]
    fn ordering() {
        let cases = [
            ("0", "0", Ordering::Equal),
            ("100m", "50m", Ordering::Greater),
            ("50m", "100m", Ordering::Less),
            ("10000T", "100Gi", Ordering::Greater),
            ("9.01", "9.01", Ordering::Equal),
            ("9.0", "9.01", Ordering::Less),
            ("800m", "1", Ordering::Less),
            ("800m", "0.79", Ordering::Greater),
            ("1Gi", "1073741824", Ordering::Equal),
            ("1Gi", "1024Mi", Ordering::Equal),
            ("-1", "0", Ordering::Less),
            ("1e1", "10", Ordering::Equal),
        ];
        for (a, b, want) in cases {
            let (a, b) = (
                ParsedQuantity::parse(a).unwrap(),
                ParsedQuantity::parse(b).unwrap(),
            );
            assert_eq!(a.cmp(&b), want, "{a} vs {b}");
            assert_eq!(b.cmp(&a), want.reverse(), "{b} vs {a}");
        }
    }

    // TestQuantityAddZeroPreservesSuffix / TestQuantitySubZeroPreservesSuffix, and sums.
    #[test]
    fn arithmetic() {
        let zero = ParsedQuantity::parse("0").unwrap();
        for text in ["100m", "1Gi"] {
            let value = ParsedQuantity::parse(text).unwrap();
            assert_eq!(value.checked_add(&zero).unwrap().to_string(), text);
            assert_eq!(zero.checked_add(&value).unwrap().to_string(), text);
            assert_eq!(value.checked_sub(&zero).unwrap().to_string(), text);
            assert_eq!(
                zero.checked_sub(&value).unwrap().to_string(),
                (-value.clone()).to_string()
            );
        }
        let cases = [
            ("1", "500m", "1500m", "500m"),
            ("1Gi", "512Mi", "1536Mi", "512Mi"),
            ("100m", "100m", "200m", "0"),
            ("1k", "1", "1001", "999"),
            ("1e3", "1e3", "2e3", "0"),
        ];
        for (a, b, sum, difference) in cases {
            let (a, b) = (
                ParsedQuantity::parse(a).unwrap(),
                ParsedQuantity::parse(b).unwrap(),
            );
            assert_eq!(a.checked_add(&b).unwrap().to_string(), sum, "{a} + {b}");
            assert_eq!(
                a.checked_sub(&b).unwrap().to_string(),
                difference,
                "{a} - {b}"
            );
        }
        let huge = q(i128::MAX, Dec);
        assert_eq!(huge.checked_add(&q(1, Dec)), Err(QuantityError::OutOfRange));
        assert_eq!(
            (-huge).checked_sub(&q(1, Dec)),
            Err(QuantityError::OutOfRange)
        );
    }

    // TestMilliNewSet and TestNewSet.
    #[test]
    fn constructors() {
        let milli = [
            (1, Dec, "1m"),
            (1000, Dec, "1"),
            (1234000, Dec, "1234"),
            (1024, Bin, "1024m"),
            (1000000, Exp, "1e3"),
            (1024 * 1024, Bin, "1048576m"),
        ];
        for (value, format, want) in milli {
            let quantity = ParsedQuantity::from_milli(value, format);
            assert_eq!(quantity.to_string(), want, "{value}m {format:?}");
            assert_eq!(
                ParsedQuantity::parse(want).unwrap().as_milli(),
                value,
                "{want}"
            );
        }
        let whole = [
            (1, Dec, "1"),
            (1000, Dec, "1k"),
            (1234000, Dec, "1234k"),
            (1024, Bin, "1Ki"),
            (1000000, Exp, "1e6"),
            (1024 * 1024, Bin, "1Mi"),
        ];
        for (value, format, want) in whole {
            assert_eq!(
                ParsedQuantity::from_value(value, format).to_string(),
                want,
                "{value} {format:?}"
            );
        }
    }

    // Value() / MilliValue() round up like ScaledValue (TestScaledValue), saturating.
    #[test]
    fn scaled_values() {
        let cases = [
            ("1n", 1, 1),
            ("1u", 1, 1),
            ("1m", 1, 1),
            ("1", 1, 1000),
            ("100m", 1, 100),
            ("1500m", 2, 1500),
            ("0.1m", 1, 1),
            ("1Gi", 1 << 30, 1000 << 30),
            ("0", 0, 0),
            ("-1500m", -2, -1500),
            ("-0.1m", -1, -1),
            ("9Ei", i64::MAX, i64::MAX),
            ("100000E", i64::MAX, i64::MAX),
            ("-100000E", i64::MIN, i64::MIN),
        ];
        for (text, value, milli) in cases {
            let quantity = ParsedQuantity::parse(text).unwrap();
            assert_eq!(quantity.as_value(), value, "{text} value");
            assert_eq!(quantity.as_milli(), milli, "{text} milli");
        }
    }

    // TestJSONWhitespace, and k8s-openapi interop.
    #[test]
    fn serde_and_k8s_openapi() {
        let cases = [
            (r#"" 1""#, "1"),
            (r#""1 ""#, "1"),
            ("1", "1"),
            (" 1", "1"),
            ("1 ", "1"),
            ("10", "10"),
            ("-1", "-1"),
            (" -1", "-1"),
            ("1.5", "1500m"),
            (r#""1.5Gi""#, "1536Mi"),
        ];
        for (json, want) in cases {
            let parsed: ParsedQuantity =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(parsed.to_string(), want, "{json}");
            assert_eq!(
                serde_json::to_string(&parsed).unwrap(),
                format!("\"{want}\"")
            );
        }
        assert!(serde_json::from_str::<ParsedQuantity>(r#""1x""#).is_err());

        let openapi = Quantity(" 250m ".to_owned());
        let parsed = ParsedQuantity::try_from(&openapi).unwrap();
        assert_eq!(parsed.as_milli(), 250);
        assert_eq!(Quantity::from(&parsed), Quantity("250m".to_owned()));
        assert_eq!(
            Quantity::from(ParsedQuantity::parse("2048Mi").unwrap()),
            Quantity("2Gi".to_owned())
        );
        assert_eq!(
            ParsedQuantity::try_from(&Quantity("lots".to_owned())),
            Err(QuantityError::Format)
        );
    }

    #[test]
    fn big_uint_arithmetic() {
        let mut value = BigUint::from_decimal("340282366920938463463374607431768211455");
        assert_eq!(value.to_u128(), Some(u128::MAX));
        value.mul_small(10);
        assert_eq!(value.to_u128(), None);
        assert_eq!(value.div_small(10), 0);
        assert_eq!(value.to_u128(), Some(u128::MAX));
        assert_eq!(value.div_small(1_000_000_000), 768_211_455);
    }
}
