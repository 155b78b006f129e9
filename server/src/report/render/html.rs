//! Blocks written out as a standalone HTML page with print styles (the page), and the page a
//! stale notes form answers.

use super::{Block, Names, blocks, title};
use crate::report::{Report, esc};
use std::fmt::Write;

/// Where the page's links and form point.
pub struct Page<'a> {
    /// The report's own path, e.g. `/status/1/report`.
    pub path: &'a str,
    /// The rollout's report pages, for the links at the top: (label, path).
    pub links: Vec<(String, String)>,
    /// Whether the reader may write the lessons and recommendations (the form is shown).
    pub may_write: bool,
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;color:#1a1a1a;max-width:60rem;margin:2rem auto;padding:0 1rem}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}h3{font-size:1rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}figure{margin:.5rem 0 1rem}figcaption{font-size:.85rem;color:#555}svg.chart{max-width:100%;height:auto}\
nav a{margin-right:1rem}textarea{width:100%;min-height:6rem;font:inherit}.text{white-space:pre-wrap}\
@media print{nav,form,.no-print{display:none}body{margin:0;max-width:none}h2{break-after:avoid}table,figure{break-inside:avoid}}";

/// The page a notes form answers when someone saved since it was shown: nothing was saved, and
/// the text written is given back to copy.
pub fn stale_notes_page(path: &str, version: u64, lessons: &str, recommendations: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not saved</title><style>{STYLE}</style></head><body><main>\
         <h1>Not saved: someone saved the notes meanwhile</h1>\
         <p>The lessons and recommendations were saved by someone else since you opened the report (they are now at version {version}). \
         Your text is below: copy it, <a href=\"{}#lessons\">open the report again</a>, and merge it into theirs.</p>\
         <h2>Your lessons learned</h2><div class=\"text\">{}</div><h2>Your recommendations</h2><div class=\"text\">{}</div></main></body></html>\n",
        esc(path),
        esc(lessons),
        esc(recommendations)
    )
}

/// The report as a standalone HTML page that prints cleanly.
pub fn html(report: &Report, names: Names, page: &Page) -> String {
    let form = match report.notes.as_ref().filter(|_| page.may_write) {
        Some(notes) => format!(
            "<form method=\"post\" action=\"{}/notes\"><h3>Edit the lessons and recommendations</h3>\
             <input type=\"hidden\" name=\"version\" value=\"{}\">\
             <p><label>Lessons learned<textarea name=\"lessons\" maxlength=\"20000\">{}</textarea></label></p>\
             <p><label>Recommendations<textarea name=\"recommendations\" maxlength=\"20000\">{}</textarea></label></p>\
             <button type=\"submit\">Save</button></form>\n",
            esc(page.path),
            notes.version,
            esc(&notes.lessons),
            esc(&notes.recommendations)
        ),
        None => String::new(),
    };
    html_page(&title(report), &blocks(report, names), page, &form)
}

/// A page of blocks under its title as a standalone HTML page that prints cleanly: the links at
/// the top, then the blocks, then `after` (markup the caller made safe).
pub fn html_page(title: &str, blocks: &[Block], page: &Page, after: &str) -> String {
    let title = esc(title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n<nav aria-label=\"Reports\">"
    );
    for (label, path) in &page.links {
        let _ = write!(out, "<a href=\"{}\">{}</a>", esc(path), esc(label));
    }
    let _ = write!(out, "<a href=\"{}?format=md\" download>Download as Markdown</a></nav>\n<main>\n<h1>{title}</h1>\n", esc(page.path));
    for block in blocks {
        write_html(&mut out, block);
    }
    out.push_str(after);
    out.push_str("</main>\n</body></html>\n");
    out
}

fn write_html(out: &mut String, block: &Block) {
    match block {
        Block::Heading(level, text) => {
            let _ = writeln!(out, "<h{level}>{}</h{level}>", text.html());
        }
        Block::Paragraph(text) => {
            let _ = writeln!(out, "<p>{}</p>", text.html());
        }
        Block::List(items) => {
            out.push_str("<ul>");
            for item in items {
                let _ = write!(out, "<li>{}</li>", item.html());
            }
            out.push_str("</ul>\n");
        }
        Block::Table { head, rows } => {
            out.push_str("<table><thead><tr>");
            for h in head {
                let _ = write!(out, "<th scope=\"col\">{}</th>", h.html());
            }
            out.push_str("</tr></thead><tbody>");
            for row in rows {
                out.push_str("<tr>");
                for cell in row {
                    let _ = write!(out, "<td>{}</td>", cell.html());
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table>\n");
        }
        Block::Chart { svg, caption, .. } => {
            let _ = writeln!(out, "<figure>{svg}<figcaption>{}</figcaption></figure>", esc(caption));
        }
        Block::Text { id, title, text } => {
            let _ = writeln!(out, "<h2 id=\"{id}\">{}</h2>", title.html());
            let shown = if text.trim().is_empty() { "(not written yet)" } else { text.trim() };
            let _ = writeln!(out, "<div class=\"text\" data-testid=\"{id}\">{}</div>", esc(shown));
        }
    }
}
