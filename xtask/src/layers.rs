//! `cargo xtask layers`: the layer rule of ARCHITECTURE.md, checked over the source. Every file
//! of the server and the app has a layer; a file may use what lives in its own layer or below,
//! never above, and no files may import each other in a circle (at any layer). Imports are read
//! from `crate::…` and `super::…` paths (`use` lines, grouped ones included, and paths written
//! inline); comments, a file's `#[cfg(test)]` tail and a `tests.rs` (a module's tests moved
//! beside it: `foo.rs` declares `#[cfg(test)] mod tests;`, the body is `foo/tests.rs`) are not
//! read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One crate's layers, lowest first: path prefixes under `src/` (a file, or a folder ending in
/// `/`) and each one's layer. The first prefix that matches a file decides.
struct Crate {
    src: &'static str,
    layers: &'static [(&'static str, u8, &'static str)],
}

const CRATES: [Crate; 2] = [
    Crate {
        src: "app/src",
        layers: &[
            ("domain.rs", 0, "domain"),
            ("domain/", 0, "domain"),
            ("error.rs", 1, "shared types"),
            ("format.rs", 1, "shared types"),
            ("model.rs", 1, "shared types"),
            ("you.rs", 1, "shared types"),
            ("live.rs", 1, "shared types"),
            ("services.rs", 2, "services"),
            ("api.rs", 2, "services"),
            ("components.rs", 3, "components"),
            ("components/", 3, "components"),
            ("pages.rs", 4, "pages"),
            ("pages/", 4, "pages"),
            ("app.rs", 5, "shell"),
            ("lib.rs", 6, "crate root"),
        ],
    },
    Crate {
        src: "server/src",
        layers: &[
            ("webhooks/payload.rs", 0, "leaf"),
            ("actors.rs", 0, "leaf"),
            ("clock.rs", 0, "leaf"),
            ("random.rs", 0, "leaf"),
            ("net.rs", 0, "leaf"),
            ("egress.rs", 0, "leaf"),
            ("sealed.rs", 0, "leaf"),
            ("embedded_pg.rs", 0, "leaf"),
            ("background.rs", 0, "leaf"),
            ("live.rs", 0, "leaf"),
            ("simulate.rs", 0, "leaf"),
            ("config.rs", 0, "leaf"),
            ("telemetry.rs", 0, "leaf"),
            ("junit.rs", 0, "leaf"),
            ("prometheus.rs", 0, "leaf"),
            ("db.rs", 1, "store"),
            ("store.rs", 1, "store"),
            ("store/", 1, "store"),
            ("auth.rs", 2, "services"),
            ("auth/", 2, "services"),
            ("flags.rs", 2, "services"),
            ("metrics.rs", 2, "services"),
            ("metrics/", 2, "services"),
            ("service.rs", 2, "services"),
            ("service/", 2, "services"),
            ("guard.rs", 2, "services"),
            ("webhooks.rs", 2, "services"),
            ("webhooks/", 2, "services"),
            ("explain.rs", 2, "services"),
            ("report.rs", 2, "services"),
            ("report/", 2, "services"),
            ("backtest.rs", 2, "services"),
            ("http.rs", 3, "http"),
            ("http/", 3, "http"),
            ("startup.rs", 4, "startup"),
            ("main.rs", 5, "main"),
            ("lib.rs", 6, "crate root"),
        ],
    },
];

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    pub imports: usize,
    pub against: Vec<String>,
    pub circles: Vec<Vec<String>>,
    pub unplaced: Vec<String>,
}

pub fn check(root: &Path) -> Result<Report, String> {
    let mut report = Report::default();
    for krate in &CRATES {
        let src = root.join(krate.src);
        let files = rust_files(&src)?;
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let rel = relative(&src, file);
            if is_tests_file(&rel) {
                continue;
            }
            let Some((layer, name)) = place(krate, &rel) else {
                report.unplaced.push(format!("{}/{rel}", krate.src));
                continue;
            };
            let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut targets = BTreeSet::new();
            for path in import_paths(&code_of(&text)) {
                if let Some(target) = resolve(&src, &rel, &path)
                    && target != rel
                {
                    targets.insert(target);
                }
            }
            for target in &targets {
                report.imports += 1;
                if let Some((their_layer, their_name)) = place(krate, target)
                    && their_layer > layer
                {
                    report.against.push(format!(
                        "{src}/{rel} ({name}) uses {src}/{target} ({their_name}): an import against the layers",
                        src = krate.src
                    ));
                }
            }
            graph.insert(rel, targets);
        }
        report.files += files.len();
        for circle in circles(&graph) {
            report.circles.push(circle.into_iter().map(|f| format!("{}/{f}", krate.src)).collect());
        }
    }
    Ok(report)
}

fn place(krate: &Crate, rel: &str) -> Option<(u8, &'static str)> {
    krate
        .layers
        .iter()
        .find(|(prefix, _, _)| if prefix.ends_with('/') { rel.starts_with(prefix) } else { rel == *prefix })
        .map(|(_, layer, name)| (*layer, *name))
}

