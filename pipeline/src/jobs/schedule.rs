//! Schedule expressions in EventBridge Scheduler syntax: `rate(5 minutes)`,
//! `cron(min hour day-of-month month day-of-week year)` and `at(yyyy-mm-ddThh:mm:ss)`, each
//! evaluated in the job's time zone. The cron arithmetic (`L`, `W`, `#`, ranges, steps) is
//! croner's, in its Quartz weekday mode (1 = Sunday … 7 = Saturday, as in EventBridge).

use std::ops::Range;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every `every`, at multiples of it since the Unix epoch (so `rate(1 hour)` fires on the
    /// hour, `rate(1 day)` at midnight UTC — deterministic slots, whoever starts first).
    Rate {
        every: chrono::Duration,
    },
    Cron {
        cron: Box<croner::Cron>,
    },
    /// Once, at a wall-clock time in the job's time zone.
    At {
        local: NaiveDateTime,
    },
}

/// A schedule that does not parse: where in the expression, what, and a hint.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleError {
    /// Byte range inside the expression text.
    pub span: Range<usize>,
    pub message: String,
    pub hint: &'static str,
}

const HINT: &str = "use rate(5 minutes), cron(15 2 * * ? *) (minute hour day-of-month month day-of-week year; one of the two day fields must be ?) or at(2026-12-01T00:00:00)";

fn err(span: Range<usize>, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        span,
        message: message.into(),
        hint: HINT,
    }
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let all = 0..text.len();
        let t = text.trim();
        let lead = text.len() - text.trim_start().len();
        let Some(open) = t.find('(') else {
            return Err(err(all, format!("`{t}` is not a schedule expression")));
        };
        if !t.ends_with(')') {
            return Err(err(all, "a schedule expression ends with `)`"));
        }
        let kind = &t[..open];
        let body = &t[open + 1..t.len() - 1];
        let body_at = lead + open + 1;
        let body_span = body_at..body_at + body.len();
        match kind {
            "rate" => parse_rate(body, body_span),
            "cron" => parse_cron(body, body_at),
            "at" => NaiveDateTime::parse_from_str(body.trim(), "%Y-%m-%dT%H:%M:%S")
                .map(|local| Schedule::At { local })
                .map_err(|e| {
                    err(
                        body_span,
                        format!("`{body}` is not a time like 2026-12-01T00:00:00 ({e})"),
                    )
                }),
            other => Err(err(
                lead..lead + open,
                format!("unknown schedule kind `{other}` (rate, cron or at)"),
            )),
        }
    }

    /// The first fire time strictly after `after`, if any.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate { every } => {
                let step = every.num_seconds().max(1);
                let n = after.timestamp().div_euclid(step).checked_add(1)?;
                Utc.timestamp_opt(n.checked_mul(step)?, 0).single()
            }
            Schedule::Cron { cron } => cron
                .find_next_occurrence(&after.with_timezone(&tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Schedule::At { local } => {
                let t = tz
                    .from_local_datetime(local)
                    .earliest()?
                    .with_timezone(&Utc);
                (t > after).then_some(t)
            }
        }
    }

    /// Fire times in `(after, until]`, oldest first, at most `limit` of them (the newest are
    /// kept when there are more).
    pub fn slots_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        tz: Tz,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let mut out = std::collections::VecDeque::new();
        let mut dropped = 0;
        let mut t = after;
        while let Some(next) = self.next_after(t, tz) {
            if next > until {
                break;
            }
            out.push_back(next);
            if out.len() > limit {
                out.pop_front();
                dropped += 1;
            }
            t = next;
        }
        (out.into(), dropped)
    }
}

fn parse_rate(body: &str, span: Range<usize>) -> Result<Schedule, ScheduleError> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let [n, unit] = words.as_slice() else {
        return Err(err(span, "rate(VALUE UNIT), e.g. rate(5 minutes)"));
    };
    let n: i64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        err(
            span.clone(),
            format!("`{n}` is not a positive whole number"),
        )
    })?;
    let every = match unit.trim_end_matches('s') {
        "minute" => chrono::Duration::try_minutes(n),
        "hour" => chrono::Duration::try_hours(n),
        "day" => chrono::Duration::try_days(n),
        other => {
            return Err(err(
                span,
                format!("unknown rate unit `{other}` (minutes, hours or days)"),
            ));
        }
    };
    // Found by fuzzing: a huge value overflowed the duration. Beyond ~100 years a rate is
    // not a schedule.
    match every.filter(|d| *d <= chrono::Duration::days(36_600)) {
        Some(every) => Ok(Schedule::Rate { every }),
        None => Err(err(
            span,
            format!("rate `{body}` is too long (at most 36600 days)"),
        )),
    }
}

