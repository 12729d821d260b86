//! Text columns, each as wide as its widest cell, as kubectl prints its tables.

/// Each row as one line: cells padded to their column's width and joined by `gap`, with
/// no trailing spaces.
pub(crate) fn align(rows: &[Vec<String>], gap: &str) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    rows.iter()
        .map(|row| {
            let padded: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join(gap).trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_with_no_trailing_space() {
        let rows = vec![
            vec!["NAME".to_owned(), "CPU".to_owned(), "NODE".to_owned()],
            vec!["web-1".to_owned(), "100m".to_owned(), String::new()],
            vec!["é".to_owned(), "1".to_owned(), "vm".to_owned()],
        ];
        assert_eq!(
            align(&rows, "   "),
            ["NAME    CPU    NODE", "web-1   100m", "é       1      vm"]
        );
    }
}
