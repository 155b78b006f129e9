//! Blocks written out as Markdown (the download).

use super::{Block, Names, blocks, title};
use crate::report::Report;
use crate::report::inline::{Inline, Place, Span, md_escape};
use std::fmt::Write;

/// The report as Markdown.
pub fn markdown(report: &Report, names: Names) -> String {
    markdown_page(&title(report), &blocks(report, names))
}

/// A page of blocks under its title, as Markdown.
pub fn markdown_page(title: &str, blocks: &[Block]) -> String {
    let mut out = format!("# {}\n\n", md_escape(title));
    for block in blocks {
        write_markdown(&mut out, block);
    }
    out
}

fn write_markdown(out: &mut String, block: &Block) {
    match block {
        Block::Heading(level, text) => {
            let _ = writeln!(out, "{} {}\n", "#".repeat(usize::from(*level)), text.markdown(Place::Line));
        }
        Block::Paragraph(text) => {
            let _ = writeln!(out, "{}\n", text.markdown(Place::Line));
        }
        Block::List(items) => {
            for item in items {
                let _ = writeln!(out, "- {}", item.markdown(Place::Line));
            }
            out.push('\n');
        }
        Block::Table { head, rows } => {
            let row = |cells: &[Inline]| cells.iter().map(|c| c.markdown(Place::Cell)).collect::<Vec<_>>().join(" | ");
            let _ = writeln!(out, "| {} |", row(head));
            let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
            for cells in rows {
                let _ = writeln!(out, "| {} |", row(cells));
            }
            out.push('\n');
        }
        Block::Chart { caption, table, .. } => {
            let _ = writeln!(out, "{}\n", Inline(vec![Span::Em(caption.clone())]).markdown(Place::Line));
            write_markdown(out, table);
        }
        Block::Text { title, text, .. } => {
            let _ = writeln!(out, "## {}\n", title.markdown(Place::Line));
            let _ = writeln!(out, "{}\n", if text.trim().is_empty() { "(not written yet)".to_string() } else { md_text(text) });
        }
    }
}

/// A team's free text as Markdown that shows it as written: each line escaped, a line break
/// kept as a hard break, a blank line as a new paragraph.
fn md_text(text: &str) -> String {
    let mut out = String::new();
    let mut paragraph_open = false;
    for line in text.trim().lines().map(str::trim) {
        if line.is_empty() {
            if paragraph_open {
                out.push_str("\n\n");
            }
            paragraph_open = false;
            continue;
        }
        if paragraph_open {
            out.push_str("\\\n");
        } else if !out.is_empty() && !out.ends_with("\n\n") {
            out.push_str("\n\n");
        }
        out.push_str(&md_escape(line));
        paragraph_open = true;
    }
    out.trim_end().to_string()
}
