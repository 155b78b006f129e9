//! JUnit XML test reports, as cargo-nextest, pytest, Playwright, Maven Surefire, Gradle and most
//! CI systems write them: `<testsuites>` (optional) holding `<testsuite>`s holding `<testcase>`s,
//! each passed, or holding `<failure>`, `<error>` or `<skipped>`.
//!
//! The cases themselves are counted (the `tests=` / `failures=` attributes are not trusted:
//! tools disagree on whether errors count as failures). A case with only `<flakyFailure>` or
//! `<rerunFailure>` (nextest, Surefire: failed, then passed on a retry) passed. The report is
//! read from the text as it is, event by event, without building a tree: a 50 MB report takes
//! its own size in memory once, plus what is kept of its failures.
//!
//! A leaf: plain data in, plain data out.

use quick_xml::events::{BytesStart, Event};

/// The most failed cases kept from one report (the counts cover them all).
pub const MAX_FAILURES_KEPT: usize = 200;
/// The longest message kept of one failure, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2_000;
/// The deepest nesting read (real reports nest suites a few levels deep).
pub const MAX_DEPTH: usize = 64;

pub use app::model::FailedCase;

/// A failed case as it may be stored: its kind one of the two, names and message bounded, and
/// no control character but line breaks and tabs (Postgres cannot store a NUL). For cases sent
/// as JSON; a parsed report's cases are already so.
pub fn storable(case: FailedCase) -> Result<FailedCase, app::error::AppError> {
    if case.kind != "failure" && case.kind != "error" {
        return Err(app::error::AppError::invalid("failures.kind", format!("`{}` is neither `failure` nor `error`", case.kind)));
    }
    if case.name.trim().is_empty() {
        return Err(app::error::AppError::invalid("failures.name", "a failed case needs its name"));
    }
    Ok(FailedCase { classname: clean(&case.classname), name: clean(&case.name), kind: case.kind, message: clean(&case.message) })
}

/// Text bounded to [`MAX_MESSAGE_CHARS`], control characters other than line breaks and tabs
/// replaced by `�`.
fn clean(text: &str) -> String {
    let text: String = text.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { '\u{fffd}' } else { c }).collect();
    bounded(&text)
}

/// What a report says, summed over its suites.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// The report's own name (`<testsuites name=…>`, or the first suite's).
    pub name: Option<String>,
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Cases that failed at first and passed on a retry (counted as passed).
    pub flaky: u32,
    /// The run's time: the root's `time=`, else the suites' or the cases' sum.
    pub duration_ms: Option<u64>,
    /// The first [`MAX_FAILURES_KEPT`] failed cases.
    pub failures: Vec<FailedCase>,
}

impl Run {
    pub fn tests(&self) -> u32 {
        self.passed + self.failed + self.skipped
    }
}

/// Why a report could not be read, and where (1-based line and column of the text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// The case being read: its names, and what it held so far.
#[derive(Default)]
struct Case {
    classname: String,
    name: String,
    outcome: Outcome,
    flaky: bool,
    failure: Option<FailedCase>,
    /// Collecting the failure's text (it had no `message=`).
    in_failure_text: bool,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Outcome {
    #[default]
    Passed,
    Failed,
    Skipped,
}

/// Reads a JUnit XML report as it arrived: UTF-8 text (a byte that is not is placed by line and
/// column like any other fault), then [`parse`].
pub fn parse_bytes(body: &[u8]) -> Result<Run, ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let (line, column) = line_and_column(&body[..e.valid_up_to()]);
        ParseError { line, column, message: "not UTF-8 text".into() }
    })?;
    parse(text)
}

