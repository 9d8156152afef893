//! The command line of `setup-hugepages`, parsed by hand (xtask stays std only).

/// What the run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Reserve pages and mount (the default).
    Setup,
    /// Report and judge, change nothing.
    Check,
    /// Unmount and release the pages.
    Teardown,
}

/// The parsed options, with defaults filled in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// Setup, check or teardown.
    pub(crate) command: Command,
    /// Print the actions instead of carrying them out.
    pub(crate) dry_run: bool,
    /// `--help` was given: print the usage and nothing else.
    pub(crate) help: bool,
    /// 2 MiB pages wanted per node.
    pub(crate) huge: u64,
    /// 1 GiB pages wanted per node.
    pub(crate) gigantic: u64,
    /// Only this NUMA node.
    pub(crate) node: Option<u32>,
    /// Mode of the mount roots.
    pub(crate) mode: u32,
    /// Owner of the mount roots; `None`: the effective uid.
    pub(crate) uid: Option<u32>,
    /// Group of the mount roots; `None`: the effective gid.
    pub(crate) gid: Option<u32>,
}

/// 32 huge pages (64 MiB) per node: enough for the test suite's regions, small enough for any CI
/// machine.
pub(crate) const DEFAULT_HUGE: u64 = 32;
/// One gigantic page per node: the least that lets the 1 GiB tests run.
pub(crate) const DEFAULT_GIGANTIC: u64 = 1;
/// Sticky and writable by all, like /tmp: any user may create a region; each region file keeps the
/// mode its creator gives it, and only its owner may remove it.
pub(crate) const DEFAULT_MODE: u32 = 0o1777;

impl Default for Options {
    fn default() -> Self {
        Self {
            command: Command::Setup,
            dry_run: false,
            help: false,
            huge: DEFAULT_HUGE,
            gigantic: DEFAULT_GIGANTIC,
            node: None,
            mode: DEFAULT_MODE,
            uid: None,
            gid: None,
        }
    }
}

/// Parses the arguments after `setup-hugepages`. `Err` is a usage error, worded for the user.
pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut counts_given = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        // `--huge=16` and `--huge 16` both work.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg.as_str(), None),
        };
        let takes_value =
            matches!(flag, "--huge" | "--gigantic" | "--node" | "--mode" | "--uid" | "--gid");
        if !takes_value && inline_value.is_some() {
            return Err(format!("`{flag}` takes no value"));
        }
        if seen.contains(&flag) {
            return Err(format!("`{flag}` given twice"));
        }
        let mut value = || -> Result<&str, String> {
            match inline_value {
                Some(value) => Ok(value),
                None => {
                    args.next().map(String::as_str).ok_or_else(|| format!("`{flag}` needs a value"))
                }
            }
        };
        match flag {
            "-h" | "--help" => options.help = true,
            "--dry-run" => options.dry_run = true,
            "--check" | "--teardown" => {
                if options.command != Command::Setup {
                    return Err("give at most one of --check and --teardown".to_owned());
                }
                options.command =
                    if flag == "--check" { Command::Check } else { Command::Teardown };
            }
            "--huge" => {
                options.huge = number(flag, value()?)?;
                counts_given = true;
            }
            "--gigantic" => {
                options.gigantic = number(flag, value()?)?;
                counts_given = true;
            }
            "--node" => options.node = Some(number(flag, value()?)?),
            "--mode" => options.mode = mode(value()?)?,
            "--uid" => options.uid = Some(number(flag, value()?)?),
            "--gid" => options.gid = Some(number(flag, value()?)?),
            _ => return Err(format!("unknown option `{arg}`")),
        }
        seen.push(flag);
    }
    if options.command == Command::Teardown && counts_given {
        return Err(
            "--teardown releases every page on the node(s): it takes no --huge or --gigantic"
                .to_owned(),
        );
    }
    Ok(options)
}

/// A decimal count or id.
fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{flag}` wants a non-negative decimal number, got `{value}`"))
}

/// An octal mode that hugetlbfs accepts: permission bits and the sticky bit.
fn mode(value: &str) -> Result<u32, String> {
    let digits = value.strip_prefix("0o").unwrap_or(value);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o1777 && !digits.is_empty() => Ok(mode),
        _ => Err(format!("`--mode` wants an octal mode from 0 to 1777, got `{value}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Options, String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    #[test]
    fn no_arguments_means_setup_with_the_defaults() {
        assert_eq!(parse_str(""), Ok(Options::default()));
        let options = Options::default();
        assert_eq!((options.huge, options.gigantic, options.mode), (32, 1, 0o1777));
    }

    #[test]
    fn values_come_separate_or_after_an_equals_sign() {
        let options =
            parse_str("--huge 16 --gigantic=0 --node 1 --mode 0755 --uid=1000 --gid 100 --dry-run");
        assert_eq!(
            options,
            Ok(Options {
                huge: 16,
                gigantic: 0,
                node: Some(1),
                mode: 0o755,
                uid: Some(1000),
                gid: Some(100),
                dry_run: true,
                ..Options::default()
            })
        );
    }

    #[test]
    fn check_and_teardown_are_commands() {
        assert_eq!(parse_str("--check").map(|o| o.command), Ok(Command::Check));
        assert_eq!(
            parse_str("--teardown --dry-run").map(|o| (o.command, o.dry_run)),
            Ok((Command::Teardown, true))
        );
        assert!(parse_str("--check --teardown").is_err());
        assert!(parse_str("--teardown --huge 3").is_err());
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for line in [
            "--bogus",
            "extra",
            "--huge",
            "--huge -1",
            "--huge lots",
            "--mode 8",
            "--mode 4755",
            "--mode ''",
            "--dry-run=yes",
            "--huge 1 --huge 2",
            "--node=",
        ] {
            assert!(parse_str(line).is_err(), "{line} should be refused");
        }
    }

    #[test]
    fn help_is_recognised() {
        assert!(parse_str("--help").is_ok_and(|o| o.help));
        assert!(parse_str("-h").is_ok_and(|o| o.help));
    }
}
