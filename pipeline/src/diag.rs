//! Diagnostics for configuration and schema files: file:line:col, the offending line with a
//! caret, and a hint — so a user fixes a mistake without reading our source.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A source file kept for error reporting.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl SourceFile {
    pub fn new(path: &Path, text: &str) -> Self {
        Self {
            path: path.to_path_buf(),
            text: Arc::from(text),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line.saturating_sub(1)).unwrap_or("")
    }

    /// An error at a span of this file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        let width = self.text[floor_char_boundary(&self.text, span.start)
            ..floor_char_boundary(&self.text, span.end.max(span.start))]
            .lines()
            .next()
            .map(|s| s.chars().count())
            .unwrap_or(1)
            .max(1);
        Diagnostic {
            file: self.path.clone(),
            line,
            col,
            width,
            snippet: self.line_text(line).to_string(),
            message: message.into(),
            hint: None,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem in a file, with where it is and what to do about it.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    width: usize,
    snippet: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// A problem with a whole file (it is missing or unreadable).
    pub fn file_level(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            width: 0,
            snippet: String::new(),
            message: message.into(),
            hint: None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        if !self.snippet.is_empty() {
            let gutter = self.line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{} | {}", self.line, self.snippet)?;
            writeln!(
                f,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(self.col.saturating_sub(1)),
                "^".repeat(self.width.max(1))
            )?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "  hint: {h}")?;
        }
        Ok(())
    }
}

/// All problems found in one validation pass (reported together, not one per run).
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            write!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// The closest of `candidates` to `name`, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&name.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// "did you mean `x`?" or a list of what is valid.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    match suggest(name, candidates.clone()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => {
            let all: Vec<&str> = candidates.into_iter().collect();
            format!("valid names: {}", all.join(", "))
        }
    }
}

/// The unknown column in a DataFusion "No field named x" error, unqualified.
pub fn unknown_field_in(msg: &str) -> Option<String> {
    let rest = msg.split("No field named ").nth(1)?;
    let name: String = rest
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let name = name.trim_end_matches('.');
    Some(name.rsplit('.').next().unwrap_or(name).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_and_rendering() {
        let f = SourceFile::new(Path::new("t.toml"), "a = 1\nbé = \"x\"\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        assert_eq!(f.line_col(11), (2, 5));
        let d = f.error(11..14, "bad").with_hint("fix it");
        let s = d.to_string();
        assert!(s.starts_with("t.toml:2:5: error: bad"), "{s}");
        assert!(s.contains("hint: fix it"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("stauts", ["status", "country"]).as_deref(),
            Some("status")
        );
        assert_eq!(suggest("zzz", ["status"]), None);
    }
}
