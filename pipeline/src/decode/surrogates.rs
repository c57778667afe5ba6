//! A workaround for arrow-json's surrogate pairs.
//!
//! arrow-json 59 joins an escaped surrogate pair's halves with `|` where it must add
//! 0x10000 (`tape.rs`, `char_from_surrogate_pair`), so escapes of characters from U+20000
//! on (CJK extension B and later planes) decode to other characters: `"\ud86d\ude00"`,
//! U+2B600, comes out as U+1B600. The one-pass decoder gets them right, so the same record
//! was stored differently depending on whether its chunk took the fast path or went
//! through arrow-json (found by the ndjson fuzz target). Before arrow-json sees a chunk,
//! each escaped pair is replaced by its character's UTF-8, which JSON allows in strings.

use std::borrow::Cow;

/// `bytes` with every `\uD8xx\uDCxx` escape pair written as UTF-8 (borrowed when none).
pub(super) fn pairs_as_utf8(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'\\', &bytes[i..]) {
        let at = i + p;
        // Every backslash met here starts an escape: escaped characters (`\\` included) are
        // stepped over whole, so a `\u` that is text after `\\` is not taken for an escape.
        match (bytes.get(at + 1), pair_at(bytes, at)) {
            (Some(b'u'), Some(c)) => {
                let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                o.extend_from_slice(&bytes[copied..at]);
                o.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                i = at + 12;
                copied = i;
            }
            (Some(_), _) => i = at + 2,
            (None, _) => break,
        }
    }
    match out {
        None => Cow::Borrowed(bytes),
        Some(mut o) => {
            o.extend_from_slice(&bytes[copied..]);
            Cow::Owned(o)
        }
    }
}

/// The character of a `\uHHHH\uLLLL` high/low surrogate pair at `at`, if there is one.
fn pair_at(bytes: &[u8], at: usize) -> Option<char> {
    let s = bytes.get(at..at + 12)?;
    if s[0] != b'\\' || s[1] != b'u' || s[6] != b'\\' || s[7] != b'u' {
        return None;
    }
    let hex = |h: &[u8]| {
        std::str::from_utf8(h)
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|t| u32::from_str_radix(t, 16).ok())
    };
    let (hi, lo) = (hex(&s[2..6])?, hex(&s[8..12])?);
    if !(0xD800..0xDC00).contains(&hi) || !(0xDC00..0xE000).contains(&lo) {
        return None;
    }
    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_pairs_become_their_characters() {
        let fixed = pairs_as_utf8(br#"{"a":"x\ud86d\ude00y","b":"\uD83D\uDE00"}"#);
        assert_eq!(
            std::str::from_utf8(&fixed).unwrap(),
            "{\"a\":\"x\u{2B600}y\",\"b\":\"\u{1F600}\"}"
        );
        // Unchanged: no pair, an escaped backslash before text, a lone or reversed half,
        // a pair cut short.
        for same in [
            br#"{"a":"plain \u00e9 \n"}"#.as_slice(),
            br#"{"a":"\\ud86d\\ude00"}"#,
            br#"{"a":"\ud86d x"}"#,
            br#"{"a":"\ude00\ud86d"}"#,
            br#"{"a":"\ud86d\ude0"#,
            br#"\"#,
        ] {
            assert!(matches!(pairs_as_utf8(same), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn arrow_json_gets_astral_characters_right_after_the_rewrite() {
        use arrow::array::AsArray;
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        let decode = |bytes: &[u8]| {
            let mut d = arrow_json::ReaderBuilder::new(schema.clone())
                .build_decoder()
                .unwrap();
            d.decode(bytes).unwrap();
            let b = d.flush().unwrap().unwrap();
            b.column(0).as_string::<i32>().value(0).to_string()
        };
        let raw = br#"{"a":"\ud86d\ude00"}"#;
        // The upstream bug this works around (if this starts failing, arrow-json is fixed
        // and the rewrite can go).
        assert_eq!(decode(raw), "\u{1B600}");
        assert_eq!(decode(&pairs_as_utf8(raw)), "\u{2B600}");
    }
}
