//! Any text as a schedule expression: parsed or refused with a span inside the text, and
//! the next fire times computed without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tributary::jobs::schedule::Schedule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Schedule::parse(text) {
        Ok(s) => {
            let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            let _ = s.next_after(now, chrono_tz::Tz::Europe__Berlin);
        }
        Err(e) => assert!(e.span.end <= text.len() && text.is_char_boundary(e.span.start)),
    }
});
