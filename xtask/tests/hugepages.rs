//! `cargo xtask setup-hugepages` as a user runs it, limited to what changes nothing on the
//! machine (usage errors, `--help`, `--check` and `--dry-run` on a fresh BASE), so that it runs
//! anywhere, as any user. The real setup is exercised by CI's `.ci/run`.

use std::path::PathBuf;
use std::process::{Command, Output};

/// BASE for these runs: a folder that does not exist (and must not come to exist).
fn base() -> PathBuf {
    std::env::temp_dir().join(format!("xtask-hugepages-cli-{}", std::process::id()))
}

/// Runs `xtask setup-hugepages ARGS` with BASE at [`base`].
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("setup-hugepages")
        .args(args)
        .env("SHMKIT_PATH", base())
        .output()
        .expect("the xtask binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether this kernel has hugetlbfs; without it every mode fails, with a message that says so.
fn has_hugetlbfs() -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|text| text.contains("hugetlbfs"))
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    for args in [&["--bogus"][..], &["--huge"], &["--check", "--teardown"], &["--mode", "9"]] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("usage: cargo xtask setup-hugepages"), "{args:?}");
    }
}

#[test]
fn help_lists_the_options_and_defaults() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let text = stdout(&output);
    for needle in [
        "--huge N",
        "default 32",
        "--gigantic N",
        "--node K",
        "--mode OCTAL",
        "default 1777",
        "--check",
        "--teardown",
        "--dry-run",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
}

#[test]
fn check_on_a_base_without_mounts_fails_and_names_them() {
    let output = run(&["--check"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    if has_hugetlbfs() {
        let text = stdout(&output);
        assert!(text.contains("missing: no hugetlbfs mount with pagesize=2M at"), "{text}");
        assert!(stderr(&output).contains("problem(s)"), "{}", stderr(&output));
    } else {
        assert!(stderr(&output).contains("no hugetlbfs"), "{}", stderr(&output));
    }
}

#[test]
fn dry_run_prints_the_mounts_it_would_make_and_makes_none() {
    let output = run(&["--dry-run", "--huge", "1", "--gigantic", "0"]);
    if !has_hugetlbfs() {
        assert_eq!(output.status.code(), Some(1));
        return;
    }
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("would create folder"), "{text}");
    assert!(text.contains("would mount hugetlbfs pagesize=2M at"), "{text}");
    assert!(!text.contains("pagesize=1G"), "--gigantic 0 leaves 1 GiB pages alone:\n{text}");
    assert!(!base().exists(), "a dry run creates nothing");
}
