//! What commands print: aligned tables and `key: value` lists for people, JSON (the schemas in
//! `docs/cli.md`) for programs. Output goes to stdout in one write; a closed pipe
//! (`shmkit ls | head -1`) ends the command quietly, as it does for `ls`.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use crate::error::{CliError, Result};

/// Writes `text` to stdout. A reader that went away (`EPIPE`) is not an error.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(CliError::runtime(format!("cannot write to stdout: {error}")))
        }
        _ => Ok(()),
    }
}

/// Writes `value` as pretty JSON and a newline.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|error| CliError::runtime(format!("cannot write JSON: {error}")))?;
    text.push('\n');
    print(&text)
}

/// A table: a header row and rows of cells, columns padded to their widest cell. Columns listed
/// in `right` are right-aligned (numbers).
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|&title| title.to_owned()).collect(),
            rows: Vec::new(),
            right: Vec::new(),
        }
    }

    /// Right-aligns the columns at these indexes.
    #[must_use]
    pub fn right_align(mut self, columns: &[usize]) -> Self {
        self.right = columns.to_vec();
        self
    }

    /// Adds a row (as many cells as titles).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> =
            self.header.iter().map(|title| title.chars().count()).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(column) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                let width = widths.get(column).copied().unwrap_or(0);
                if column > 0 {
                    line.push_str("  ");
                }
                if self.right.contains(&column) {
                    let _ = write!(line, "{cell:>width$}");
                } else {
                    let _ = write!(line, "{cell:<width$}");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(key, _)| key.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let _ = writeln!(out, "{:<width$} {value}", format!("{key}:"));
    }
    out
}

/// Permission bits as `ls` and `ipcs` write them in octal: `0600`.
pub fn octal_mode(mode: u32) -> String {
    format!("{mode:04o}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut table = Table::new(&["NAME", "SIZE"]).right_align(&[1]);
        table.row(vec!["a".to_owned(), "4096".to_owned()]);
        table.row(vec!["longer".to_owned(), "1".to_owned()]);
        assert_eq!(table.render(), "NAME    SIZE\na       4096\nlonger     1\n");
        assert_eq!(fields(&[("a", "1".to_owned()), ("bbb", "2".to_owned())]), "a:   1\nbbb: 2\n");
        assert_eq!(octal_mode(0o600), "0600");
    }
}
