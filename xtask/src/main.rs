//! `cargo xtask`: every chore of the project in one std-only binary, so that CI and developers run
//! the same steps (no scattered shell scripts).
//!
//! ```text
//! cargo xtask ci              fmt, clippy, tests, docs, per-crate builds, loom models
//! cargo xtask loom            the loom models only (RUSTFLAGS="--cfg loom", bounded preemptions)
//! cargo xtask bench [ARGS]    the criterion benchmarks (ARGS go to `cargo bench`)
//! cargo xtask setup-hugepages  reserve 2 MiB / 1 GiB pages per NUMA node, mount hugetlbfs (root)
//! ```

mod ci;
mod cmd;
mod hugepages;
mod loom;
mod workspace;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci            fmt check, clippy -D warnings, tests, docs -D warnings, each library crate built
                alone with --no-default-features, and the loom models; stops at the first failure
  loom          run the loom models of every crate that has them (tests/loom.rs, and src/**/loom_models.rs)
  bench [ARGS]  run the criterion benchmarks in benches/ (ARGS are passed to `cargo bench`)
  setup-hugepages [OPTIONS]
                reserve huge (2 MiB) and gigantic (1 GiB) pages on each NUMA node and mount
                hugetlbfs at $SHMKIT_PATH/.huge and .gigantic (default /mnt/.shmkit); also
                --check, --teardown, --dry-run (see `cargo xtask setup-hugepages --help`)
  help          this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "ci" => ci::run(rest),
        "loom" => loom::run(rest),
        "bench" => bench(rest),
        "setup-hugepages" => return hugepages::main(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &[String]) -> Result<(), cmd::Error> {
    let root = workspace::root()?;
    let mut command = cmd::cargo(&root, &["bench", "-p", "shmkit-benches"]);
    command.args(args);
    cmd::run_step("criterion benchmarks", &mut command)
}
