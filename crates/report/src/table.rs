//! Markdown tables, all drawn by one function so every table Lopper writes looks alike.

/// A column's alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A Markdown table with `columns` (title, alignment) and `rows` of cells; `|` in a cell is
/// escaped so it cannot split the row.
pub fn markdown(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let cells: Vec<String> = cells.map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(&mut columns.iter().map(|(t, _)| t.to_string()));
    let rules: Vec<&str> = columns
        .iter()
        .map(|(_, a)| match a {
            Align::Left => "---",
            Align::Right => "---:",
        })
        .collect();
    out += &format!("|{}|\n", rules.join("|"));
    for r in rows {
        out += &line(&mut r.iter().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_pipes_are_escaped() {
        let t = markdown(
            &[("method", Align::Left), ("accuracy", Align::Right)],
            &[vec!["a|b".into(), "97.2 %".into()]],
        );
        assert_eq!(t, "| method | accuracy |\n|---|---:|\n| a\\|b | 97.2 % |\n");
    }
}
