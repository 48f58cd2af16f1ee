//! What users paste into `schedule`, read the way the cron it was written for
//! reads it, and rewritten into the pattern the matcher ([croner]) takes.
//!
//! Accepted on top of the five standard fields (each form is documented in
//! the README with an example):
//! - a leading `CRON_TZ=<zone>` or `TZ=<zone>` (cronie, Kubernetes): the
//!   expression carries its own time zone;
//! - the nicknames `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//!   `@midnight` and `@hourly`. `@every <duration>` is refused: an interval
//!   has no anchor on the wall clock (every 90 minutes from when?) and no
//!   meaning across a DST change, so it cannot follow this module's calendar
//!   rules; the refusal names the step forms that say the same;
//! - a leading seconds field (6 fields) and Quartz's 7-field form with a
//!   trailing year (`0 0 12 * * ? 2027`); a 6-field expression whose last
//!   field looks like a year is refused, because six fields are read as
//!   seconds-first;
//! - Quartz/Spring step starts `N/step` (`0/15`, `5/20`) in every field,
//!   read as `N-<field max>/step`; `?` in day-of-month or day-of-week;
//! - ranges that wrap (`22-2` hours, `FRI-MON`, `NOV-FEB`, `28-3` days),
//!   read as running past the field's end back to its start (Quartz's
//!   reading; a step keeps counting across the wrap: `22-3/2` is 22, 0, 2);
//!   years cannot wrap;
//! - Vixie cron's day rule: when day-of-month and day-of-week are both
//!   restricted a day matches either; when either field starts with `*` (so
//!   `*/2` too) or is `?`, a day must match both. `0 0 */2 * 1` fires on
//!   odd-numbered days that are Mondays.

use std::str::FromStr;

use chrono_tz::Tz;

use super::schedule::ScheduleError;

/// The newest year a year field may name (croner's search limit).
const YEAR_MAX: u32 = croner::YEAR_UPPER_LIMIT as u32;

/// One field of the 7-field form: its name, bounds and the names it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// As error messages name it (`minute`, `day-of-week`, …).
    pub name: &'static str,
    /// What it accepts, for error messages.
    pub allowed: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The fields in order: seconds, minute, hour, day-of-month, month,
/// day-of-week, year.
pub(crate) const FIELDS: [Field; 7] = [
    Field {
        name: "seconds",
        allowed: "0-59 and * , - /",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "minute",
        allowed: "0-59 and * , - /",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        allowed: "0-23 and * , - /",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        allowed: "1-31, L, W and * , - / ?",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        allowed: "1-12 or JAN-DEC and * , - /",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    Field {
        name: "day-of-week",
        allowed: "0-7 or SUN-SAT (0 and 7 are Sunday), L, # and * , - / ?",
        min: 0,
        max: 6,
        names: WEEKDAYS,
    },
    Field {
        name: "year",
        allowed: "a year such as 2027 and * , - /",
        min: 1970,
        max: YEAR_MAX,
        names: &[],
    },
];

/// An expression read: its time zone prefix, if any, and the matcher's
/// pattern (always 7 fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reading {
    /// The zone named by a `CRON_TZ=` / `TZ=` prefix.
    pub zone: Option<Tz>,
    /// The fields as written (nicknames expanded, prefix removed), 5 to 7
    /// of them.
    pub written: Vec<String>,
    /// The 7 fields for croner, in [`FIELDS`] order.
    pub pattern: [String; 7],
}

impl Reading {
    /// Whether the expression has a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.written.len() >= 6
    }

    /// Which of [`FIELDS`] the `index`th written field is.
    pub fn field_of(&self, index: usize) -> Field {
        FIELDS[if self.written.len() == 5 {
            index + 1
        } else {
            index
        }]
    }
}

