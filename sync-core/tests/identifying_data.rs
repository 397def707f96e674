//! The anonymity check of canvass texts (`identifying_data`) against the ways people write
//! phone and ID numbers: separators of every kind, irregular spacing, invisible characters,
//! full-width digits; and against the figures it must leave alone: amounts, dates, times.

use gridsync_core::schema::{ProblemCode, Registry, Schema};
use proptest::prelude::*;
use serde_json::json;

fn canvass() -> Schema {
    Registry::builtin()
        .latest("satisfaction_canvass")
        .cloned()
        .expect("built-in canvass kind")
}

/// What the check says of `text` as a canvass worry: the problem's message, or `None`.
fn flagged(schema: &Schema, text: &str) -> Option<String> {
    let problems = schema.validate_field("worries_text", &json!(text));
    assert!(
        problems
            .iter()
            .all(|p| p.code == ProblemCode::IdentifyingData),
        "{text:?}: {problems:?}"
    );
    problems.first().map(|p| p.message.clone())
}

#[test]
fn phone_numbers_are_found_however_they_are_spelled() {
    let s = canvass();
    for text in [
        "138.0013.8000",
        "138/0013/8000",
        "138_0013_8000",
        "138·0013·8000",
        "1380 0138 000",
        "13 800 138 000",
        "138  0013   8000",
        "138\t0013\n8000",
        "138\u{200B}0013\u{200B}8000",
        "1\u{200B}3\u{200C}8\u{200D}0\u{2060}0\u{FEFF}1\u{00AD}3800 0",
        "138 \u{200B} 0013 8000",
        "１３８．００１３．８０００",
        "１３８　００１３　８０００",
        "138－0013－8000",
        "138—0013—8000",
        "电话:138.0013.8000,晚上打",
        "+86 138.0013.8000",
        "86-138-0013-8000",
        "𝟏𝟑𝟖𝟎𝟎𝟏𝟑𝟖𝟎𝟎𝟎",
    ] {
        let message = flagged(&s, text).unwrap_or_else(|| panic!("{text:?} was not flagged"));
        assert!(message.contains("phone"), "{text:?}: {message}");
        assert!(!message.contains("8000"), "the message repeats the number");
    }
}

#[test]
fn id_numbers_are_found_however_they_are_spelled() {
    let s = canvass();
    for text in [
        "110105.19491231.002X",
        "110105/19491231/002x",
        "110105_19491231_0021",
        "110105 1949 1231 0021",
        "1101 0519 4912 3100 21",
        "110105\u{200B}19491231\u{200B}002X",
        "１１０１０５－１９４９１２３１－００２Ｘ",
        "身份证 110105.19491231.002ｘ 住三组",
    ] {
        let message = flagged(&s, text).unwrap_or_else(|| panic!("{text:?} was not flagged"));
        assert!(message.contains("ID number"), "{text:?}: {message}");
    }
}

#[test]
fn amounts_dates_times_and_counts_are_not_flagged() {
    let s = canvass();
    for text in [
        "被骗了1,380.00元",
        "138,001,380.00元",
        "共 1,380.00 元，另 13.80 元",
        "2024.01.15",
        "2024-01-15 13:30",
        "2024/01/15 至 2024/02/01",
        "2013.10.01-2014.03.15",
        "1985.06.12-1990.03.01",
        "2024.01.15 2024.02.01 10",
        "20240115 20240201 10",
        "13:30-14:00 停电",
        "第 1 3 5 题说不清",
        "门牌 3-12-2，路灯坏了 2 个月",
        "12345678901",
        "123.4567.8901",
        "订单号 1380013800012345",
        "110 来了 4 次",
        "1101051949123100211",
    ] {
        assert_eq!(flagged(&s, text), None, "{text:?} was flagged");
    }
}

/// Characters people (or keyboards) put between digits: visible separators and invisible ones.
const GAPS: [char; 16] = [
    ' ', '\u{3000}', '\u{00A0}', '-', '－', '.', '．', '/', '_', '·', '\u{200B}', '\u{200C}',
    '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00AD}',
];

/// A gap between two digits: nothing, or up to three visible separators mixed with invisible
/// characters.
fn gap() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(GAPS.to_vec()), 0..=5).prop_map(|chars| {
        let mut visible = 0;
        chars
            .into_iter()
            .filter(|c| {
                let invisible = !c.is_whitespace() && !"-－.．/_·".contains(*c);
                visible += usize::from(!invisible);
                invisible || visible <= 3
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn any_separators_between_the_digits_of_a_mobile_number_still_flag_it(
        second in 3u8..=9,
        rest in proptest::collection::vec(0u8..=9, 9),
        gaps in proptest::collection::vec(gap(), 10),
        full_width in proptest::collection::vec(any::<bool>(), 11),
        before in "[a-w\u{4e00}-\u{4e20}]{0,4}",
        after in "[a-w\u{4e00}-\u{4e20}]{0,4}",
    ) {
        let digits: Vec<u8> = [1, second].into_iter().chain(rest).collect();
        let mut text = before.clone();
        for (i, d) in digits.iter().enumerate() {
            let ascii = char::from(b'0' + d);
            let shown = if full_width[i] {
                char::from_u32(u32::from(ascii) - u32::from('0') + u32::from('０')).unwrap()
            } else {
                ascii
            };
            text.push(shown);
            if let Some(g) = gaps.get(i) {
                text.push_str(g);
            }
        }
        text.push_str(&after);
        let message = flagged(&canvass(), &text);
        prop_assert!(
            message.as_deref().is_some_and(|m| m.contains("phone")),
            "{:?} was not flagged: {:?}", text, message
        );
    }
}
