//! The `rampart` command as an operator runs it.

use std::process::Command;

fn rampart(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart")).args(args).output().expect("rampart runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn plan_check_accepts_the_shipped_plan() {
    let plan = concat!(env!("CARGO_MANIFEST_DIR"), "/../plans/async-upload.toml");
    let (ok, stdout, stderr) = rampart(&["plan", "check", plan]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok — “Async upload rollout”, 5 stages"), "{stdout}");
    // The power planner at the plan's stated 20,000 uploads an hour: every stage decides in time.
    assert!(
        stdout.contains(
            "  stage 1 “1% rollout”: ≈ 5,148 treatment uploads (success rate), ≈ 26 h at 200 an hour; 9 in 10 stages within ≈ 7,896 (≈ 39 h): within its 2d soak"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("warning:"), "{stdout}");
}

#[test]
fn plan_check_warns_when_a_soak_is_too_short_for_the_stated_traffic() {
    let dir = std::env::temp_dir().join(format!("rampart-cli-power-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../plans/async-upload.toml")).unwrap();
    let quiet = dir.join("quiet.toml");
    std::fs::write(&quiet, source.replacen("uploads_per_hour = 20000", "uploads_per_hour = 1000", 1)).unwrap();
    let (ok, stdout, stderr) = rampart(&["plan", "check", quiet.to_str().unwrap()]);
    assert!(ok, "a warning leaves the plan valid: {stderr}");
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  warning: ")).collect();
    assert_eq!(
        warnings,
        [
            "  warning: stage 1 “1% rollout”: ≈ 5,148 treatment uploads (success rate), ≈ 21 days at 10 an hour; 9 in 10 stages within ≈ 7,896 (≈ 33 days): longer than its 2d soak"
        ],
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plan_check_names_the_line_and_field_of_each_mistake() {
    let dir = std::env::temp_dir().join(format!("rampart-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../plans/async-upload.toml")).unwrap();

    let out_of_range = dir.join("out-of-range.toml");
    std::fs::write(&out_of_range, source.replacen("percentage = 50 }", "percentage = 500 }", 1)).unwrap();
    let line = source.lines().position(|l| l.contains("percentage = 50 }")).unwrap() + 1;
    let (ok, _, stderr) = rampart(&["plan", "check", out_of_range.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains(&format!("line {line}")) && stderr.contains("500 is not a percentage"), "{stderr}");

    let narrowing = dir.join("narrowing.toml");
    std::fs::write(&narrowing, source.replacen("percentage = 50 }", "percentage = 5 }", 1)).unwrap();
    let (ok, _, stderr) = rampart(&["plan", "check", narrowing.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("stages[3].flag.percentage: 5% is lower than the previous stage's 10%"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_refuses_a_bad_plan_before_touching_any_database() {
    let dir = std::env::temp_dir().join(format!("rampart-cli-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "key = \"x\"\nname = \"X\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--plan", bad.to_str().unwrap(), "--data-dir", dir.join("data").to_str().unwrap()])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("the plan is invalid") && stderr.contains("missing field `flag`"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Configuration is checked before anything is touched: a too-short admin password stops the
/// start before the private cluster is created (it used to be refused only after the cluster
/// was initialised and the rollout created).
#[test]
fn serve_refuses_a_short_admin_password_before_creating_the_private_cluster() {
    let dir = std::env::temp_dir().join(format!("rampart-cli-password-{}", std::process::id()));
    let data = dir.join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--data-dir", data.to_str().unwrap(), "--addr", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env("RAMPART_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("RAMPART_ADMIN_PASSWORD") && stderr.contains("at least 12 characters"), "{stderr}");
    assert!(!data.exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_log_format_is_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart")).args(["plan", "check"]).env("RAMPART_LOG_FORMAT", "xml").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("RAMPART_LOG_FORMAT is `xml`"), "{stderr}");
}