/// A module's tests in a file of their own (`foo/tests.rs`): test code, which may use anything.
fn is_tests_file(rel: &str) -> bool {
    rel.rsplit('/').next() == Some("tests.rs")
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn relative(src: &Path, file: &Path) -> String {
    file.strip_prefix(src).unwrap_or(file).to_string_lossy().replace('\\', "/")
}

/// The code a file runs outside its tests: comments dropped, and everything from a
/// `#[cfg(test)]` on (a file's tests sit at its end and may use anything).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find(" //") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every `crate::…` or `super::…` path in `code`, with `use` groups expanded: each as its
/// segments, starting with `crate` or `super`.
fn import_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let starts = ["crate::", "super::"].iter().find(|p| rest.starts_with(**p));
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        if let (Some(_), true) = (starts, boundary) {
            let end = path_end(rest);
            for path in expand(&rest[..end]) {
                out.push(path);
            }
            i += end.max(1);
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// Where a path starting at `text` ends: identifiers, `::`, `*`, and one balanced `{…}` group.
fn path_end(text: &str) -> usize {
    let mut depth = 0usize;
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            _ if depth > 0 => {}
            c if c.is_alphanumeric() || c == '_' || c == ':' || c == '*' => {}
            _ => return at,
        }
    }
    text.len()
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e` (as segments).
fn expand(path: &str) -> Vec<Vec<String>> {
    let path = path.trim().trim_end_matches("::");
    let Some(open) = path.find('{') else {
        return vec![path.split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()];
    };
    let head: Vec<String> = path[..open].split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let inner = &path[open + 1..path.rfind('}').unwrap_or(path.len())];
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[from..at]);
                from = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[from..]);
    let mut out = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        for tail in expand(part) {
            let mut full = head.clone();
            full.extend(tail.into_iter().filter(|s| s != "self"));
            out.push(full);
        }
    }
    out
}

/// The file a path names, as a path under `src/`: the longest prefix of its module path that
/// is a file (`crate::store::guard::X` → `store/guard.rs`, `crate::store::Store` → `store.rs`).
fn resolve(src: &Path, from: &str, path: &[String]) -> Option<String> {
    let mut module: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "super" => {
            let mut here = module_of(from);
            here.pop()?;
            here
        }
        _ => return None,
    };
    module.extend(path[1..].iter().cloned());
    for len in (1..=module.len()).rev() {
        let candidate = format!("{}.rs", module[..len].join("/"));
        if src.join(&candidate).is_file() {
            return Some(candidate);
        }
    }
    None
}

/// The module path of a file: `store/guard.rs` → `[store, guard]`; `lib.rs` and `main.rs` are
/// the crate's root.
fn module_of(rel: &str) -> Vec<String> {
    if rel == "lib.rs" || rel == "main.rs" {
        return Vec::new();
    }
    rel.trim_end_matches(".rs").split('/').map(str::to_string).collect()
}

/// Groups of files that import each other in a circle (Tarjan's strongly connected components
/// of more than one file).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.graph.contains_key(next) {
                    continue;
                }
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut group = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    group.push(top.to_string());
                    if top == node {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk =
        Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), found: Vec::new() };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_and_inline_paths_are_read() {
        let code = "use crate::{clock::Clock, store::{Store, guard::GuardLease}};\nlet x = crate::net::over_https(h);\nuse super::payload::Event;\n";
        let paths: Vec<String> = import_paths(code).into_iter().map(|p| p.join("::")).collect();
        assert_eq!(
            paths,
            [
                "crate::clock::Clock",
                "crate::store::Store",
                "crate::store::guard::GuardLease",
                "crate::net::over_https",
                "super::payload::Event"
            ]
        );
        assert!(import_paths("let a = my_crate::thing;").is_empty());
        assert_eq!(code_of("use crate::a; // crate::b\n/// [`crate::c`]\n#[cfg(test)]\nuse crate::d;"), "use crate::a;\n");
    }

    #[test]
    fn a_circle_is_found_and_a_chain_is_not() {
        let graph = |edges: &[(&str, &str)]| {
            let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in edges {
                g.entry(a.to_string()).or_default().insert(b.to_string());
                g.entry(b.to_string()).or_default();
            }
            g
        };
        assert!(circles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
        assert_eq!(circles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])), [["a", "b", "c"]]);
    }

    /// The tree itself: the rule holds today, and the check would see a violation.
    #[test]
    fn the_tree_keeps_its_layers() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let report = check(root).unwrap();
        assert!(report.files > 50 && report.imports > 100, "{report:?}");
        assert!(report.unplaced.is_empty(), "files with no layer: {:?}", report.unplaced);
        assert!(report.against.is_empty(), "{:#?}", report.against);
        assert!(report.circles.is_empty(), "{:#?}", report.circles);
        let app = &CRATES[0];
        assert_eq!(place(app, "domain/gates.rs"), Some((0, "domain")));
        assert!(place(app, "pages/admin.rs").unwrap().0 > place(app, "domain/gates.rs").unwrap().0);
        assert_eq!(
            resolve(&root.join("server/src"), "guard.rs", &["crate".into(), "store".into(), "Store".into()]),
            Some("store.rs".into())
        );
        assert_eq!(
            resolve(&root.join("server/src"), "webhooks/admin.rs", &["super".into(), "payload".into(), "Event".into()]),
            Some("webhooks/payload.rs".into())
        );
    }
}