/// Reads a JUnit XML report.
pub fn parse(xml: &str) -> Result<Run, ParseError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut run = Run::default();
    let mut times = Times::default();
    let mut case: Option<Case> = None;
    // The elements open now, innermost last (bounded: a report of nothing but opening tags
    // must not take memory for each).
    let mut open_elements: Vec<String> = Vec::new();
    let mut root_seen = false;
    let error_at = |reader: &quick_xml::Reader<&[u8]>, message: String, at_error: bool| {
        let offset = if at_error { reader.error_position() } else { reader.buffer_position() } as usize;
        position_error(xml, offset.min(xml.len()), message)
    };
    loop {
        let event = reader.read_event().map_err(|e| error_at(&reader, e.to_string(), true))?;
        match event {
            Event::Start(element) => {
                if open_elements.len() >= MAX_DEPTH {
                    return Err(error_at(&reader, format!("elements nested deeper than {MAX_DEPTH}"), false));
                }
                open_elements.push(local_name(&element));
                let opened = if open_elements.len() == 1 {
                    root(&element, &mut run, &mut root_seen, &mut times)
                } else {
                    open(&element, &mut run, &mut case, &mut times)
                };
                opened.map_err(|m| error_at(&reader, m, false))?;
            }
            Event::Empty(element) => {
                let opened = if open_elements.is_empty() {
                    root(&element, &mut run, &mut root_seen, &mut times)
                } else {
                    open(&element, &mut run, &mut case, &mut times)
                };
                opened.map_err(|m| error_at(&reader, m, false))?;
                close(local_name(&element).as_str(), &mut run, &mut case);
            }
            Event::End(element) => {
                open_elements.pop();
                close(element.local_name().as_ref(), &mut run, &mut case);
            }
            Event::Text(text) => collect(&mut case, &text.xml10_content()),
            Event::CData(data) => collect(&mut case, &data.xml10_content()),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&reference.into_inner()).unwrap_or("").to_string(),
                    Err(e) => return Err(error_at(&reader, e.to_string(), false)),
                };
                collect(&mut case, &resolved);
            }
            Event::Eof => match open_elements.last() {
                Some(unclosed) => return Err(position_error(xml, xml.len(), format!("the report ends before <{unclosed}> is closed"))),
                None => break,
            },
            _ => {}
        }
    }
    if !root_seen {
        return Err(position_error(xml, xml.len(), "no <testsuites> or <testsuite> element".into()));
    }
    run.duration_ms = times.root.or(times.suites).or((times.cases > 0.0).then_some(times.cases)).map(|s| (s * 1000.0).round() as u64);
    Ok(run)
}

/// Where the times of a report add up, in seconds.
#[derive(Default)]
struct Times {
    root: Option<f64>,
    suites: Option<f64>,
    cases: f64,
}

/// The report's outer element: `<testsuites>`, or a lone `<testsuite>`.
fn root(element: &BytesStart<'_>, run: &mut Run, seen: &mut bool, times: &mut Times) -> Result<(), String> {
    if std::mem::replace(seen, true) {
        return Err("a second top-level element".into());
    }
    match local_name(element).as_str() {
        "testsuites" => {
            run.name = attribute(element, "name")?.filter(|name| !name.trim().is_empty());
            times.root = seconds(element)?;
            Ok(())
        }
        "testsuite" => open(element, run, &mut None, times),
        other => Err(format!("expected <testsuites> or <testsuite>, found <{other}>")),
    }
}

/// An element opens: a suite (its time), a case, or what a case holds.
fn open(element: &BytesStart<'_>, run: &mut Run, case: &mut Option<Case>, times: &mut Times) -> Result<(), String> {
    let tag = local_name(element);
    match (tag.as_str(), case.as_mut()) {
        ("testsuite", None) => {
            if run.name.is_none() {
                run.name = attribute(element, "name")?.filter(|name| !name.trim().is_empty());
            }
            if let Some(time) = seconds(element)? {
                times.suites = Some(times.suites.unwrap_or(0.0) + time);
            }
        }
        ("testcase", None) => {
            times.cases += seconds(element)?.unwrap_or(0.0);
            *case = Some(Case {
                classname: clean(&attribute(element, "classname")?.unwrap_or_default()),
                name: clean(&attribute(element, "name")?.ok_or("a <testcase> without a name")?),
                ..Case::default()
            });
        }
        ("testcase", Some(_)) => return Err("a <testcase> inside another <testcase>".into()),
        ("failure" | "error", Some(case)) => {
            case.outcome = Outcome::Failed;
            if case.failure.is_none() {
                let message = attribute(element, "message")?.unwrap_or_default();
                case.in_failure_text = message.trim().is_empty();
                case.failure = Some(FailedCase {
                    classname: case.classname.clone(),
                    name: case.name.clone(),
                    kind: tag.clone(),
                    message: clean(message.trim()),
                });
            }
        }
        ("skipped", Some(case)) if case.outcome == Outcome::Passed => case.outcome = Outcome::Skipped,
        ("flakyFailure" | "flakyError" | "rerunFailure" | "rerunError", Some(case)) => case.flaky = true,
        _ => {}
    }
    Ok(())
}

/// An element closes: a case is counted; a failure's text stops being collected.
fn close(tag: &str, run: &mut Run, case: &mut Option<Case>) {
    match tag {
        "testcase" => {
            if let Some(case) = case.take() {
                match case.outcome {
                    Outcome::Passed => {
                        run.passed += 1;
                        run.flaky += u32::from(case.flaky);
                    }
                    Outcome::Skipped => run.skipped += 1,
                    Outcome::Failed => {
                        run.failed += 1;
                        if run.failures.len() < MAX_FAILURES_KEPT
                            && let Some(failure) = case.failure
                        {
                            run.failures.push(failure);
                        }
                    }
                }
            }
        }
        "failure" | "error" => {
            if let Some(case) = case.as_mut() {
                case.in_failure_text = false;
                if let Some(failure) = case.failure.as_mut() {
                    failure.message = clean(failure.message.trim());
                }
            }
        }
        _ => {}
    }
}

