//! A cron expression in plain English: "At 09:00, Monday through Friday",
//! "Every 15 minutes", "At 00:00, on every 2nd day of the month if it is a
//! Monday". Reads the pattern [`super::cron_compat`] made (names as numbers,
//! `N/step` as ranges, wrapping ranges as lists), so every accepted form is
//! described the way it is matched.

use super::cron_compat::Reading;

const WEEKDAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const ORDINALS: [&str; 5] = ["first", "second", "third", "fourth", "fifth"];

/// At most this many times of day are listed one by one ("At 09:05, 09:25
/// and 09:45"); more are described field by field.
const MAX_LISTED_TIMES: usize = 6;

/// The plain-English reading of `reading`, without the time zone.
pub(crate) fn describe(reading: &Reading) -> String {
    let pattern = &reading.pattern;
    let mut parts = vec![describe_time(
        &values(&pattern[0], 0, 59),
        &values(&pattern[1], 0, 59),
        &values(&pattern[2], 0, 23),
    )];
    parts.extend(describe_days(&pattern[3], &pattern[5]));
    let months = values(&pattern[4], 1, 12);
    if months.len() < 12 {
        parts.push(format!("in {}", names(&months, &MONTH_NAMES, 1)));
    }
    if pattern[6] != "*" {
        parts.push(describe_years(&pattern[6]));
    }
    let mut text = parts.join(", ");
    if let Some(first) = text.get(..1) {
        text.replace_range(..1, &first.to_uppercase());
    }
    text
}

/// The values a field's items (`*`, `*/s`, `a-b/s`, `a-b`, `a`, commas)
/// select within `min..=max`, ascending. Special items (`L`, `W`, `#`) add
/// nothing here.
fn values(field: &str, min: u32, max: u32) -> Vec<u32> {
    let mut selected = vec![false; (max + 1) as usize];
    for item in field.trim_start_matches('+').split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, step.parse().unwrap_or(1)),
            None => (item, 1),
        };
        let (start, end) = match range.split_once('-') {
            _ if range == "*" => (min, max),
            Some((start, end)) => match (start.parse(), end.parse()) {
                (Ok(start), Ok(end)) => (start, end),
                _ => continue,
            },
            None => match range.parse() {
                Ok(value) => (value, value),
                Err(_) => continue,
            },
        };
        // Day-of-week 7 is Sunday.
        let fold = |value: u32| if max == 6 && value == 7 { 0 } else { value };
        for value in (start..=end).step_by(step.max(1) as usize) {
            if let Some(slot) = selected.get_mut(fold(value) as usize) {
                *slot = value >= min;
            }
        }
    }
    (min..=max).filter(|&v| selected[v as usize]).collect()
}

/// `Some(step)` when `values` is every `step`th value of `min..=max` from
/// `min` (step 1: all of them).
fn every(values: &[u32], min: u32, max: u32) -> Option<u32> {
    let step = match values {
        [first, second, ..] if *first == min => second - first,
        _ => return None,
    };
    let expected: Vec<u32> = (min..=max).step_by(step as usize).collect();
    (expected == values).then_some(step)
}

