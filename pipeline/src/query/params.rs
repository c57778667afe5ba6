//! Query parameters (Flight SQL prepared statements): JDBC and ADBC send `?` placeholders,
//! DataFusion binds `$1, $2, …`; the `?`s are numbered in order, outside string literals,
//! quoted identifiers and comments.

/// `sql` with every `?` placeholder as `$n`; `None` if it has none.
pub fn number_placeholders(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            // 'it''s' and "a ""quoted"" name": the doubled quote stays inside.
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                n += 1;
                out.push_str(&sql[copied..i]);
                out.push_str(&format!("${n}"));
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    if n == 0 {
        return None;
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::number_placeholders as n;

    #[test]
    fn question_marks_become_numbered_outside_strings_and_comments() {
        assert_eq!(n("SELECT 1"), None);
        assert_eq!(
            n("SELECT * FROM t WHERE a = ? AND b > ?").as_deref(),
            Some("SELECT * FROM t WHERE a = $1 AND b > $2")
        );
        assert_eq!(
            n("SELECT '?', 'it''s ?', \"col?\" FROM t -- why?\nWHERE x = ? /* ? */").as_deref(),
            Some("SELECT '?', 'it''s ?', \"col?\" FROM t -- why?\nWHERE x = $1 /* ? */")
        );
        assert_eq!(n("SELECT 'unterminated ?"), None);
        assert_eq!(n("SELECT ?").as_deref(), Some("SELECT $1"));
    }
}