/// Adds text inside a failure that had no message.
fn collect(case: &mut Option<Case>, text: &str) {
    if let Some(case) = case.as_mut()
        && case.in_failure_text
        && let Some(failure) = case.failure.as_mut()
        && failure.message.chars().count() < MAX_MESSAGE_CHARS
    {
        failure.message.push_str(text);
        failure.message = bounded(&failure.message);
    }
}

fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn local_name(element: &BytesStart<'_>) -> String {
    element.local_name().as_ref().to_string()
}

fn attribute(element: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        if attribute.key.local_name().as_ref() == name {
            let value = attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| e.to_string())?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// The `time=` attribute, in seconds (a `,` decimal separator, as some locales write, is read too).
fn seconds(element: &BytesStart<'_>) -> Result<Option<f64>, String> {
    match attribute(element, "time")? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => {
            let value: f64 = text.trim().replace(',', ".").parse().map_err(|_| format!("time=\"{text}\" is not a number of seconds"))?;
            if value.is_finite() && value >= 0.0 { Ok(Some(value)) } else { Err(format!("time=\"{text}\" is not a duration")) }
        }
    }
}

/// The 1-based line and column of byte `offset` in `text`.
fn position_error(text: &str, offset: usize, message: String) -> ParseError {
    let offset = (0..=offset).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let (line, column) = line_and_column(&text.as_bytes()[..offset]);
    ParseError { line, column, message }
}