fn describe_time(seconds: &[u32], minutes: &[u32], hours: &[u32]) -> String {
    let listable = |values: &[u32], all: usize| values.len() < all;
    if listable(seconds, 60)
        && listable(minutes, 60)
        && listable(hours, 24)
        && seconds.len() * minutes.len() * hours.len() <= MAX_LISTED_TIMES
    {
        let with_seconds = seconds != [0];
        let mut times = Vec::new();
        for hour in hours {
            for minute in minutes {
                for second in seconds {
                    times.push(if with_seconds {
                        format!("{hour:02}:{minute:02}:{second:02}")
                    } else {
                        format!("{hour:02}:{minute:02}")
                    });
                }
            }
        }
        return format!("at {}", join(&times, "and"));
    }
    let second = match every(seconds, 0, 59) {
        _ if seconds == [0] => None,
        Some(1) => Some("every second".to_owned()),
        Some(step) => Some(format!("every {step} seconds")),
        None => Some(format!("at second {}", numbers(seconds, 0, 59, false))),
    };
    let repeats = |phrase: &Option<String>| phrase.as_ref().is_some_and(|p| p.starts_with("every"));
    let minute = match every(minutes, 0, 59) {
        Some(1) if repeats(&second) => None,
        Some(1) => Some("every minute".to_owned()),
        Some(step) => Some(format!("every {step} minutes")),
        None => Some(format!("at minute {}", numbers(minutes, 0, 59, false))),
    };
    let hour = match every(hours, 0, 23) {
        Some(1) if minute.as_deref().is_some_and(|m| m.starts_with("at ")) => {
            Some("past every hour".to_owned())
        }
        Some(1) => None,
        Some(step) => Some(format!("of every {step} hours")),
        None if repeats(&minute) || minute.is_none() => {
            Some(format!("during hour {}", numbers(hours, 0, 23, true)))
        }
        None => Some(format!("past hour {}", numbers(hours, 0, 23, true))),
    };
    [second, minute, hour]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The day part: day-of-month and day-of-week, combined as matched.
fn describe_days(day_of_month: &str, day_of_week: &str) -> Option<String> {
    let both = day_of_week.starts_with('+');
    let month_days = describe_month_days(day_of_month);
    let weekdays = describe_weekdays(day_of_week.trim_start_matches('+'));
    match (month_days, weekdays) {
        (None, None) => None,
        (Some(days), None) => Some(format!("on {days}")),
        (None, Some(weekdays)) if weekdays.single => Some(format!("every {}", weekdays.text)),
        (None, Some(weekdays)) if weekdays.special => Some(format!("on {}", weekdays.text)),
        (None, Some(weekdays)) => Some(weekdays.text),
        (Some(days), Some(weekdays)) if both => {
            Some(format!("on {days} if it is {}", weekdays.text))
        }
        (Some(days), Some(weekdays)) => Some(format!("on {days}, or on {}", weekdays.text)),
    }
}

/// Days of the week in words.
struct Weekdays {
    /// "Monday through Friday", "the last Friday of the month".
    text: String,
    /// One day by name.
    single: bool,
    /// A day of the month by weekday (`5L`, `1#2`).
    special: bool,
}

/// Days of the month in words, `None` for every day.
fn describe_month_days(field: &str) -> Option<String> {
    match field {
        "*" => return None,
        "L" => return Some("the last day of the month".into()),
        "LW" => return Some("the last weekday of the month".into()),
        _ => {}
    }
    if let Some(day) = field.strip_suffix('W') {
        return Some(format!("the weekday nearest day {day} of the month"));
    }
    let days = values(field, 1, 31);
    Some(match every(&days, 1, 31) {
        Some(1) => return None,
        Some(step) => format!("every {} day of the month", ordinal_number(step)),
        None => format!("day {} of the month", numbers(&days, 1, 31, false)),
    })
}

/// Days of the week in words ("Monday through Friday", "the last Friday of
/// the month"), `None` for every day.
fn describe_weekdays(field: &str) -> Option<Weekdays> {
    let name = |text: &str| {
        text.parse::<usize>()
            .ok()
            .and_then(|day| WEEKDAY_NAMES.get(day % 7))
            .copied()
    };
    let special = |text: String| Weekdays {
        text,
        single: false,
        special: true,
    };
    if let Some(day) = field.strip_suffix('L').and_then(name) {
        return Some(special(format!("the last {day} of the month")));
    }
    if let Some((day, nth)) = field.split_once('#')
        && let (Some(day), Ok(nth)) = (name(day), nth.parse::<usize>())
        && let Some(nth) = ORDINALS.get(nth.wrapping_sub(1))
    {
        return Some(special(format!("the {nth} {day} of the month")));
    }
    let days = values(field, 0, 6);
    (days.len() < 7).then(|| Weekdays {
        text: names(&days, &WEEKDAY_NAMES, 0),
        single: days.len() == 1,
        special: false,
    })
}

/// Years in words: "in 2027", "in 2027 through 2029", "every 2 years from 2027".
fn describe_years(field: &str) -> String {
    let items: Vec<String> = field
        .split(',')
        .map(|item| match item.split_once('/') {
            Some((range, step)) => {
                let from = range.split('-').next().unwrap_or(range);
                format!("every {step} years from {from}")
            }
            None => format!("in {}", item.replace('-', " through ")),
        })
        .collect();
    join(&items, "and")
}

/// Names of `values` (numbered from `first`), runs of three or more as "X
/// through Y"; a run may wrap past the last name (Friday through Monday).
fn names(values: &[u32], names: &[&str], first: u32) -> String {
    let last = first + names.len() as u32 - 1;
    let phrases = phrases(values, first, last, |value| {
        names[(value - first) as usize].to_owned()
    });
    join(&phrases, "and")
}

/// Numbers with runs of three or more as "a through b"; with `wraps`, a
/// run may wrap past `max` to `min` (hours 22 through 2).
fn numbers(values: &[u32], min: u32, max: u32, wraps: bool) -> String {
    let phrases = if wraps {
        phrases(values, min, max, |value| value.to_string())
    } else {
        phrases(values, min, u32::MAX, |value| value.to_string())
    };
    join(&phrases, "and")
}

/// The runs of `values` as phrases; a run ending at `last` and one
/// starting at `first` are one run.
fn phrases(values: &[u32], first: u32, last: u32, word: impl Fn(u32) -> String) -> Vec<String> {
    let mut runs = runs(values);
    if runs.len() > 1 && runs[0].0 == first && runs[runs.len() - 1].1 == last {
        let (_, end) = runs.remove(0);
        if let Some(wrapping) = runs.last_mut() {
            wrapping.1 = end;
        }
    }
    runs.into_iter()
        .flat_map(|(start, end)| {
            let length = if end >= start {
                end - start + 1
            } else {
                end + (last - first + 1) - start + 1
            };
            match length {
                1 => vec![word(start)],
                2 => vec![word(start), word(end)],
                _ => vec![format!("{} through {}", word(start), word(end))],
            }
        })
        .collect()
}

/// Consecutive runs of ascending `values`, as (first, last).
fn runs(values: &[u32]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &value in values {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == value => *end = value,
            _ => runs.push((value, value)),
        }
    }
    runs
}

