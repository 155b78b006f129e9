//! A PromQL series selector, parsed as Prometheus reads it; a refusal names the character at
//! fault.

use std::fmt;

/// A series selector: `name{label="value",…}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    pub op: String,
    pub value: String,
}

pub(super) fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Selector {
    /// Parses a PromQL series selector; the message says what is wrong and where (by
    /// character). Functions, operators and ranges are refused: Rampart reads raw samples.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let s = text.trim();
        let at = |i: usize, what: &str| format!("`{text}`: {what} at character {}", text.len() - text.trim_start().len() + i + 1);
        let name_end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(s.len());
        let name = &s[..name_end];
        if !name.is_empty() && !is_metric_name(name) {
            return Err(at(0, "a metric name starts with a letter, `_` or `:`"));
        }
        let rest = s[name_end..].trim_start();
        let offset = s.len() - rest.len();
        let mut matchers = Vec::new();
        if rest.is_empty() {
            if name.is_empty() {
                return Err(format!("`{text}`: a selector needs a metric name or a matcher"));
            }
        } else {
            let Some(body) = rest.strip_prefix('{') else {
                return Err(at(offset, "expected `{` (only a series selector is read: no functions, operators or ranges)"));
            };
            let chars: Vec<(usize, char)> = body.char_indices().collect();
            let mut i = 0;
            let skip_ws = |i: &mut usize| {
                while *i < chars.len() && chars[*i].1.is_whitespace() {
                    *i += 1;
                }
            };
            let pos = |i: usize| offset + 1 + chars.get(i).map_or(body.len(), |c| c.0);
            loop {
                skip_ws(&mut i);
                if i < chars.len() && chars[i].1 == '}' {
                    i += 1;
                    break;
                }
                let start = i;
                while i < chars.len() && (chars[i].1.is_ascii_alphanumeric() || chars[i].1 == '_') {
                    i += 1;
                }
                let label: String = chars[start..i].iter().map(|c| c.1).collect();
                if !is_label_name(&label) {
                    return Err(at(pos(start), "expected a label name"));
                }
                skip_ws(&mut i);
                let op: String = match (chars.get(i).map(|c| c.1), chars.get(i + 1).map(|c| c.1)) {
                    (Some('='), Some('~')) | (Some('!'), Some('=')) | (Some('!'), Some('~')) => {
                        i += 2;
                        chars[i - 2..i].iter().map(|c| c.1).collect()
                    }
                    (Some('='), _) => {
                        i += 1;
                        "=".into()
                    }
                    _ => return Err(at(pos(i), "expected =, !=, =~ or !~")),
                };
                skip_ws(&mut i);
                let Some(&(_, quote)) = chars.get(i).filter(|c| matches!(c.1, '"' | '\'' | '`')) else {
                    return Err(at(pos(i), "expected a quoted value"));
                };
                i += 1;
                let mut value = String::new();
                loop {
                    match chars.get(i).map(|c| c.1) {
                        None => return Err(at(pos(i), "the quoted value is not closed")),
                        Some(c) if c == quote => break,
                        Some('\\') if quote != '`' => {
                            i += 1;
                            match chars.get(i).map(|c| c.1) {
                                Some(c @ ('\\' | '"' | '\'')) => value.push(c),
                                Some('n') => value.push('\n'),
                                _ => return Err(at(pos(i), "unknown escape")),
                            }
                        }
                        Some(c) => value.push(c),
                    }
                    i += 1;
                }
                i += 1;
                matchers.push(Matcher { label, op, value });
                skip_ws(&mut i);
                match chars.get(i).map(|c| c.1) {
                    Some(',') => i += 1,
                    Some('}') => {}
                    _ => return Err(at(pos(i), "expected `,` or `}`")),
                }
            }
            if i < chars.len() {
                return Err(at(pos(i), "nothing may follow the selector (no functions, operators or ranges)"));
            }
            if name.is_empty() && !matchers.iter().any(|m| m.op == "=" && !m.value.is_empty()) {
                return Err(format!("`{text}`: a selector without a name needs a matcher that is not empty"));
            }
        }
        Ok(Selector { name: (!name.is_empty()).then(|| name.to_string()), matchers })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name.as_deref().unwrap_or(""))?;
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            let value = m.value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            write!(f, "{}{}{}\"{}\"", if i > 0 { "," } else { "" }, m.label, m.op, value)?;
        }
        f.write_str("}")
    }
}