/// The 1-based line and column just after `before` (valid UTF-8 text).
fn line_and_column(before: &[u8]) -> (u64, u64) {
    let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let last = before.iter().rposition(|&b| b == b'\n').map_or(before, |i| &before[i + 1..]);
    let column = String::from_utf8_lossy(last).chars().count() as u64 + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pytest_report_counts_its_cases_and_keeps_failure_messages_decoded() {
        let run = parse(include_str!("../tests/fixtures/junit/pytest.xml")).unwrap();
        assert_eq!((run.passed, run.failed, run.skipped, run.flaky), (1, 2, 1, 0));
        assert_eq!(run.name.as_deref(), Some("pytest tests"));
        assert_eq!(run.duration_ms, Some(50), "the suite's time=\"0.050\"");
        let failure = &run.failures[0];
        assert_eq!(
            (failure.classname.as_str(), failure.name.as_str(), failure.kind.as_str()),
            ("test_upload", "test_large_pdf_is_rejected_with_a_clear_message", "failure")
        );
        assert!(failure.message.starts_with("AssertionError: the user sees <the wrong> & unclear message\nassert"), "{}", failure.message);
        assert_eq!(run.failures[1].kind, "error");
        assert_eq!(run.failures[1].message, "failed on setup with \"RuntimeError: could not reach the test bucket\"");
    }

    #[test]
    fn a_nextest_report_keeps_the_panic_message() {
        let run = parse(include_str!("../tests/fixtures/junit/nextest.xml")).unwrap();
        // nextest leaves ignored tests out of its report.
        assert_eq!((run.passed, run.failed, run.skipped), (1, 1, 0));
        assert_eq!((run.name.as_deref(), run.duration_ms), (Some("upload-checks"), Some(186)));
        let failure = &run.failures[0];
        assert_eq!((failure.classname.as_str(), failure.name.as_str()), ("upload_checks", "tests::large_pdf_message_names_the_limit"));
        assert!(failure.message.starts_with("thread 'tests::large_pdf_message_names_the_limit' ("), "{}", failure.message);
        assert!(failure.message.ends_with("panicked at src/lib.rs:7:46"), "{}", failure.message);
    }

    #[test]
    fn a_playwright_report_names_its_cases_by_describe_and_title() {
        let run = parse(include_str!("../tests/fixtures/junit/playwright.xml")).unwrap();
        assert_eq!((run.passed, run.failed, run.skipped), (1, 1, 1));
        assert_eq!(run.name.as_deref(), Some("Phase 3"));
        assert_eq!(run.duration_ms, Some(686), "the root's time=\"0.686…\"");
        let failure = &run.failures[0];
        assert_eq!((failure.classname.as_str(), failure.name.as_str()), ("upload.spec.ts", "async upload › a large PDF shows the limit"));
        assert_eq!(failure.message, "the message names the limit", "the message, not the CDATA trace");
    }

    #[test]
    fn a_retried_pass_counts_as_passed_and_a_failure_without_message_keeps_its_text() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="1" errors="0" time="1.5">
  <testsuite name="server::guard" tests="3" time="1.2">
    <testcase name="rolls_back" classname="server::guard" time="0.2">
      <flakyFailure message="timed out" type="test failure"/>
    </testcase>
    <testcase name="alerts" classname="server::guard" time="0.3"><failure type="test failure"><![CDATA[thread panicked at guard.rs:10:
left: 1, right: 2]]></failure></testcase>
    <testcase name="ignored" classname="server::guard"><skipped/></testcase>
  </testsuite>
</testsuites>"#;
        let run = parse(xml).unwrap();
        assert_eq!((run.passed, run.failed, run.skipped, run.flaky, run.tests()), (1, 1, 1, 1, 3));
        assert_eq!(run.duration_ms, Some(1500), "the root's time wins");
        assert_eq!(run.failures[0].message, "thread panicked at guard.rs:10:\nleft: 1, right: 2");
    }

    #[test]
    fn a_lone_testsuite_is_a_report_and_times_fall_back_to_the_cases() {
        let run =
            parse(r#"<testsuite name="Phase 1"><testcase name="a" time="0.25"/><testcase name="b" time="0,5"/></testsuite>"#).unwrap();
        assert_eq!((run.name.as_deref(), run.passed, run.duration_ms), (Some("Phase 1"), 2, Some(750)));
        assert_eq!(parse("<testsuites/>").unwrap().tests(), 0);
    }

    #[test]
    fn malformed_reports_are_refused_with_their_line_and_column() {
        let truncated = parse("<testsuites>\n  <testsuite name=\"s\">\n    <testcase name=\"a\"/>").unwrap_err();
        assert_eq!((truncated.line, truncated.column), (3, 25), "{truncated}");
        assert_eq!(truncated.message, "the report ends before <testsuite> is closed");
        let cut = "<testsuites>\n  <testsuite name=\"s\">\n    <testcase name=\"a\">\n  </testsuite>\n</testsuites>";
        let error = parse(cut).unwrap_err();
        assert_eq!(error.line, 4, "{error}");
        assert!(error.message.contains("testcase"), "{error}");
        let error = parse("<html><body/></html>").unwrap_err();
        assert_eq!((error.line, error.column), (1, 7), "{error}");
        assert!(error.message.contains("found <html>"), "{error}");
        let error = parse("<testsuite>\n<testcase classname=\"x\"/></testsuite>").unwrap_err();
        assert_eq!((error.line, error.message.as_str()), (2, "a <testcase> without a name"));
        let error = parse("<testsuite><testcase name=\"a\" time=\"soon\"/></testsuite>").unwrap_err();
        assert!(error.message.contains("time=\"soon\""), "{error}");
        assert!(parse("").unwrap_err().message.contains("no <testsuites>"));
        assert!(
            parse("<testsuite><testcase name=\"a\">&bogus;</testcase></testsuite>").is_ok(),
            "an unknown entity outside a failure is ignored"
        );
    }

    #[test]
    fn nesting_is_bounded_and_an_empty_report_name_gives_way_to_the_suites() {
        let deep = format!("<testsuite>{}", "<a>".repeat(MAX_DEPTH + 10));
        let error = parse(&deep).unwrap_err();
        assert_eq!(error.message, format!("elements nested deeper than {MAX_DEPTH}"));
        // Playwright's default root has `name=""`.
        let run =
            parse(r#"<testsuites id="" name=""><testsuite name="upload.spec.ts"><testcase name="a"/></testsuite></testsuites>"#).unwrap();
        assert_eq!(run.name.as_deref(), Some("upload.spec.ts"));
    }

    #[test]
    fn what_is_kept_of_failures_is_bounded_but_every_case_is_counted() {
        let long = "x".repeat(MAX_MESSAGE_CHARS + 500);
        let cases: String =
            (0..MAX_FAILURES_KEPT + 50).map(|i| format!(r#"<testcase name="t{i}"><failure message="{long}"/></testcase>"#)).collect();
        let run = parse(&format!("<testsuite>{cases}</testsuite>")).unwrap();
        assert_eq!(run.failed as usize, MAX_FAILURES_KEPT + 50);
        assert_eq!(run.failures.len(), MAX_FAILURES_KEPT);
        assert_eq!(run.failures[0].message.chars().count(), MAX_MESSAGE_CHARS + 1, "cut, with an ellipsis");
    }

    proptest::proptest! {
        /// Any text is read or refused with a position inside it, never a panic.
        #[test]
        fn any_text_is_read_or_refused_without_panicking(text in "(<testsuites>|<testsuite name=\"s\">|<testcase name=\"c\">|</testcase>|</testsuite>|<failure message=\"m\">|</failure>|<skipped/>|&amp;|&#0;|<!\\[CDATA\\[x\\]\\]>|\\PC){0,40}") {
            if let Err(error) = parse(&text) {
                let lines = text.lines().count().max(1) as u64;
                proptest::prop_assert!(error.line >= 1 && error.line <= lines + 1, "{error} in {text:?}");
            }
        }
    }
}
