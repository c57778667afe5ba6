//! Trino's type syntax in casts: `array(T)` and `row(name T, …)` (`json` inside them),
//! written in DataFusion's (`ARRAY<T>`, `STRUCT<name T, …>`, `VARCHAR`) before parsing,
//! since the generic parser cannot read the former. Anonymous row fields are named `c0`,
//! `c1`, … (as DataFusion names them); `map(K, V)` is refused (no DataFusion SQL type).

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Trino's `VALUES 1, 2` (rows of one column without parentheses) as `VALUES (1), (2)`,
/// which the generic parser needs; `None` when there is nothing to change.
pub fn rewrite_values(sql: &str) -> Option<String> {
    if !sql.to_ascii_lowercase().contains("values") {
        return None;
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let mut out = String::with_capacity(sql.len() + 8);
    let mut changed = false;
    let mut i = 0;
    while i < tokens.len() {
        out.push_str(&tokens[i].to_string());
        let is_values = matches!(&tokens[i], Token::Word(w) if w.keyword == Keyword::VALUES);
        i += 1;
        if !is_values {
            continue;
        }
        // Each row: up to a `,` at depth 0, or the end of the VALUES list.
        while let Some((start, first)) = next_solid(&tokens, i) {
            out.extend(tokens[i..start].iter().map(|t| t.to_string()));
            let bare = !matches!(first, Token::LParen);
            let mut depth = 0i32;
            let mut end = start;
            while end < tokens.len() {
                match &tokens[end] {
                    Token::LParen | Token::LBracket => depth += 1,
                    Token::RParen | Token::RBracket if depth == 0 => break,
                    Token::RParen | Token::RBracket => depth -= 1,
                    Token::Comma if depth == 0 => break,
                    Token::SemiColon if depth == 0 => break,
                    Token::Word(w)
                        if depth == 0
                            && matches!(
                                w.keyword,
                                Keyword::ORDER
                                    | Keyword::LIMIT
                                    | Keyword::OFFSET
                                    | Keyword::UNION
                                    | Keyword::EXCEPT
                                    | Keyword::INTERSECT
                                    | Keyword::FETCH
                            ) =>
                    {
                        break;
                    }
                    _ => {}
                }
                end += 1;
            }
            let item: String = tokens[start..end].iter().map(|t| t.to_string()).collect();
            if bare {
                out.push('(');
                out.push_str(item.trim_end());
                out.push(')');
                out.push_str(&item[item.trim_end().len()..]);
                changed = true;
            } else {
                out.push_str(&item);
            }
            i = end;
            match tokens.get(i) {
                Some(Token::Comma) => {
                    out.push(',');
                    i += 1;
                }
                _ => break,
            }
        }
    }
    changed.then_some(out)
}

/// The text with Trino types after `AS` rewritten, `None` when there are none, or why a
/// type is not supported.
pub fn rewrite(sql: &str) -> Result<Option<String>, String> {
    let lower = sql.to_ascii_lowercase();
    if !(lower.contains("array")
        || lower.contains("row")
        || lower.contains("map")
        || lower.contains("json"))
    {
        return Ok(None);
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(None);
    };
    let mut out = String::with_capacity(sql.len() + 16);
    let mut changed = false;
    let mut i = 0;
    let mut after_as = false;
    while i < tokens.len() {
        let t = &tokens[i];
        if after_as
            && let Token::Word(w) = t
            && w.quote_style.is_none()
        {
            let name = w.value.to_ascii_lowercase();
            let structured = ["array", "row", "map"].contains(&name.as_str())
                && matches!(next_solid(&tokens, i + 1), Some((_, Token::LParen)));
            // A plain `AS json` stays: CAST(x AS JSON) is serialisation (tojson.rs).
            if structured {
                let (text, end) = parse_type(&tokens, i)?;
                out.push_str(&text);
                i = end;
                changed = true;
                after_as = false;
                continue;
            }
        }
        match t {
            Token::Whitespace(_) => {}
            Token::Word(w) => after_as = w.keyword == Keyword::AS && w.quote_style.is_none(),
            _ => after_as = false,
        }
        out.push_str(&t.to_string());
        i += 1;
    }
    Ok(changed.then_some(out))
}

fn next_solid(tokens: &[Token], mut i: usize) -> Option<(usize, &Token)> {
    while i < tokens.len() {
        if !matches!(tokens[i], Token::Whitespace(_)) {
            return Some((i, &tokens[i]));
        }
        i += 1;
    }
    None
}

/// The type starting at `i`, in DataFusion's syntax, and the index after it.
fn parse_type(tokens: &[Token], i: usize) -> Result<(String, usize), String> {
    let Some((i, Token::Word(w))) = next_solid(tokens, i) else {
        return Err("a type was expected after AS".into());
    };
    let name = w.value.to_ascii_lowercase();
    let open = match next_solid(tokens, i + 1) {
        Some((j, Token::LParen)) if ["array", "row", "map"].contains(&name.as_str()) => j,
        _ => return Ok(plain_type(tokens, i)),
    };
    let mut parts = Vec::new();
    let mut j = open + 1;
    loop {
        let Some((k, t)) = next_solid(tokens, j) else {
            return Err(format!("{name}(…) is not closed"));
        };
        if matches!(t, Token::RParen) {
            j = k + 1;
            break;
        }
        // A row field may be named: `name type` (the name a word not followed by `(`).
        let mut field = None;
        if name == "row"
            && let Token::Word(f) = t
            && let Some((_, Token::Word(_))) = next_solid(tokens, k + 1)
            && !matches!(next_solid(tokens, k + 1), Some((_, Token::Word(n))) if n.keyword == Keyword::WITH)
        {
            field = Some(match f.quote_style {
                Some(q) => format!("{q}{}{q}", f.value),
                None => f.value.clone(),
            });
            j = k + 1;
        } else {
            j = k;
        }
        let (ty, end) = parse_type(tokens, j)?;
        parts.push((field, ty));
        j = end;
        match next_solid(tokens, j) {
            Some((k, Token::Comma)) => j = k + 1,
            Some((_, Token::RParen)) => {}
            _ => return Err(format!("{name}(…): `,` or `)` expected")),
        }
    }
    let text = match name.as_str() {
        "array" if parts.len() == 1 => format!("ARRAY<{}>", parts[0].1),
        "row" if !parts.is_empty() => {
            let fields: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(n, (f, t))| format!("{} {t}", f.clone().unwrap_or_else(|| format!("c{n}"))))
                .collect();
            format!("STRUCT<{}>", fields.join(", "))
        }
        "map" => {
            return Err(
                "CAST to map(K, V) is not supported: build maps with map(ARRAY[…], ARRAY[…])"
                    .into(),
            );
        }
        _ => return Err(format!("{name}(…) has the wrong number of types")),
    };
    Ok((text, j))
}