/// Reads `expression` (trimmed, not empty).
pub(crate) fn read(expression: &str) -> Result<Reading, ScheduleError> {
    let refuse = |reason: String| ScheduleError::Invalid {
        expression: expression.to_owned(),
        reason,
    };
    let (zone, rest) = split_zone_prefix(expression)?;
    let written: Vec<String> = match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
        [] => {
            return Err(refuse(
                "a time zone prefix needs a cron expression after it".into(),
            ));
        }
        [nickname, ..] if nickname.starts_with('@') => {
            expand_nickname(nickname, rest).map_err(refuse)?
        }
        fields => fields.iter().map(|f| (*f).to_owned()).collect(),
    };
    match written.len() {
        5 | 7 => {}
        6 if looks_like_a_year(&written[5]) => {
            return Err(ScheduleError::YearInSixFields {
                expression: expression.to_owned(),
                year: written[5].clone(),
            });
        }
        6 => {}
        found => {
            return Err(ScheduleError::FieldCount {
                expression: expression.to_owned(),
                found,
            });
        }
    }
    let mut pattern: [String; 7] = Default::default();
    pattern[0] = "0".into();
    pattern[6] = "*".into();
    let offset = if written.len() == 5 { 1 } else { 0 };
    for (index, text) in written.iter().enumerate() {
        let field = FIELDS[index + offset];
        pattern[index + offset] =
            rewrite_field(field, text).map_err(|reason| ScheduleError::InvalidField {
                expression: expression.to_owned(),
                field: field.name,
                value: text.clone(),
                reason,
                allowed: field.allowed,
            })?;
    }
    // Vixie cron: a day field starting with `*` (or Quartz's `?`) leaves the
    // day to the other one alone — both must match; croner's `+` says so.
    // (Croner already reads a bare `*` or `?` that way, not `*/2`.)
    let stepped_star = |text: &str| text.starts_with('*') && text != "*";
    let (day_of_month, day_of_week) = (&written[3 - offset], &written[5 - offset]);
    if stepped_star(day_of_month) || stepped_star(day_of_week) {
        pattern[5].insert(0, '+');
    }
    Ok(Reading {
        zone,
        written,
        pattern,
    })
}

/// Splits a leading `CRON_TZ=<zone>` or `TZ=<zone>` off `expression`.
fn split_zone_prefix(expression: &str) -> Result<(Option<Tz>, &str), ScheduleError> {
    let first = expression.split_whitespace().next().unwrap_or_default();
    let Some((key, zone)) = first.split_once('=') else {
        return Ok((None, expression));
    };
    if !(key.eq_ignore_ascii_case("CRON_TZ") || key.eq_ignore_ascii_case("TZ")) {
        return Err(ScheduleError::Invalid {
            expression: expression.to_owned(),
            reason: format!(
                "`{first}` is not a time zone prefix: write `CRON_TZ=<zone>` or `TZ=<zone>` first"
            ),
        });
    }
    let zone = Tz::from_str(zone).map_err(|_| ScheduleError::UnknownTimezone(zone.to_owned()))?;
    Ok((Some(zone), expression[first.len()..].trim_start()))
}

/// The fields a nickname stands for; `rest` is everything after the zone prefix.
fn expand_nickname(nickname: &str, rest: &str) -> Result<Vec<String>, String> {
    let fields = match nickname.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@every" => {
            return Err(
                "`@every` intervals are not supported: an interval has no fixed start on the \
                 calendar and no meaning across a DST change; use a step instead, such as \
                 `*/15 * * * *` (every 15 minutes), `0 */2 * * *` (every 2 hours) or \
                 `*/30 * * * * *` (every 30 seconds)"
                    .into(),
            );
        }
        "@reboot" => {
            return Err(
                "`@reboot` is not a schedule: a hosted automation has no reboot to run at".into(),
            );
        }
        _ => {
            return Err(
                "unknown nickname: use @yearly, @annually, @monthly, @weekly, @daily, \
                 @midnight or @hourly"
                    .into(),
            );
        }
    };
    if rest.split_whitespace().count() != 1 {
        return Err(format!("`{nickname}` stands alone: nothing may follow it"));
    }
    Ok(fields.split(' ').map(str::to_owned).collect())
}

/// A sixth field that can only be meant as a year: it holds a number of
/// four or more digits.
fn looks_like_a_year(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|number| number.len() >= 4)
}

