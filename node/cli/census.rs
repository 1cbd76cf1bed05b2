//! `census` and `report monthly`: the NDRC census table and the providers' monthly duty.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;
use unicode_width::UnicodeWidthStr;

use super::client::status_error;
use super::{CliError, Exit, TargetArgs, local_time};
use crate::domain::census::{flag, in_10k, ratio};
use crate::pb;

#[derive(Args, Debug)]
pub struct CensusArgs {
    /// One JSON object: region, total, natural, legal, children (region, stock, held,
    /// refused, ratio), refused_from_below ...
    #[arg(long, conflicts_with_all = ["csv", "tree"])]
    pub json: bool,
    /// The census table as CSV (this node and its children).
    #[arg(long, conflicts_with = "tree")]
    pub csv: bool,
    /// The federation below this node as the NDRC census table, with the ratio column.
    #[arg(long)]
    pub tree: bool,
    /// The figures at the end of this day (YYYY-MM-DD) instead of now.
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Each registered provider's submissions for a period: records, first and last
    /// submission, on time (by the 23rd of the following month) / late / missing, and
    /// the contacts of the late and missing (R-DATA-5, R-DATA-6).
    Monthly {
        /// YYYY-MM.
        #[arg(long)]
        period: String,
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

/// Rows of the census table: (depth, platform, held by its parent when it is a child).
fn rows<'a>(
    p: &'a pb::PlatformFigures,
    held: Option<u64>,
    depth: usize,
    out: &mut Vec<(usize, &'a pb::PlatformFigures, Option<u64>)>,
) {
    out.push((depth, p, held));
    for c in &p.children {
        if let Some(child) = &c.platform {
            rows(child, Some(c.held), depth + 1, out);
        }
    }
}

pub async fn census(args: CensusArgs) -> Result<Exit, CliError> {
    let report = pb::census_client::CensusClient::new(args.target.target().connect().await?)
        .census(pb::CensusRequest {
            as_of: args.as_of.clone().unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let p = report.platform.clone().unwrap_or_default();
    let (held, stock): (u64, u64) = p.children.iter().fold((0, 0), |(h, s), c| {
        (h + c.held, s + c.platform.as_ref().map_or(0, |p| p.total))
    });
    let regional = ratio(held, stock);
    let mut out = std::io::stdout().lock();
    if args.json {
        let children: Vec<_> = p
            .children
            .iter()
            .map(|c| {
                let cp = c.platform.clone().unwrap_or_default();
                let r = ratio(c.held, cp.total);
                json!({
                    "region": cp.region,
                    "name": cp.name,
                    "stock": cp.total,
                    "natural": cp.natural,
                    "legal": cp.legal,
                    "held": c.held,
                    "refused": c.refused,
                    "ratio": r,
                    "flag": flag(r),
                    "reported_at_ms": cp.at_ms,
                })
            })
            .collect();
        let value = json!({
            "region": p.region,
            "name": p.name,
            "as_of": if report.as_of.is_empty() { serde_json::Value::Null } else { report.as_of.clone().into() },
            "total": p.total,
            "total_10k": in_10k(p.total),
            "natural": p.natural,
            "natural_10k": in_10k(p.natural),
            "legal": p.legal,
            "legal_10k": in_10k(p.legal),
            "by_category": report.by_category,
            "by_provider": report.by_provider,
            "children": children,
            "refused_from_below": report.refused_from_below,
            "ratio": regional,
            "flag": flag(regional),
        });
        writeln!(out, "{value}")?;
        return Ok(Exit::Ok);
    }
    let mut table = Vec::new();
    rows(&p, None, 0, &mut table);
    if !args.tree {
        table.retain(|(depth, _, _)| *depth <= 1);
    }
    if args.csv {
        writeln!(
            out,
            "序号,区划代码,平台名称,数据总量,自然人数据总量,法人和其他组织数据总量,上级归集量,归集率"
        )?;
        for (i, (_, row, held)) in table.iter().enumerate() {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                i + 1,
                row.region,
                row.name.replace(',', " "),
                row.total,
                row.natural,
                row.legal,
                held.map_or(String::new(), |h| h.to_string()),
                held.map_or(String::new(), |h| ratio_text(ratio(h, row.total)))
            )?;
        }
        return Ok(Exit::Ok);
    }
    writeln!(
        out,
        "Census of {} {}{}",
        p.region,
        p.name,
        if report.as_of.is_empty() {
            String::from(", now")
        } else {
            format!(", at the end of {}", report.as_of)
        }
    )?;
    let widths = [4, 40, 14, 12, 20, 8];
    let header = [
        "序号",
        "平台名称",
        "数据总量(万条)",
        "自然人(万条)",
        "法人和其他组织(万条)",
        "归集率",
    ];
    writeln!(out, "{}", columns(&header.map(String::from), &widths))?;
    for (i, (depth, row, held)) in table.iter().enumerate() {
        let r = held.and_then(|h| ratio(h, row.total));
        let cells = [
            (i + 1).to_string(),
            format!("{}{} {}", "  ".repeat(*depth), row.region, row.name),
            in_10k(row.total),
            in_10k(row.natural),
            in_10k(row.legal),
            held.map_or(String::new(), |_| ratio_text(r)),
        ];
        let mark = if held.is_some() { flag(r) } else { "" };
        writeln!(out, "{}  {mark}", columns(&cells, &widths))?;
    }
    writeln!(
        out,
        "records: {} ({} natural, {} legal); children's stock {stock}, held here {held}: {} ({})",
        p.total,
        p.natural,
        p.legal,
        ratio_text(regional),
        flag(regional)
    )?;
    if report.refused_from_below > 0 || !p.children.is_empty() {
        let by_child: Vec<String> = p
            .children
            .iter()
            .filter(|c| c.refused > 0)
            .map(|c| {
                let region = c.platform.as_ref().map_or("", |p| p.region.as_str());
                format!("{region} {}", c.refused)
            })
            .collect();
        writeln!(
            out,
            "refused from below: {}{} (kept in quarantine here; `credit-node status` lists them)",
            report.refused_from_below,
            if by_child.is_empty() {
                String::new()
            } else {
                format!(" ({})", by_child.join(", "))
            }
        )?;
    }
    if !args.tree {
        for (category, n) in &report.by_category {
            writeln!(out, "  {category:<24} {n}")?;
        }
    }
    Ok(Exit::Ok)
}

/// Columns padded to terminal widths: the first two to the left, numbers to the right.
/// Chinese characters take two columns on a terminal, which `format!` padding ignores.
fn columns(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        let pad = " ".repeat(width.saturating_sub(display_width(cell)));
        if i > 0 {
            line.push(' ');
        }
        if i < 2 {
            line.push_str(cell);
            line.push_str(&pad);
        } else {
            line.push_str(&pad);
            line.push_str(cell);
        }
    }
    line
}

/// Terminal columns of `s`, as `unicode-width` reads the Unicode East Asian Width tables:
/// two for wide and fullwidth characters (in every plane), none for zero-width marks.
fn display_width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

pub async fn report(command: ReportCommand) -> Result<Exit, CliError> {
    let ReportCommand::Monthly {
        period,
        csv,
        target: t,
    } = command;
    let r = pb::census_client::CensusClient::new(t.target().connect().await?)
        .monthly(pb::MonthlyRequest { period })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut out = std::io::stdout().lock();
    let contacts = |p: &pb::ProviderDuty| {
        p.contacts
            .iter()
            .map(|c| format!("{} {} {} {}", c.role, c.name, c.title, c.mobile))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if csv {
        writeln!(out, "provider,name,uscc,records,first,last,state,contacts")?;
        for p in &r.providers {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                p.id,
                p.name.replace(',', " "),
                p.uscc,
                p.records,
                local_time(p.first_ms),
                local_time(p.last_ms),
                p.state,
                contacts(p).replace(',', " ")
            )?;
        }
        return Ok(Exit::Ok);
    }
    writeln!(
        out,
        "Monthly reporting for {} (due by {}):",
        r.period, r.deadline
    )?;
    for p in &r.providers {
        writeln!(
            out,
            "  {:<9} {:<24} {:>6} records  first {:<19} last {:<19} {}",
            p.state,
            p.id,
            p.records,
            local_time(p.first_ms),
            local_time(p.last_ms),
            p.name
        )?;
        if matches!(p.state.as_str(), "late" | "missing") {
            let c = contacts(p);
            writeln!(
                out,
                "            contacts: {}",
                if c.is_empty() {
                    "none registered".to_string()
                } else {
                    c
                }
            )?;
        }
    }
    let count = |s: &str| r.providers.iter().filter(|p| p.state == s).count();
    writeln!(
        out,
        "{} providers: {} on time, {} late, {} missing, {} not yet due",
        r.providers.len(),
        count("on_time"),
        count("late"),
        count("missing"),
        count("due")
    )?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand table this replaced counted most of these wrong: it stopped at the basic
    /// plane, missed wide blocks inside it, gave every zero-width mark a column, and
    /// called the half-width ideographic space wide.
    #[test]
    fn display_width_follows_the_unicode_width_tables() {
        // U+20000, plane 2 (CJK Extension B): two columns, as in the basic plane.
        assert_eq!(display_width("\u{20000}"), 2);
        assert_eq!(display_width("\u{20000}县"), 4);
        // Zero-width space and a combining acute accent take no column.
        assert_eq!(display_width("a\u{200B}b"), 2);
        assert_eq!(display_width("e\u{301}"), 1);
        // Wide characters the table left out: Hangul Jamo Extended-A, an emoji (plane 1).
        assert_eq!(display_width("\u{A960}"), 2);
        assert_eq!(display_width("\u{1F600}"), 2);
        // Fullwidth forms and ideographs: two columns each (the old table had these).
        assert_eq!(display_width("ＡＢ１"), 6);
        assert_eq!(display_width("凌源市"), 6);
        // Inside the old table's range, yet one column: the half-width ideographic space.
        assert_eq!(display_width("\u{303F}"), 1);
        assert_eq!(display_width("plain"), 5);
    }

    #[test]
    fn columns_pad_by_display_width() {
        let cells = ["\u{20000}".to_string(), "a".to_string(), "7".to_string()];
        assert_eq!(columns(&cells, &[4, 2, 3]), "\u{20000}   a    7");
    }
}