fn parse_cron(body: &str, body_at: usize) -> Result<Schedule, ScheduleError> {
    // Field spans, for carets at the offending field.
    let mut fields = Vec::new();
    let mut i = 0;
    for part in body.split_whitespace() {
        let start = body[i..].find(part).map(|j| i + j).unwrap_or(i);
        fields.push((part, body_at + start..body_at + start + part.len()));
        i = start + part.len();
    }
    let whole = body_at..body_at + body.len();
    if fields.len() != 6 {
        return Err(err(
            whole,
            format!(
                "cron() takes 6 fields (minute hour day-of-month month day-of-week year), found {}",
                fields.len()
            ),
        ));
    }
    let names = [
        "minute",
        "hour",
        "day-of-month",
        "month",
        "day-of-week",
        "year",
    ];
    for (k, (f, span)) in fields.iter().enumerate() {
        // Found by fuzzing: empty list items (`,,`, a lone `,`) made croner accept a pattern
        // that never fires, and searching for its next time took tens of seconds.
        if f.split(',').any(|item| item.is_empty()) {
            return Err(err(
                span.clone(),
                format!("empty item in the {} list `{f}`", names[k]),
            ));
        }
        if f.contains('?') && k != 2 && k != 4 {
            return Err(err(
                span.clone(),
                format!(
                    "`?` is allowed only in day-of-month or day-of-week, not in {}",
                    names[k]
                ),
            ));
        }
    }
    let (dom, dom_span) = &fields[2];
    let (dow, _) = &fields[4];
    if (*dom == "?") == (*dow == "?") {
        return Err(err(
            dom_span.clone(),
            "exactly one of day-of-month and day-of-week must be `?` (as in EventBridge)",
        ));
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .year(croner::parser::Year::Required)
        .alternative_weekdays(true)
        .build();
    let pattern = format!(
        "0 {}",
        body.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    let cron = parser.parse(&pattern).map_err(|e| {
        // Point at the field croner names, when it names one.
        let text = e.to_string().to_lowercase();
        let span = names
            .iter()
            .position(|n| text.contains(&n.replace('-', " ")) || text.contains(n))
            .map(|k| fields[k].1.clone())
            .unwrap_or(whole.clone());
        err(span, format!("invalid cron expression: {e}"))
    })?;
    Ok(Schedule::Cron {
        cron: Box::new(cron),
    })
}

/// A time zone by IANA name, with a suggestion for a near miss.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
        format!(
            "unknown time zone `{name}`: {}",
            crate::diag::did_you_mean(name, names)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str, tz: &str) -> Vec<String> {
        let s = Schedule::parse(expr).unwrap();
        let tz = parse_tz(tz).unwrap();
        let mut t = utc(after);
        let mut out = Vec::new();
        for _ in 0..3 {
            match s.next_after(t, tz) {
                Some(n) => {
                    out.push(n.format("%Y-%m-%dT%H:%M:%SZ").to_string());
                    t = n;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn rate_fires_on_multiples_of_its_interval() {
        assert_eq!(
            next("rate(5 minutes)", "2026-11-27T10:03:10Z", "UTC"),
            [
                "2026-11-27T10:05:00Z",
                "2026-11-27T10:10:00Z",
                "2026-11-27T10:15:00Z"
            ]
        );
        assert_eq!(
            next("rate(1 day)", "2026-11-27T10:03:10Z", "UTC")[0],
            "2026-11-28T00:00:00Z"
        );
        assert_eq!(
            next("rate(2 hours)", "2026-11-27T10:00:00Z", "UTC")[0],
            "2026-11-27T12:00:00Z"
        );
    }

    #[test]
    fn cron_daily_in_a_time_zone() {
        // 02:15 in Berlin is 01:15 UTC in winter.
        assert_eq!(
            next(
                "cron(15 2 * * ? *)",
                "2026-11-27T10:00:00Z",
                "Europe/Berlin"
            ),
            [
                "2026-11-28T01:15:00Z",
                "2026-11-29T01:15:00Z",
                "2026-11-30T01:15:00Z"
            ]
        );
    }

    #[test]
    fn cron_weekdays_are_numbered_like_eventbridge() {
        // 2 = Monday; 2026-11-27 is a Friday.
        assert_eq!(
            next("cron(0 12 ? * 2 *)", "2026-11-27T00:00:00Z", "UTC")[0],
            "2026-11-30T12:00:00Z"
        );
        assert_eq!(
            next("cron(0 8 ? * MON-FRI *)", "2026-11-27T09:00:00Z", "UTC")[..2],
            ["2026-11-30T08:00:00Z", "2026-12-01T08:00:00Z"]
        );
    }

    #[test]
    fn cron_last_weekday_and_nth() {
        // L: last day of the month.
        assert_eq!(
            next("cron(0 9 L * ? *)", "2026-11-27T00:00:00Z", "UTC")[..2],
            ["2026-11-30T09:00:00Z", "2026-12-31T09:00:00Z"]
        );
        // 6#3: the third Friday.
        assert_eq!(
            next("cron(0 9 ? * 6#3 *)", "2026-11-27T00:00:00Z", "UTC")[0],
            "2026-12-18T09:00:00Z"
        );
        // 15W: the weekday nearest the 15th (2026-11-15 is a Sunday → Monday 16th).
        assert_eq!(
            next("cron(0 9 15W * ? *)", "2026-11-01T00:00:00Z", "UTC")[0],
            "2026-11-16T09:00:00Z"
        );
        // A year field limits the schedule.
        assert_eq!(
            next("cron(0 0 1 1 ? 2027)", "2026-11-27T00:00:00Z", "UTC"),
            ["2027-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn at_fires_once_in_its_time_zone() {
        assert_eq!(
            next(
                "at(2026-12-01T00:00:00)",
                "2026-11-27T00:00:00Z",
                "America/New_York"
            ),
            ["2026-12-01T05:00:00Z"]
        );
        assert!(next("at(2026-12-01T00:00:00)", "2026-12-02T00:00:00Z", "UTC").is_empty());
    }

    #[test]
    fn slots_between_keeps_the_newest_within_the_limit() {
        let s = Schedule::parse("rate(1 hour)").unwrap();
        let (slots, dropped) = s.slots_between(
            utc("2026-11-27T00:00:00Z"),
            utc("2026-11-27T10:30:00Z"),
            Tz::UTC,
            3,
        );
        assert_eq!(dropped, 7);
        assert_eq!(slots[0], utc("2026-11-27T08:00:00Z"));
        assert_eq!(slots[2], utc("2026-11-27T10:00:00Z"));
    }

    #[test]
    fn bad_expressions_say_where_and_why() {
        let e = Schedule::parse("cron(0 12 * * * *)").unwrap_err();
        assert!(e.message.contains("exactly one"), "{e:?}");
        assert_eq!(&"cron(0 12 * * * *)"[e.span.clone()], "*");
        let e = Schedule::parse("cron(0 12 * *)").unwrap_err();
        assert!(e.message.contains("6 fields"), "{e:?}");
        let e = Schedule::parse("cron(0 25 * * ? *)").unwrap_err();
        assert!(e.message.contains("invalid cron"), "{e:?}");
        // Found by the fuzzer: a list with empty items is refused (it never fired, slowly).
        let e = Schedule::parse("cron(,,,0 , * * ? *)").unwrap_err();
        assert!(e.message.contains("empty item"), "{e:?}");
        // Found by the fuzzer: a rate too large for a duration is an error, not a panic.
        let e = Schedule::parse("rate(+1111111111111115 minutes)").unwrap_err();
        assert!(e.message.contains("too long"), "{e:?}");
        let e = Schedule::parse("rate(5 weeks)").unwrap_err();
        assert!(
            e.message.contains("weeks") || e.message.contains("week"),
            "{e:?}"
        );
        let e = Schedule::parse("every(5 minutes)").unwrap_err();
        assert_eq!(&"every(5 minutes)"[e.span.clone()], "every");
        let e = Schedule::parse("at(tomorrow)").unwrap_err();
        assert_eq!(&"at(tomorrow)"[e.span.clone()], "tomorrow");
        assert!(
            parse_tz("Europe/Berln")
                .unwrap_err()
                .contains("Europe/Berlin")
        );
    }
}

#[cfg(test)]
mod extremes {
    use super::*;

    /// Inputs at the edges of the time range: an answer or an error, never a panic.
    #[test]
    fn extreme_times_do_not_panic() {
        let far = DateTime::<Utc>::MAX_UTC - chrono::Duration::days(1);
        let early = DateTime::<Utc>::MIN_UTC + chrono::Duration::days(1);
        for expr in [
            "at(+262142-12-31T23:59:59)",
            "at(-262143-01-01T00:00:00)",
            "rate(36600 days)",
            "rate(1 minute)",
            "cron(59 23 31 12 ? 2099)",
            "cron(0 0 L 2 ? *)",
            "cron(0 0 31 2 ? *)",
        ] {
            let Ok(s) = Schedule::parse(expr) else {
                continue;
            };
            for tz in ["UTC", "Pacific/Kiritimati", "America/New_York"] {
                let tz = parse_tz(tz).unwrap();
                for t in [far, early, DateTime::<Utc>::UNIX_EPOCH] {
                    let _ = s.next_after(t, tz);
                }
            }
        }
    }
}