/// One field in croner's terms: names become numbers, `?` becomes `*`,
/// `N/step` becomes `N-max/step` and a wrapping range becomes the list of
/// its values. What croner reads as is stays as it is (croner checks it).
fn rewrite_field(field: Field, text: &str) -> Result<String, String> {
    let text = replace_names(field, text)?;
    let items: Result<Vec<String>, String> = text
        .split(',')
        .map(|item| {
            if item.is_empty() {
                Err("a list has an empty item (a comma at either end, or two in a row)".into())
            } else {
                rewrite_item(field, item)
            }
        })
        .collect();
    Ok(items?.join(","))
}

/// Replaces month and weekday names (any case) by their numbers.
fn replace_names(field: Field, text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| -> Result<(), String> {
        if word.is_empty() {
            return Ok(());
        }
        let upper = word.to_ascii_uppercase();
        // `FRIL`: the last Friday of the month.
        let (name, last) = match upper.strip_suffix('L') {
            Some(name) if field.names == WEEKDAYS && WEEKDAYS.contains(&name) => (name, "L"),
            _ => (upper.as_str(), ""),
        };
        match field.names.iter().position(|known| *known == name) {
            Some(position) => {
                let first = if field.names == MONTHS { 1 } else { 0 };
                out.push_str(&(position + first).to_string());
                out.push_str(last);
            }
            // `L`, `W`, `LW` keep their meaning; croner refuses the rest.
            None if ["L", "W", "LW"].contains(&upper.as_str()) => out.push_str(&upper),
            None if !field.names.is_empty() => {
                return Err(format!(
                    "`{word}` is not a {} name ({})",
                    if field.names == MONTHS {
                        "month"
                    } else {
                        "weekday"
                    },
                    field.names.join(", ")
                ));
            }
            None => out.push_str(&upper),
        }
        word.clear();
        Ok(())
    };
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
        } else {
            flush(&mut word, &mut out)?;
            out.push(c);
        }
    }
    flush(&mut word, &mut out)?;
    Ok(out)
}

