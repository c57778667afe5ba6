//! Trino's URL functions: `url_extract_{protocol,host,port,path,query,fragment,parameter}`
//! split a URI by RFC 3986's grammar (a relative reference has a path and no host), and
//! `url_encode`/`url_decode` are Java's `application/x-www-form-urlencoded`.

use std::sync::LazyLock;

use arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::ScalarUDF;
use regex::Regex;

use super::udf::{arc, int64, map_str, str_arg, udf, utf8};

macro_rules! part {
    ($name:literal, $part:expr) => {
        udf(
            $name,
            |t| super::udf::strings(t, 1, 1, $name),
            utf8,
            |a, n, _| part(a, n, $part),
        )
    };
}

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        part!("url_extract_protocol", Part::Protocol),
        part!("url_extract_host", Part::Host),
        part!("url_extract_path", Part::Path),
        part!("url_extract_query", Part::Query),
        part!("url_extract_fragment", Part::Fragment),
        udf(
            "url_extract_port",
            |t| super::udf::strings(t, 1, 1, "url_extract_port"),
            int64,
            port,
        ),
        udf(
            "url_extract_parameter",
            |t| super::udf::strings(t, 2, 2, "url_extract_parameter"),
            utf8,
            parameter,
        ),
        udf(
            "url_encode",
            |t| super::udf::strings(t, 1, 1, "url_encode"),
            utf8,
            encode,
        ),
        udf(
            "url_decode",
            |t| super::udf::strings(t, 1, 1, "url_decode"),
            utf8,
            decode,
        ),
    ]
}

#[derive(Clone, Copy)]
enum Part {
    Protocol,
    Host,
    Path,
    Query,
    Fragment,
}

struct Uri<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

// RFC 3986, appendix B.
static URI: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$")
        .ok()
});

fn split(s: &str) -> Option<Uri<'_>> {
    // java.net.URI refuses spaces and other characters a URI cannot hold.
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>\"{}|\\^`".contains(c))
    {
        return None;
    }
    let c = URI.as_ref()?.captures(s)?;
    Some(Uri {
        scheme: c.get(1).map(|m| m.as_str()),
        authority: c.get(2).map(|m| m.as_str()),
        path: c.get(3).map_or("", |m| m.as_str()),
        query: c.get(4).map(|m| m.as_str()),
        fragment: c.get(5).map(|m| m.as_str()),
    })
}

/// The authority's host and port (`user@host:port`, `[v6]:port`).
fn host_port(authority: &str) -> (&str, Option<&str>) {
    let hp = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(rest) = hp.strip_prefix('[') {
        let end = rest.find(']').map_or(rest.len(), |e| e);
        let port = rest[end..].strip_prefix("]:");
        return (&hp[..end + 2.min(hp.len() - end)], port);
    }
    match hp.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (hp, None),
    }
}

fn part(a: &[ArrayRef], rows: usize, which: Part) -> Result<ArrayRef> {
    // A part the URL does not have is '' (java.net.URI's null, as Trino returns it); an
    // opaque URI (`mailto:x@y`) has no path.
    map_str(a, rows, |s, _| {
        Ok(split(s[0]).map(|u| {
            match which {
                Part::Protocol => u.scheme.unwrap_or(""),
                Part::Host => u.authority.map_or("", |a| host_port(a).0),
                Part::Path
                    if u.scheme.is_some() && u.authority.is_none() && !u.path.starts_with('/') =>
                {
                    ""
                }
                Part::Path => u.path,
                Part::Query => u.query.unwrap_or(""),
                Part::Fragment => u.fragment.unwrap_or(""),
            }
            .to_string()
        }))
    })
}

fn port(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    let s = str_arg(&a[0])?;
    Ok(arc((0..rows)
        .map(|r| {
            let u = s.is_valid(r).then(|| split(s.value(r))).flatten()?;
            host_port(u.authority?).1?.parse::<i64>().ok()
        })
        .collect::<Int64Array>()))
}

fn parameter(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_str(a, rows, |s, _| {
        Ok(split(s[0]).and_then(|u| u.query).and_then(|q| {
            q.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == s[1]).then(|| v.to_string())
            })
        }))
    })
}

fn encode(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_str(a, rows, |s, _| {
        let mut e = String::new();
        for b in s[0].bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                    e.push(b as char)
                }
                b' ' => e.push('+'),
                b => e.push_str(&format!("%{b:02X}")),
            }
        }
        Ok(Some(e))
    })
}

fn decode(a: &[ArrayRef], rows: usize, _: &ConfigOptions) -> Result<ArrayRef> {
    map_str(a, rows, |s, _| {
        let text = s[0].as_bytes();
        let mut bytes = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            match text[i] {
                b'+' => bytes.push(b' '),
                b'%' => {
                    let hex = text
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok());
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => bytes.push(b),
                        None => {
                            return exec_err!(
                                "URLDecoder: Illegal hex characters in escape (%) pattern"
                            );
                        }
                    }
                    i += 2;
                }
                b => bytes.push(b),
            }
            i += 1;
        }
        match String::from_utf8(bytes) {
            Ok(v) => Ok(Some(v)),
            Err(_) => exec_err!("url_decode: the decoded bytes are not UTF-8"),
        }
    })
}
