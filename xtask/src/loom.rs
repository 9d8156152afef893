//! `cargo xtask loom`: the loom models of every crate that has them.
//!
//! A crate's models live in `tests/loom.rs` (gated by `#![cfg(loom)]`) and take their atomics from
//! the crate's `primitive` shim, which swaps in loom's types under `--cfg loom`. Models that need
//! a crate's internals live in `src/**/loom_models.rs` (`#[cfg(all(test, loom))]`); a crate that
//! has such a file also runs its library tests under loom. The build goes to its own target folder
//! so that the flag does not invalidate the normal build cache.

use crate::cmd::{self, Error};
use crate::workspace;

/// The preemption bound: 2 finds the bugs that matter in small models and keeps CI in minutes.
const DEFAULT_MAX_PREEMPTIONS: &str = "2";

pub(crate) fn run(args: &[String]) -> Result<(), Error> {
    if let Some(arg) = args.first() {
        return Err(Error::Message(format!("`cargo xtask loom` takes no arguments, got `{arg}`")));
    }
    let root = workspace::root()?;
    let with_models: Vec<_> = workspace::crates(&root)?
        .into_iter()
        .filter(|krate| krate.dir.join("tests/loom.rs").is_file())
        .collect();
    if with_models.is_empty() {
        println!("\n==> loom models: no crate has tests/loom.rs yet, nothing to run");
        return Ok(());
    }
    let preemptions = std::env::var("LOOM_MAX_PREEMPTIONS")
        .unwrap_or_else(|_| DEFAULT_MAX_PREEMPTIONS.to_owned());
    for krate in with_models {
        let mut args =
            vec!["test", "--release", "-p", &krate.name, "--test", "loom", "--all-features"];
        if has_file_named(&krate.dir.join("src"), "loom_models.rs") {
            args.push("--lib");
        }
        let mut command = cmd::cargo(&root, &args);
        command
            .env("RUSTFLAGS", "--cfg loom")
            .env("LOOM_MAX_PREEMPTIONS", &preemptions)
            .env("CARGO_TARGET_DIR", root.join("target/loom"));
        cmd::run_step(&format!("loom models of {}", krate.name), &mut command)?;
    }
    Ok(())
}

/// Whether a file called `name` is in `dir` or below it.
fn has_file_named(dir: &std::path::Path, name: &str) -> bool {
    std::fs::read_dir(dir).into_iter().flatten().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() { has_file_named(&path, name) } else { entry.file_name() == name }
    })
}