/// One comma-separated item of a field, names already numbers.
fn rewrite_item(field: Field, item: &str) -> Result<String, String> {
    if item == "?" {
        return Ok("*".into());
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    let number = |text: &str| text.parse::<u32>().ok();
    let parsed_step = step.and_then(number);
    // Quartz/Spring `N/step`: from N to the field's end.
    if let (Some(start), Some(step)) = (number(range), parsed_step) {
        return Ok(format!("{start}-{}/{step}", field.max));
    }
    let Some((start, end)) = range
        .split_once('-')
        .and_then(|(start, end)| Some((number(start)?, number(end)?)))
    else {
        return Ok(item.to_owned());
    };
    // 7 is Sunday too; as a range start it is 0.
    let start = if field.names == WEEKDAYS && start == 7 {
        0
    } else {
        start
    };
    let end_is_sunday = field.names == WEEKDAYS && end == 7;
    if start <= end || end_is_sunday {
        return Ok(match step {
            Some(step) => format!("{start}-{end}/{step}"),
            None => format!("{start}-{end}"),
        });
    }
    if field.name == "year" {
        return Err(format!(
            "the range `{range}` runs backwards; a year range goes from the earlier year to the later"
        ));
    }
    if start > field.max || end < field.min {
        // Out of the field's bounds: croner names the bound.
        return Ok(item.to_owned());
    }
    let step = match step {
        None => 1,
        Some(_) => parsed_step
            .filter(|&s| s > 0)
            .ok_or_else(|| format!("the step in `{item}` must be a whole number of at least 1"))?,
    };
    Ok(wrapped_values(field, start, end, step)
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// The values of the range `start-end` that wraps past the field's end,
/// every `step`th from `start`.
fn wrapped_values(field: Field, start: u32, end: u32, step: u32) -> Vec<u32> {
    let to_end = field.max - start + 1;
    let length = to_end + (end - field.min + 1);
    (0..length)
        .step_by(step as usize)
        .map(|position| {
            if position < to_end {
                start + position
            } else {
                field.min + position - to_end
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(expression: &str) -> String {
        read(expression).expect("readable").pattern.join(" ")
    }

    #[test]
    fn five_and_six_fields_fill_seconds_and_year() {
        assert_eq!(pattern("0 9 * * 1-5"), "0 0 9 * * 1-5 *");
        assert_eq!(pattern("*/5 0 9 * * 1-5"), "*/5 0 9 * * 1-5 *");
        assert_eq!(pattern("0 0 12 * * ? 2027"), "0 0 12 * * * 2027");
    }

    #[test]
    fn quartz_step_starts_run_to_the_field_end() {
        assert_eq!(
            pattern("0/15 5/20 0/6 1/10 1/3 ? 2027/2"),
            "0-59/15 5-59/20 0-23/6 1-31/10 1-12/3 * 2027-5000/2"
        );
        assert_eq!(pattern("0 0 * * 1/2"), "0 0 0 * * 1-6/2 *");
    }

    #[test]
    fn wrapping_ranges_list_their_values() {
        assert_eq!(pattern("0 22-2 * * *"), "0 0 22,23,0,1,2 * * * *");
        assert_eq!(pattern("0 22-3/2 * * *"), "0 0 22,0,2 * * * *");
        assert_eq!(pattern("0 9 * * FRI-MON"), "0 0 9 * * 5,6,0,1 *");
        assert_eq!(pattern("0 9 * NOV-FEB *"), "0 0 9 * 11,12,1,2 * *");
        assert_eq!(pattern("0 9 28-2 * MON"), "0 0 9 28,29,30,31,1,2 * 1 *");
        // Not wrapping: 7 is Sunday.
        assert_eq!(pattern("0 9 * * FRI-7"), "0 0 9 * * 5-7 *");
        assert_eq!(pattern("0 9 * * 7-2"), "0 0 9 * * 0-2 *");
    }

    #[test]
    fn names_in_any_case() {
        assert_eq!(pattern("0 9 * jan,Mar mon-fri"), "0 0 9 * 1,3 1-5 *");
        assert_eq!(pattern("0 9 * * friL"), "0 0 9 * * 5L *");
        assert_eq!(pattern("0 9 * * MON#2"), "0 0 9 * * 1#2 *");
    }

    #[test]
    fn day_fields_follow_vixie() {
        // Both restricted: either matches (no `+`).
        assert_eq!(pattern("0 0 1,15 * 1"), "0 0 0 1,15 * 1 *");
        // Either starts with `*` (or is `?`, which croner reads as `*`):
        // both must match.
        assert_eq!(pattern("0 0 */2 * 1"), "0 0 0 */2 * +1 *");
        assert_eq!(pattern("0 0 1 * */2"), "0 0 0 1 * +*/2 *");
        assert_eq!(pattern("0 0 12 ? * MON"), "0 0 12 * * 1 *");
    }

    #[test]
    fn zone_prefixes() {
        let reading = read("CRON_TZ=Europe/Berlin 0 9 * * *").unwrap();
        assert_eq!(reading.zone, Some(Tz::Europe__Berlin));
        assert_eq!(reading.written, ["0", "9", "*", "*", "*"]);
        let reading = read("TZ=America/New_York @daily").unwrap();
        assert_eq!(reading.zone, Some(Tz::America__New_York));
        assert_eq!(reading.pattern.join(" "), "0 0 0 * * * *");
        assert_eq!(
            read("CRON_TZ=Mars/Olympus 0 9 * * *"),
            Err(ScheduleError::UnknownTimezone("Mars/Olympus".into()))
        );
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            ("CRON_TZ=UTC", "needs a cron expression after it"),
            ("TIMEZONE=UTC 0 9 * * *", "not a time zone prefix"),
            ("@every 5m", "`@every` intervals are not supported"),
            ("@reboot", "not a schedule"),
            ("@daily 5", "nothing may follow it"),
            ("@fortnightly", "unknown nickname"),
            ("0 9 * * 1-5 2027", "six fields are read as seconds-first"),
            ("0 0 9 * * 1-5 2030-2027", "runs backwards"),
            ("0 9 * * MOON", "`MOON` is not a weekday name"),
            ("0 9 * JUNE *", "`JUNE` is not a month name"),
            ("0 22-2/0 * * *", "at least 1"),
            ("0 9 * * * * * *", "has 8 field(s)"),
        ];
        for (expression, expected) in cases {
            let message = read(expression).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "`{expression}` gave `{message}`, expected `{expected}`"
            );
        }
    }
}