/// A scalar type: its words and parenthesised arguments up to a `,` or `)` of the
/// enclosing type (or the end of the cast); `json` is VARCHAR.
fn plain_type(tokens: &[Token], start: usize) -> (String, usize) {
    let mut depth = 0;
    let mut end = start;
    while end < tokens.len() {
        match &tokens[end] {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => break,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => break,
            _ => {}
        }
        end += 1;
    }
    // Trailing blanks stay with the text around the type.
    while end > start && matches!(tokens[end - 1], Token::Whitespace(_)) {
        end -= 1;
    }
    let text: String = tokens[start..end].iter().map(|t| t.to_string()).collect();
    if text.eq_ignore_ascii_case("json") {
        return ("VARCHAR".to_string(), end);
    }
    (text, end)
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn trino_types_in_datafusion_syntax() {
        let r = |s: &str| rewrite(s).unwrap().unwrap_or_else(|| s.to_string());
        assert_eq!(
            r("SELECT CAST(a AS array(integer))"),
            "SELECT CAST(a AS ARRAY<integer>)"
        );
        assert_eq!(
            r("SELECT CAST(x AS ROW(a bigint, b array(varchar(3))))"),
            "SELECT CAST(x AS STRUCT<a bigint, b ARRAY<varchar(3)>>)"
        );
        assert_eq!(
            r("SELECT CAST(x AS row(double, json))"),
            "SELECT CAST(x AS STRUCT<c0 double, c1 VARCHAR>)"
        );
        assert_eq!(
            r("SELECT CAST(j AS json) AS row"),
            "SELECT CAST(j AS json) AS row"
        );
        assert_eq!(
            r("SELECT array[1] AS arr, row_number() OVER () FROM t"),
            "SELECT array[1] AS arr, row_number() OVER () FROM t"
        );
        assert!(rewrite("SELECT CAST(m AS map(varchar, integer))").is_err());
        let v = |s: &str| super::rewrite_values(s).unwrap_or_else(|| s.to_string());
        assert_eq!(
            v("SELECT * FROM (VALUES 1, 2) t(x)"),
            "SELECT * FROM (VALUES (1), (2)) t(x)"
        );
        assert_eq!(
            v("SELECT * FROM (VALUES ARRAY[1, null]) a(x)"),
            "SELECT * FROM (VALUES (ARRAY[1, null])) a(x)"
        );
        assert_eq!(v("VALUES (1, 'a'), (2, 'b')"), "VALUES (1, 'a'), (2, 'b')");
        assert_eq!(
            v("SELECT x FROM (VALUES 'a', 'b') LIMIT 1"),
            "SELECT x FROM (VALUES ('a'), ('b')) LIMIT 1"
        );
    }
}
