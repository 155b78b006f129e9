//! A report's running text as spans: what someone wrote (shown as itself wherever it goes) and
//! what the report itself marks up (code, bold, emphasis). Blocks hold spans, never raw
//! Markdown or HTML, so no reason, note or name can break the download's structure (a table's
//! pipes, a heading, a link) or the page's markup: each writer escapes every text span.

use super::esc;

/// One piece of inline text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Span {
    /// Text as written: every character is shown as itself.
    Text(String),
    /// Shown as code (a flag key).
    Code(String),
    Strong(String),
    Em(String),
}

/// A run of inline text: spans in reading order, on one line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inline(pub Vec<Span>);

/// Where Markdown is written: a table cell must also escape the pipes inside code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Line,
    Cell,
}

impl Inline {
    /// Text as written.
    pub fn text(text: impl Into<String>) -> Inline {
        Inline(vec![Span::Text(text.into())])
    }

    /// This run, then `text` as written.
    pub fn then(mut self, text: impl Into<String>) -> Inline {
        self.0.push(Span::Text(text.into()));
        self
    }

    pub fn code(mut self, text: impl Into<String>) -> Inline {
        self.0.push(Span::Code(text.into()));
        self
    }

    pub fn strong(mut self, text: impl Into<String>) -> Inline {
        self.0.push(Span::Strong(text.into()));
        self
    }

    /// The words without markup (as a reader hears them).
    pub fn plain(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                Span::Text(t) | Span::Code(t) | Span::Strong(t) | Span::Em(t) => t.as_str(),
            })
            .collect()
    }

    /// As Markdown on one line.
    pub fn markdown(&self, place: Place) -> String {
        let mut out = String::new();
        for span in &self.0 {
            match span {
                Span::Text(t) => out.push_str(&md_escape(t)),
                Span::Code(t) => out.push_str(&md_code(t, place)),
                Span::Strong(t) => out.push_str(&delimited("**", t)),
                Span::Em(t) => out.push_str(&delimited("*", t)),
            }
        }
        out.trim().to_string()
    }

    /// As HTML (inside an element).
    pub fn html(&self) -> String {
        let mut out = String::new();
        for span in &self.0 {
            match span {
                Span::Text(t) => out.push_str(&esc(t)),
                Span::Code(t) => out.push_str(&format!("<code>{}</code>", esc(t))),
                Span::Strong(t) => out.push_str(&format!("<strong>{}</strong>", esc(t))),
                Span::Em(t) => out.push_str(&format!("<em>{}</em>", esc(t))),
            }
        }
        out
    }
}

impl From<String> for Inline {
    fn from(text: String) -> Inline {
        Inline::text(text)
    }
}

impl From<&str> for Inline {
    fn from(text: &str) -> Inline {
        Inline::text(text)
    }
}

/// `text` as Markdown that shows exactly `text` on one line, wherever it stands: every
/// character that could start markup (emphasis, code, links, HTML, entities, table pipes) is
/// escaped (a `!` needs no escape: it makes an image only before a `[`), and so is what would begin a block at the start of a line (a heading's `#`, a
/// list's `-`, `+` or `1.`, a setext underline's `=`); line breaks become spaces.
pub fn md_escape(text: &str) -> String {
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let body = text.trim_start();
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..text.len() - body.len()]);
    // A block marker counts only at the start of a line, and only followed by a space or
    // the line's end (`99.5%`, `+0.7 pts` and `#3` are text), or as a whole line of `-` or `=`.
    let ends_marker = |rest: &str| rest.chars().next().is_none_or(char::is_whitespace);
    let digits = body.chars().take_while(char::is_ascii_digit).count();
    let hashes = body.chars().take_while(|c| *c == '#').count();
    let underline = |c: char| !body.is_empty() && body.trim_end().chars().all(|x| x == c);
    let marker = match body.chars().next() {
        Some('#') if ends_marker(&body[hashes..]) => Some(0),
        Some('-' | '+') if ends_marker(&body[1..]) || underline('-') => Some(0),
        Some('=') if underline('=') => Some(0),
        Some(_) if digits > 0 && body[digits..].starts_with(['.', ')']) && ends_marker(&body[digits + 1..]) => Some(digits),
        _ => None,
    };
    for (i, c) in body.char_indices() {
        if Some(i) == marker || matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as a Markdown code span: fenced with more backticks than it holds in a row, padded
/// where it begins or ends with a backtick or a space; in a table cell its pipes escaped (GFM
/// splits cells before it reads code).
fn md_code(text: &str, place: Place) -> String {
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with(['`', ' ']) || text.ends_with(['`', ' ']) { " " } else { "" };
    let text = if place == Place::Cell { text.replace('|', "\\|") } else { text };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Emphasis around escaped text; nothing for blank text (`****` is no emphasis).
fn delimited(marker: &str, text: &str) -> String {
    let text = md_escape(text.trim());
    if text.is_empty() { String::new() } else { format!("{marker}{text}{marker}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_text_cannot_make_markup_in_markdown() {
        for (written, expected) in [
            ("plain words, 14,000 uploads.", "plain words, 14,000 uploads."),
            ("a | b", "a \\| b"),
            ("# not a heading", "\\# not a heading"),
            ("  ## indented", "  \\## indented"),
            ("issue #3", "issue #3"),
            ("#3 is text", "#3 is text"),
            ("99.73% (99.56% – 99.85%)", "99.73% (99.56% – 99.85%)"),
            ("+0.73 pts", "+0.73 pts"),
            ("-5% memory", "-5% memory"),
            ("---", "\\---"),
            ("+ not a list", "\\+ not a list"),
            ("2.", "2\\."),
            ("- not a list", "\\- not a list"),
            ("1. not a list", "1\\. not a list"),
            ("12) not either", "12\\) not either"),
            ("=====", "\\====="),
            ("*bold* _em_ `code`", "\\*bold\\* \\_em\\_ \\`code\\`"),
            ("[click](https://evil.example)", "\\[click\\](https://evil.example)"),
            ("![img](x)", "!\\[img\\](x)"),
            ("<script>alert(1)</script>", "\\<script\\>alert(1)\\</script\\>"),
            ("&amp; ~~gone~~ \\", "\\&amp; \\~\\~gone\\~\\~ \\\\"),
            ("two\nlines\r\nhere", "two lines  here"),
        ] {
            assert_eq!(md_escape(written), expected, "{written:?}");
        }
    }

    #[test]
    fn code_spans_hold_backticks_and_pipes() {
        assert_eq!(md_code("async_upload", Place::Line), "`async_upload`");
        assert_eq!(md_code("a`b", Place::Line), "``a`b``");
        assert_eq!(md_code("`x", Place::Line), "`` `x ``");
        assert_eq!(md_code("a|b", Place::Cell), "`a\\|b`");
        assert_eq!(md_code("a|b", Place::Line), "`a|b`");
    }

    #[test]
    fn markup_is_well_formed_in_both_writers() {
        let said = Inline::text("Asked by *ana*").then("; ").strong("overridden").then(": “<b>now</b> | `rm`”");
        assert_eq!(said.markdown(Place::Line), "Asked by \\*ana\\*; **overridden**: “\\<b\\>now\\</b\\> \\| \\`rm\\`”");
        assert_eq!(said.html(), "Asked by *ana*; <strong>overridden</strong>: “&lt;b&gt;now&lt;/b&gt; | `rm`”");
        assert_eq!(said.plain(), "Asked by *ana*; overridden: “<b>now</b> | `rm`”");
        assert_eq!(Inline::default().strong("  ").markdown(Place::Line), "");
    }
}
