//! Tidy checks on the whole tree, run as ordinary tests so that `cargo test` catches them (the
//! rust-analyzer way): project rules that a reviewer would otherwise have to remember.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the workspace").to_owned()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.rs` file under the given folders, recursively.
fn rust_files(folders: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name == "target") {
                    continue;
                }
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for folder in folders {
        walk(&root().join(folder), &mut out);
    }
    out.sort();
    out
}

fn crate_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("crates"))
        .expect("crates/ exists")
        .flatten()
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether a line is code that opens an `unsafe` block (not a comment, an `unsafe fn`, or an
/// `unsafe impl`).
fn opens_unsafe_block(line: &str) -> bool {
    let code = line.trim_start();
    if code.starts_with("//") {
        return false;
    }
    code.match_indices("unsafe").any(|(at, _)| {
        let before = &code[..at];
        let after = code[at + "unsafe".len()..].trim_start();
        let word_start = before.chars().last().is_none_or(|c| !c.is_alphanumeric() && c != '_');
        word_start && after.starts_with('{')
    })
}

#[test]
fn every_unsafe_block_has_a_safety_comment() {
    let mut missing = Vec::new();
    for file in rust_files(&["crates", "xtask", "benches", "testkit"]) {
        let text = read(&file);
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if !opens_unsafe_block(line) {
                continue;
            }
            // The three lines above (a statement may open the block on its second line): a
            // SAFETY comment longer than that buries its tag; say the invariant in three lines.
            let window = &lines[index.saturating_sub(3)..=index];
            if !window.iter().any(|line| line.contains("SAFETY:")) {
                missing.push(format!("{}:{}", file.display(), index + 1));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "unsafe blocks without `// SAFETY:` above them:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_library_denies_unsafe_op_in_unsafe_fn_or_forbids_unsafe() {
    for name in crate_names() {
        let lib = root().join("crates").join(&name).join("src/lib.rs");
        if !lib.is_file() {
            continue;
        }
        let text = read(&lib);
        assert!(
            text.contains("#![forbid(unsafe_code)]")
                || text.contains("#![deny(unsafe_op_in_unsafe_fn)]"),
            "{} must say `#![forbid(unsafe_code)]` or `#![deny(unsafe_op_in_unsafe_fn)]`",
            lib.display()
        );
    }
}

#[test]
fn no_ignored_tests() {
    let mut found = Vec::new();
    for file in rust_files(&["crates", "xtask", "benches", "testkit"]) {
        // This file names the attribute to look for it.
        if file.ends_with("tidy.rs") {
            continue;
        }
        for (index, line) in read(&file).lines().enumerate() {
            if line.trim_start().starts_with("#[ignore") {
                found.push(format!("{}:{}", file.display(), index + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "assert today's behaviour with a FIXME instead of #[ignore]:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_crate_is_in_the_readme_the_code_map_and_the_facade() {
    let readme = read(&root().join("README.md"));
    let code_map = read(&root().join("docs/architecture.md"));
    let facade = read(&root().join("crates/shmkit/Cargo.toml"));
    for name in crate_names() {
        assert!(readme.contains(&format!("`{name}`")), "README.md's crate table lacks `{name}`");
        assert!(code_map.contains(&format!("`{name}`")), "docs/architecture.md lacks `{name}`");
        let is_layer = name != "shmkit" && name != "shmkit-cli";
        if is_layer {
            assert!(
                facade.contains(&format!("dep:{name}")),
                "the facade crates/shmkit has no feature for {name}"
            );
        }
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read(&root().join("README.md"));
    let ci = read(&root().join(".ci/run"));
    let command = readme
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("Tests: `").and_then(|rest| rest.strip_suffix('`')))
        .expect("README.md has a line `Tests: `<command>``");
    assert!(ci.contains(command), ".ci/run does not call the README's test command `{command}`");
}
