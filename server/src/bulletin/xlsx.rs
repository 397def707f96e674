//! A bulletin as a workbook: one sheet per section, Chinese headers, numbers as numbers so that
//! an office can sort and chart them, and "<5" where the small-cell rule withholds a count.

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::{Bulletin, BulletinState, Ranking};
use crate::stats::{DrugUnit, Estimate};

/// What a withheld drug-control count reads as.
const WITHHELD: &str = "<5";

/// The workbook of `bulletin`.
pub fn workbook(b: &Bulletin) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    book.push_worksheet(summary(b)?);
    for ranking in &b.rankings {
        book.push_worksheet(ranking_sheet(ranking)?);
    }
    book.push_worksheet(disputes(b)?);
    book.push_worksheet(tasks(b)?);
    book.push_worksheet(drug(b)?);
    book.push_worksheet(worries(b)?);
    book.save_to_buffer()
}

/// A sheet with its header row in bold, frozen.
fn sheet(name: &str, header: &[&str]) -> Result<Worksheet, XlsxError> {
    let mut sheet = Worksheet::new();
    sheet.set_name(name)?;
    let bold = Format::new().set_bold();
    for (col, h) in (0u16..).zip(header) {
        sheet.write_string_with_format(0, col, *h, &bold)?;
        sheet.set_column_width(col, 12)?;
    }
    sheet.set_column_width(1, 20)?;
    sheet.set_freeze_panes(1, 0)?;
    Ok(sheet)
}

fn opt_number(s: &mut Worksheet, row: u32, col: u16, v: Option<f64>) -> Result<(), XlsxError> {
    if let Some(v) = v {
        s.write_number(row, col, v)?;
    }
    Ok(())
}

fn yes(s: &mut Worksheet, row: u32, col: u16, v: bool) -> Result<(), XlsxError> {
    if v {
        s.write_string(row, col, "是")?;
    }
    Ok(())
}

fn summary(b: &Bulletin) -> Result<Worksheet, XlsxError> {
    let mut s = sheet("概况", &["项目", "内容"])?;
    let state = match b.state {
        BulletinState::Draft => "草稿（未发布，数字随上报变化）".to_owned(),
        BulletinState::Published => "已发布".to_owned(),
    };
    let rule = |r: super::GroupRule| {
        let advanced = r
            .advanced_within
            .map_or("不限".to_owned(), |a| format!("前 {a} 名"));
        format!("末 {} 名黄牌警告；可评先进：{advanced}", r.yellow_cards)
    };
    let rows: Vec<(&str, String)> = vec![
        ("单位", b.org_name.clone()),
        ("期间", b.period.clone()),
        ("起止", format!("{} 至 {}", b.from, b.to)),
        (
            "对比期",
            format!(
                "{}（{} 至 {}）",
                b.previous_period, b.previous.from, b.previous.to
            ),
        ),
        ("状态", state),
        (
            "版次",
            b.revision.map(|r| r.to_string()).unwrap_or_default(),
        ),
        ("发布人", b.published_by.clone().unwrap_or_default()),
        (
            "发布时间",
            b.published_at
                .map(gridsync_core::time::rfc3339)
                .unwrap_or_default(),
        ),
        ("重发原因", b.reason.clone().unwrap_or_default()),
        ("数据截至", gridsync_core::time::rfc3339(b.computed_at)),
        ("乡镇排名规则", rule(b.rules.rural)),
        ("街道排名规则", rule(b.rules.urban)),
        (
            "样本不足",
            format!("访问少于 {} 户的单位不排名", b.min_interviews),
        ),
    ];
    for (row, (label, value)) in (1u32..).zip(rows) {
        s.write_string(row, 0, label)?;
        s.write_string(row, 1, value)?;
    }
    s.set_column_width(1, 48)?;
    Ok(s)
}

