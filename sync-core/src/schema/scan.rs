//! Hand-written recognisers for field values: calendar dates, RFC 3339 timestamps, and the
//! resident ID numbers and mobile numbers that must never enter an anonymous report.
//!
//! Hand-written because sync-core ships inside the phone library, where every dependency costs
//! size, and because these formats are small and fixed.

/// Whether `s` is a real calendar date written `YYYY-MM-DD` (years 0001 to 9999).
pub(super) fn is_date(s: &str) -> bool {
    let [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] = *s.as_bytes() else {
        return false;
    };
    let (Some(year), Some(month), Some(day)) = (
        number(&[y1, y2, y3, y4]),
        number(&[m1, m2]),
        number(&[d1, d2]),
    ) else {
        return false;
    };
    year >= 1 && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)
}

/// Whether `s` is an RFC 3339 timestamp `YYYY-MM-DDTHH:MM:SS`, optionally with 1 to 9 digits of
/// fractional seconds, ending in `Z` or a `+HH:MM` / `-HH:MM` offset.
///
/// Only the canonical upper-case `T` and `Z` are accepted, and no leap second, so that every
/// timestamp that passes here also sorts and parses the same way everywhere else.
pub(super) fn is_datetime(s: &str) -> bool {
    let Some((date, rest)) = s.split_at_checked(10) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let [b'T', h1, h2, b':', m1, m2, b':', s1, s2, ref rest @ ..] = *rest.as_bytes() else {
        return false;
    };
    if !is_time(&[h1, h2], &[m1, m2]) || number(&[s1, s2]).is_none_or(|sec| sec > 59) {
        return false;
    }
    let rest = match rest {
        [b'.', fraction @ ..] => {
            let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if !(1..=9).contains(&digits) {
                return false;
            }
            &fraction[digits..]
        }
        _ => rest,
    };
    match *rest {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => is_time(&[h1, h2], &[m1, m2]),
        _ => false,
    }
}

fn is_time(hour: &[u8], minute: &[u8]) -> bool {
    number(hour).is_some_and(|h| h <= 23) && number(minute).is_some_and(|m| m <= 59)
}

fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Personal identifiers that would make an anonymous respondent identifiable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Identifier {
    ResidentId,
    MobileNumber,
}

impl Identifier {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Identifier::ResidentId => "a resident ID number",
            Identifier::MobileNumber => "a mobile phone number",
        }
    }
}

/// A maximal run of digits, and whether an `X` check character directly follows it.
struct Run {
    digits: Vec<u8>,
    check_x: bool,
}

/// Finds a resident ID number (17 digits and a check digit or `X`) or a mainland mobile number
/// (11 digits, `1[3-9]…`, optionally after `86`) standing alone in `text`.
///
/// A number inside a longer run of digits is not one of these, but people write numbers the way
/// they read them out: full-width digits from a Chinese keyboard (１３８…), and groups split by
/// spaces or hyphens (138 0013 8000, 110105-19491231-002X). Both are recognised.
pub(super) fn find_identifier(text: &str) -> Option<Identifier> {
    let chars: Vec<char> = text.chars().collect();
    let mut chain: Vec<Run> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let Some(first) = chars.get(i).copied().and_then(digit) else {
            i += 1;
            continue;
        };
        let mut run = Run {
            digits: vec![first],
            check_x: false,
        };
        i += 1;
        while let Some(d) = chars.get(i).copied().and_then(digit) {
            run.digits.push(d);
            i += 1;
        }
        if chars
            .get(i)
            .is_some_and(|c| matches!(c, 'X' | 'x' | 'Ｘ' | 'ｘ'))
        {
            run.check_x = true;
            i += 1;
        }
        let ends_chain = run.check_x;
        chain.push(run);
        let continues = !ends_chain
            && chars.get(i).copied().is_some_and(is_separator)
            && chars.get(i + 1).copied().and_then(digit).is_some();
        if continues {
            i += 1;
        } else {
            if let Some(found) = identifier_in_chain(&chain) {
                return Some(found);
            }
            chain.clear();
        }
    }
    None
}

fn identifier_in_chain(chain: &[Run]) -> Option<Identifier> {
    for run in chain {
        let d = run.digits.as_slice();
        if is_resident_id(d.len(), run.check_x) {
            return Some(Identifier::ResidentId);
        }
        let national = d.strip_prefix(&[8, 6]).unwrap_or(d);
        if !run.check_x && national.len() == 11 && is_mobile_prefix(national) {
            return Some(Identifier::MobileNumber);
        }
    }
    for window in chain.windows(3) {
        let [a, b, c] = window else { continue };
        let lengths = [a.digits.len(), b.digits.len(), c.digits.len()];
        // 138 0013 8000
        if lengths == [3, 4, 4] && !c.check_x && is_mobile_prefix(&a.digits) {
            return Some(Identifier::MobileNumber);
        }
        // 110105 19491231 0021: region, birth date, sequence and check digit
        if lengths[..2] == [6, 8] && is_resident_id(6 + 8 + lengths[2], c.check_x) {
            return Some(Identifier::ResidentId);
        }
    }
    None
}

fn is_resident_id(digits: usize, check_x: bool) -> bool {
    (digits == 18 && !check_x) || (digits == 17 && check_x)
}

fn is_mobile_prefix(digits: &[u8]) -> bool {
    matches!(digits, [1, 3..=9, ..])
}

/// The value of an ASCII or full-width decimal digit.
fn digit(c: char) -> Option<u8> {
    let offset = if c.is_ascii_digit() {
        u32::from(c) - u32::from('0')
    } else {
        u32::from(c).checked_sub(u32::from('０'))?
    };
    u8::try_from(offset).ok().filter(|d| *d <= 9)
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '\u{3000}' | '－')
}
