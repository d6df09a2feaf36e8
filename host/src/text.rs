//! Text output shared by the daemons' `status` commands.

use std::fmt::Write as _;

/// Lays out `rows` in left-aligned columns two spaces apart, as `vtysh` and
/// `birdc` print tables; the last cell of a row is not padded, and trailing
/// spaces are trimmed. Widths count characters, not bytes.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn columns_align_and_the_last_is_not_padded() {
        let t = table(&[
            row(&["Neighbor", "AS", "State"]),
            row(&["10.0.0.1", "65000", "Up"]),
        ]);
        assert_eq!(t, "Neighbor  AS     State\n10.0.0.1  65000  Up\n");
    }

    #[test]
    fn short_rows_and_wide_characters() {
        let t = table(&[row(&["é", "x"]), row(&["ab"]), row(&["", "", "z"])]);
        assert_eq!(t, "é   x\nab\n       z\n");
    }
}
