//! `tributary sql`: an interactive SQL prompt over the lake — history, multi-line statements
//! (ended by `;`), `\d` / `\d table` describes, timing and bytes scanned per statement, and
//! the output formats of `tributary query`. With stdin not a terminal it runs the statements
//! it reads (scripts, pipes) and stops at the first error with exit code 1.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{Error, Result};
use crate::query::{OutputFormat, QueryEngine, write_result};

/// One thing the user asked for.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    Sql(String),
    Command(String),
}

/// Splits input into statements (ended by `;` outside quotes) and backslash commands (one
/// line each, only at the start of a statement). Returns what is complete and the rest.
fn split(buf: &str) -> (Vec<Input>, String) {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut lines = buf.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if cur.trim().is_empty() && quote.is_none() && line.trim_start().starts_with('\\') {
            if !line.ends_with('\n') && lines.peek().is_none() {
                cur.push_str(line);
                break;
            }
            out.push(Input::Command(line.trim().to_string()));
            cur.clear();
            continue;
        }
        for c in line.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '\'' || c == '"' => quote = Some(c),
                None if c == ';' => {
                    let s = cur.trim().to_string();
                    if !s.is_empty() {
                        out.push(Input::Sql(s));
                    }
                    cur.clear();
                    continue;
                }
                None => {}
            }
            cur.push(c);
        }
    }
    (out, cur)
}

struct Session {
    engine: QueryEngine,
    format: OutputFormat,
    timing: bool,
}

impl Session {
    async fn run(&mut self, input: Input, out: &mut dyn Write) -> Result<()> {
        let io = |e| Error::io("cannot write output", e);
        match input {
            Input::Sql(sql) => {
                let r = self.engine.sql(&sql).await?;
                write_result(&r, self.format, out)?;
                if self.timing {
                    writeln!(
                        out,
                        "Time: {:.3} s, {} rows, {} bytes scanned",
                        r.elapsed.as_secs_f64(),
                        r.num_rows(),
                        r.bytes_scanned
                    )
                    .map_err(io)?;
                }
            }
            Input::Command(c) => {
                let mut words = c.split_whitespace();
                match (words.next().unwrap_or(""), words.next()) {
                    ("\\d", None) => {
                        let r = self.engine.sql("SHOW TABLES").await?;
                        write_result(&r, self.format, out)?;
                    }
                    ("\\d", Some(t)) => {
                        let r = self.engine.sql(&format!("DESCRIBE \"{t}\"")).await?;
                        write_result(&r, self.format, out)?;
                    }
                    ("\\timing", _) => {
                        self.timing = !self.timing;
                        writeln!(out, "timing {}", if self.timing { "on" } else { "off" })
                            .map_err(io)?;
                    }
                    ("\\format", Some(f)) => {
                        self.format = match f {
                            "table" => OutputFormat::Table,
                            "csv" => OutputFormat::Csv,
                            "json" => OutputFormat::Json,
                            other => {
                                return Err(Error::Usage(format!(
                                    "unknown format `{other}`: table, csv or json"
                                )));
                            }
                        };
                    }
                    ("\\?" | "\\help", _) => {
                        writeln!(out, "{HELP}").map_err(io)?;
                    }
                    (other, _) => {
                        return Err(Error::Usage(format!(
                            "unknown command `{other}` (\\? lists them)"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

const HELP: &str = "statements end with `;` and may span lines
  \\d            list tables          \\d TABLE     describe a table
  \\timing       toggle timing        \\format F    table | csv | json
  \\q            quit                 \\?           this help
  SHOW TABLES; DESCRIBE t; SHOW PARTITIONS t; EXPLAIN SELECT ...";

/// Runs the prompt (or the statements on stdin). Returns the exit code.
pub async fn run(
    engine: QueryEngine,
    format: OutputFormat,
    history: std::path::PathBuf,
) -> Result<i32> {
    let mut session = Session {
        engine,
        format,
        timing: std::io::stdin().is_terminal(),
    };
    if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| Error::io("cannot read stdin", e))?;
            text.push_str(&line);
            text.push('\n');
        }
        let (inputs, rest) = split(&text);
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for i in inputs
            .into_iter()
            .chain((!rest.trim().is_empty()).then(|| Input::Sql(rest.trim().to_string())))
        {
            if i == Input::Command("\\q".into()) {
                break;
            }
            if let Err(e) = session.run(i, &mut out).await {
                eprintln!("error: {e}");
                return Ok(1);
            }
        }
        return Ok(0);
    }

    let mut rl = rustyline::DefaultEditor::new()
        .map_err(|e| Error::Usage(format!("cannot start the prompt: {e}")))?;
    let _ = rl.load_history(&history);
    eprintln!(
        "tributary sql — tables: {}. \\? for help, \\q to quit.",
        session.engine.tables().join(", ")
    );
    let mut pending = String::new();
    loop {
        let prompt = if pending.trim().is_empty() {
            "sql> "
        } else {
            "...> "
        };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(_) => break,
        };
        pending.push_str(&line);
        pending.push('\n');
        let (inputs, rest) = split(&pending);
        pending = rest;
        for i in inputs {
            let text = match &i {
                Input::Sql(s) => format!("{s};"),
                Input::Command(c) => c.clone(),
            };
            let _ = rl.add_history_entry(text.as_str());
            if i == Input::Command("\\q".into()) {
                let _ = rl.save_history(&history);
                return Ok(0);
            }
            let stdout = std::io::stdout();
            if let Err(e) = session.run(i, &mut stdout.lock()).await {
                eprintln!("error: {e}");
            }
        }
    }
    let _ = rl.save_history(&history);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_span_lines_and_quotes_hide_semicolons() {
        let (v, rest) = split("SELECT 1;\nSELECT ';'\n  AS x;\n\\d\n\\d events\nSELECT 2");
        assert_eq!(
            v,
            vec![
                Input::Sql("SELECT 1".into()),
                Input::Sql("SELECT ';'\n  AS x".into()),
                Input::Command("\\d".into()),
                Input::Command("\\d events".into()),
            ]
        );
        assert_eq!(rest.trim(), "SELECT 2");
    }
}