/// "a", "a and b", "a, b and c".
fn join(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} {conjunction} {last}", rest.join(", ")),
    }
}

/// "2nd", "3rd", "10th".
fn ordinal_number(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::super::cron_compat::read;
    use super::*;

    fn described(expression: &str) -> String {
        describe(&read(expression).expect("readable"))
    }

    #[test]
    fn times_of_day() {
        for (expression, expected) in [
            ("0 9 * * *", "At 09:00"),
            ("30 2 * * *", "At 02:30"),
            ("0 9,17 * * *", "At 09:00 and 17:00"),
            ("0 5/20 9 * * ?", "At 09:05, 09:25 and 09:45"),
            ("15 30 6 * * *", "At 06:30:15"),
            ("@daily", "At 00:00"),
        ] {
            assert_eq!(described(expression), expected, "{expression}");
        }
    }

    #[test]
    fn repetitions() {
        for (expression, expected) in [
            ("* * * * *", "Every minute"),
            ("*/15 * * * *", "Every 15 minutes"),
            ("0/15 * * * *", "Every 15 minutes"),
            ("5/20 * * * *", "At minute 5, 25 and 45 past every hour"),
            ("@hourly", "At minute 0 past every hour"),
            ("0 */2 * * *", "At minute 0 of every 2 hours"),
            ("* * * * * *", "Every second"),
            ("*/30 * * * * *", "Every 30 seconds"),
            ("0 9-17 * * *", "At minute 0 past hour 9 through 17"),
            (
                "*/10 22-2 * * *",
                "Every 10 minutes during hour 22 through 2",
            ),
        ] {
            assert_eq!(described(expression), expected, "{expression}");
        }
    }

    #[test]
    fn days_months_and_years() {
        for (expression, expected) in [
            ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
            ("0 9 * * FRI-MON", "At 09:00, Friday through Monday"),
            ("0 9 * * 1,3,5", "At 09:00, Monday, Wednesday and Friday"),
            ("0 9 * * SAT,SUN", "At 09:00, Saturday and Sunday"),
            ("@weekly", "At 00:00, every Sunday"),
            ("@monthly", "At 00:00, on day 1 of the month"),
            ("@yearly", "At 00:00, on day 1 of the month, in January"),
            (
                "0 0 */2 * 1",
                "At 00:00, on every 2nd day of the month if it is Monday",
            ),
            (
                "0 0 1,15 * 1",
                "At 00:00, on day 1 and 15 of the month, or on Monday",
            ),
            ("0 0 L * *", "At 00:00, on the last day of the month"),
            (
                "0 0 15W * *",
                "At 00:00, on the weekday nearest day 15 of the month",
            ),
            ("0 0 * * 5L", "At 00:00, on the last Friday of the month"),
            (
                "0 0 * * MON#2",
                "At 00:00, on the second Monday of the month",
            ),
            (
                "0 0 1 NOV-FEB *",
                "At 00:00, on day 1 of the month, in November through February",
            ),
            ("0 0 12 * * ? 2027", "At 12:00, in 2027"),
            (
                "0 0 12 1 1 ? 2027-2029",
                "At 12:00, on day 1 of the month, in January, in 2027 through 2029",
            ),
            (
                "0 0 12 1 1 ? 2027/2",
                "At 12:00, on day 1 of the month, in January, every 2 years from 2027",
            ),
        ] {
            assert_eq!(described(expression), expected, "{expression}");
        }
    }
}