fn ranking_sheet(r: &Ranking) -> Result<Worksheet, XlsxError> {
    let name = match r.group.as_str() {
        "township" => "乡镇排名",
        "street" => "街道排名",
        _ => "村社区排名",
    };
    let mut s = sheet(
        name,
        &[
            "排名",
            "单位",
            "访问数",
            "满意度(%)",
            "下限(%)",
            "上限(%)",
            "安全感(%)",
            "上期满意度(%)",
            "满意度变化",
            "安全感变化",
            "样本不足",
            "黄牌警告",
            "不得评先",
        ],
    )?;
    for (row, ranked) in (1u32..).zip(&r.units) {
        let u = &ranked.unit;
        opt_number(&mut s, row, 0, u.rank.map(f64::from))?;
        s.write_string(row, 1, &u.name)?;
        s.write_number(row, 2, u.interviews as f64)?;
        let sat = u.satisfaction;
        opt_number(&mut s, row, 3, sat.map(|e: Estimate| e.index))?;
        opt_number(&mut s, row, 4, sat.map(|e| e.low))?;
        opt_number(&mut s, row, 5, sat.map(|e| e.high))?;
        opt_number(&mut s, row, 6, u.safety.map(|e| e.index))?;
        opt_number(&mut s, row, 7, u.previous.satisfaction.map(|e| e.index))?;
        let change = u.change.as_ref();
        opt_number(&mut s, row, 8, change.and_then(|c| c.satisfaction))?;
        opt_number(&mut s, row, 9, change.and_then(|c| c.safety))?;
        yes(&mut s, row, 10, u.few_interviews)?;
        yes(&mut s, row, 11, ranked.yellow_card)?;
        yes(&mut s, row, 12, ranked.advanced_barred)?;
    }
    Ok(s)
}

fn disputes(b: &Bulletin) -> Result<Worksheet, XlsxError> {
    let mut s = sheet(
        "矛盾纠纷",
        &[
            "单位",
            "排查发现",
            "未化解",
            "村内化解率",
            "化解天数中位数",
            "逾期回访",
            "上期排查发现",
            "上期村内化解率",
        ],
    )?;
    s.set_column_width(0, 20)?;
    let now = b.disputes.units.iter().chain([&b.disputes.total]);
    let before = b
        .disputes_previous
        .units
        .iter()
        .chain([&b.disputes_previous.total]);
    for ((row, u), p) in (1u32..).zip(now).zip(before) {
        let name = if std::ptr::eq(u, &b.disputes.total) {
            format!("{}（合计）", u.name)
        } else {
            u.name.clone()
        };
        s.write_string(row, 0, name)?;
        s.write_number(row, 1, u.found as f64)?;
        s.write_number(row, 2, u.open as f64)?;
        opt_number(&mut s, row, 3, u.resolved_in_village.map(|r| r.share))?;
        opt_number(&mut s, row, 4, u.median_days_to_resolution)?;
        s.write_number(row, 5, u.overdue_follow_ups as f64)?;
        s.write_number(row, 6, p.found as f64)?;
        opt_number(&mut s, row, 7, p.resolved_in_village.map(|r| r.share))?;
    }
    Ok(s)
}

fn tasks(b: &Bulletin) -> Result<Worksheet, XlsxError> {
    let mut s = sheet("任务完成", &["单位", "到期任务", "已完成", "完成率"])?;
    s.set_column_width(0, 20)?;
    let last = b.tasks.len().saturating_sub(1);
    for (i, (row, u)) in (1u32..).zip(&b.tasks).enumerate() {
        let name = if i == last {
            format!("{}（合计）", u.name)
        } else {
            u.name.clone()
        };
        s.write_string(row, 0, name)?;
        s.write_number(row, 1, u.due as f64)?;
        s.write_number(row, 2, u.done as f64)?;
        opt_number(&mut s, row, 3, u.share)?;
    }
    Ok(s)
}

fn drug(b: &Bulletin) -> Result<Worksheet, XlsxError> {
    let mut s = sheet("禁毒", &["单位", "在册", "复吸", "走访逾期", "检测到期"])?;
    s.set_column_width(0, 20)?;
    let count = |s: &mut Worksheet, row, col, v: Option<i64>| match v {
        Some(n) => s.write_number(row, col, n as f64).map(|_| ()),
        None => s.write_string(row, col, WITHHELD).map(|_| ()),
    };
    let units = b.drug.units.iter().chain([&b.drug.total]);
    for (row, u) in (1u32..).zip(units) {
        let DrugUnit {
            name,
            active,
            relapsed,
            visits_overdue,
            tests_due,
            ..
        } = u;
        let name = if std::ptr::eq(u, &b.drug.total) {
            format!("{name}（合计）")
        } else {
            name.clone()
        };
        s.write_string(row, 0, name)?;
        count(&mut s, row, 1, *active)?;
        count(&mut s, row, 2, *relapsed)?;
        count(&mut s, row, 3, *visits_overdue)?;
        count(&mut s, row, 4, *tests_due)?;
    }
    Ok(s)
}

fn worries(b: &Bulletin) -> Result<Worksheet, XlsxError> {
    let mut s = sheet("操心事", &["事项", "提及次数", "占访问比"])?;
    s.set_column_width(0, 24)?;
    for (row, w) in (1u32..).zip(&b.worries) {
        s.write_string(row, 0, &w.label.zh)?;
        s.write_number(row, 1, w.count as f64)?;
        s.write_number(row, 2, w.share)?;
    }
    Ok(s)
}
