//! `cargo xtask ci`: what CI runs and what a developer runs before pushing. Each step is printed
//! before it runs; the first failure stops the run.

use crate::cmd::{self, Error};
use crate::{loom, workspace};

pub(crate) fn run(args: &[String]) -> Result<(), Error> {
    if let Some(arg) = args.first() {
        return Err(Error::Message(format!("`cargo xtask ci` takes no arguments, got `{arg}`")));
    }
    let root = workspace::root()?;

    cmd::run_step("format", &mut cmd::cargo(&root, &["fmt", "--all", "--", "--check"]))?;
    cmd::run_step(
        "clippy",
        &mut cmd::cargo(&root, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    )?;
    // The `ci` profile: optimised (the multi-process and randomized tests are heavy) with debug
    // assertions and overflow checks on.
    cmd::run_step("tests", &mut cmd::cargo(&root, &["test", "--workspace", "--profile", "ci"]))?;
    let mut doc = cmd::cargo(&root, &["doc", "--workspace", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    cmd::run_step("docs", &mut doc)?;

    // Picking one crate as a dependency must keep working: build each library alone, bare.
    for krate in workspace::crates(&root)?.into_iter().filter(|krate| krate.is_library) {
        cmd::run_step(
            &format!("{} alone, --no-default-features", krate.name),
            &mut cmd::cargo(&root, &["build", "-p", &krate.name, "--no-default-features"]),
        )?;
    }

    loom::run(&[])?;
    println!("\nxtask ci: all steps passed");
    Ok(())
}
