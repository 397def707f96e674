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

/// Visible characters people put between the groups of a number they write down: spaces of any
/// width, hyphens and dashes, dots, slashes, underscores and middle dots, ASCII or full-width.
/// Not commas or colons, which write amounts (1,380.00) and times (13:30).
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '‐'
                | '‑'
                | '‒'
                | '–'
                | '—'
                | '−'
                | '－'
                | '.'
                | '．'
                | '/'
                | '／'
                | '_'
                | '＿'
                | '·'
                | '・'
                | '•'
        )
}

/// Invisible characters (zero-width spaces and joiners, direction marks, the byte-order mark,
/// the soft hyphen): they change nothing on screen, so the scan reads through them.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

/// At most this many separators between two groups of one number: "138  0013   8000" is one
/// number, a column of figures spaced further apart is not.
const MAX_GAP: usize = 3;

/// What the scan sees of a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Digit(u8),
    /// The check character of a resident ID number: `X` or `x`, ASCII or full-width.
    X,
    Separator,
    Other,
}

/// The text as tokens: invisible characters left out, digits and `X` of any width mapped to
/// their ASCII meaning.
fn tokens(text: &str) -> Vec<Token> {
    text.chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| match c {
            'X' | 'x' | 'Ｘ' | 'ｘ' => Token::X,
            c if is_separator(c) => Token::Separator,
            c => digit(c).map_or(Token::Other, Token::Digit),
        })
        .collect()
}

/// A maximal run of digits, and whether an `X` check character directly follows it.
struct Run {
    digits: Vec<u8>,
    check_x: bool,
}

/// Finds a resident ID number (17 digits and a check digit or `X`) or a mainland mobile number
/// (11 digits, `1[3-9]…`, optionally after `86`) standing alone in `text`.
///
/// People write numbers the way they read them out, and the scan reads them the same way:
/// digits of any width (１３８… from a Chinese keyboard), groups split by separators however
/// irregular (138.0013.8000, 1380 0138 000, 110105/19491231/002X), invisible characters
/// anywhere. Runs of digits joined by short gaps of separators form a chain; a number is found
/// when consecutive whole runs of a chain spell it. A number inside a longer run of digits is
/// not one of these, and neither are amounts (`,` is no separator) or times (nor is `:`).
/// An ID number split into groups must also carry a real birth date, so that a few dates or
/// figures in a row are not read as one.
pub(super) fn find_identifier(text: &str) -> Option<Identifier> {
    let tokens = tokens(text);
    let mut chain: Vec<Run> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let Token::Digit(first) = tokens[i] else {
            i += 1;
            continue;
        };
        let mut run = Run {
            digits: vec![first],
            check_x: false,
        };
        i += 1;
        while let Some(Token::Digit(d)) = tokens.get(i) {
            run.digits.push(*d);
            i += 1;
        }
        if tokens.get(i) == Some(&Token::X) {
            run.check_x = true;
            i += 1;
        }
        let ends_chain = run.check_x;
        chain.push(run);
        let gap = tokens[i..]
            .iter()
            .take_while(|t| **t == Token::Separator)
            .count();
        let continues = !ends_chain
            && (1..=MAX_GAP).contains(&gap)
            && matches!(tokens.get(i + gap), Some(Token::Digit(_)));
        if continues {
            i += gap;
        } else {
            if let Some(found) = identifier_in_chain(&chain) {
                return Some(found);
            }
            chain.clear();
        }
    }
    None
}

/// An identifier spelled by consecutive whole runs of `chain`.
fn identifier_in_chain(chain: &[Run]) -> Option<Identifier> {
    for start in 0..chain.len() {
        let mut digits: Vec<u8> = Vec::new();
        for (end, run) in chain.iter().enumerate().skip(start) {
            digits.extend_from_slice(&run.digits);
            if digits.len() > 18 {
                break;
            }
            let split = end > start;
            if is_resident_id(&digits, run.check_x, split) {
                return Some(Identifier::ResidentId);
            }
            let national = match digits.as_slice() {
                [8, 6, rest @ ..] if rest.len() == 11 => rest,
                all => all,
            };
            if !run.check_x && national.len() == 11 && is_mobile_prefix(national) {
                return Some(Identifier::MobileNumber);
            }
        }
    }
    None
}

/// 18 digits, or 17 and the check `X`; written in groups (`split`), digits 7 to 14 must be a
/// birth date from 1900 on.
fn is_resident_id(digits: &[u8], check_x: bool, split: bool) -> bool {
    let length = (digits.len() == 18 && !check_x) || (digits.len() == 17 && check_x);
    length && (!split || is_birth_date(&digits[6..14]))
}

fn is_birth_date(d: &[u8]) -> bool {
    let value = |digits: &[u8]| digits.iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d));
    let (year, month, day) = (value(&d[..4]), value(&d[4..6]), value(&d[6..8]));
    (1900..=2099).contains(&year)
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
}

fn is_mobile_prefix(digits: &[u8]) -> bool {
    matches!(digits, [1, 3..=9, ..])
}

/// The value of a decimal digit: ASCII, full-width (０–９), or one of the mathematical
/// alphanumeric digits (𝟎–𝟿, five styles of ten) that font-changing keyboards produce.
fn digit(c: char) -> Option<u8> {
    let c = u32::from(c);
    let value = match c {
        0x30..=0x39 => c - 0x30,
        0xFF10..=0xFF19 => c - 0xFF10,
        0x1D7CE..=0x1D7FF => (c - 0x1D7CE) % 10,
        _ => return None,
    };
    u8::try_from(value).ok()
}
