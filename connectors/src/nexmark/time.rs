//! Nexmark timestamps: `YYYY-MM-DD HH:MM:SS.mmm` in UTC, to and from milliseconds since
//! the epoch, by hand (proleptic Gregorian calendar, no time zones, no leap seconds —
//! the same as Flink's `TIMESTAMP(3)`).
//!
//! ```
//! use eddy_connectors::nexmark::{format_timestamp_ms, parse_timestamp_ms};
//!
//! let ms = parse_timestamp_ms("2015-07-15 00:00:10.005").unwrap();
//! assert_eq!(ms, 1_436_918_410_005);
//! assert_eq!(format_timestamp_ms(ms), "2015-07-15 00:00:10.005");
//! ```

use std::fmt::Write;

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date `(year, month, day)` of a day number (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The decimal number of `digits` (all ASCII digits), or `None`.
fn number(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0')),
    )
}

/// Parses `YYYY-MM-DD HH:MM:SS[.f{1,3}]` (UTC; a `T` may replace the space; the fraction
/// is milliseconds, `.5` = 500 ms) into milliseconds since the epoch. The error says
/// what is wrong.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("'{text}' is not a timestamp YYYY-MM-DD HH:MM:SS.mmm ({why})");
    let bytes = text.as_bytes();
    if bytes.len() < 19 {
        return Err(bad("too short"));
    }
    let punctuation_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && (bytes[10] == b' ' || bytes[10] == b'T')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !punctuation_ok {
        return Err(bad("separators"));
    }
    let field = |range: std::ops::Range<usize>| number(&bytes[range]).ok_or_else(|| bad("digits"));
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    let millis = match &bytes[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=3).contains(&fraction.len()) => {
            let value = number(fraction).ok_or_else(|| bad("digits"))?;
            value * 10i64.pow(3 - fraction.len() as u32)
        }
        _ => return Err(bad("fraction must be 1 to 3 digits")),
    };
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad("day out of range"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("time of day out of range"));
    }
    let days = days_from_civil(year, month, day);
    Ok(days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis)
}

/// Appends `epoch_ms` as `YYYY-MM-DD HH:MM:SS.mmm` (UTC) to `out`.
pub fn write_timestamp_ms(out: &mut String, epoch_ms: i64) {
    let days = epoch_ms.div_euclid(MS_PER_DAY);
    let in_day = epoch_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (seconds, millis) = (in_day / 1000, in_day % 1000);
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
}

/// `epoch_ms` as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
pub fn format_timestamp_ms(epoch_ms: i64) -> String {
    let mut text = String::with_capacity(23);
    write_timestamp_ms(&mut text, epoch_ms);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:00.000"), Ok(0));
        assert_eq!(
            parse_timestamp_ms("2015-07-15 00:00:00.000"),
            Ok(1_436_918_400_000)
        );
        assert_eq!(
            parse_timestamp_ms("2000-02-29 23:59:59.999"),
            Ok(951_868_799_999)
        );
        assert_eq!(parse_timestamp_ms("1969-12-31 23:59:59.999"), Ok(-1));
        assert_eq!(
            parse_timestamp_ms("2015-07-15T00:00:01"),
            Ok(1_436_918_401_000)
        );
        assert_eq!(
            parse_timestamp_ms("2015-07-15 00:00:01.5"),
            Ok(1_436_918_401_500)
        );
        assert_eq!(
            parse_timestamp_ms("2015-07-15 00:00:01.05"),
            Ok(1_436_918_401_050)
        );
        assert_eq!(format_timestamp_ms(-1), "1969-12-31 23:59:59.999");
        assert_eq!(
            format_timestamp_ms(951_868_799_999),
            "2000-02-29 23:59:59.999"
        );
    }

    #[test]
    fn bad_timestamps_say_why() {
        for text in [
            "",
            "2015-07-15",
            "2015/07/15 00:00:00.000",
            "2015-13-15 00:00:00.000",
            "2015-02-29 00:00:00.000",
            "2015-07-15 24:00:00.000",
            "2015-07-15 00:60:00.000",
            "2015-07-15 00:00:00.0000",
            "2015-07-15 00:00:00.",
            "2015-07-15 00:00:00.x",
            "2015-07-15 00:00:00 ",
            "+015-07-15 00:00:00.000",
            "2015-07-15 00:00:0é",
        ] {
            let error = parse_timestamp_ms(text).unwrap_err();
            assert!(error.contains("is not a timestamp"), "{text}: {error}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(ms in -62_135_596_800_000i64..253_402_300_799_999) {
            let text = format_timestamp_ms(ms);
            prop_assert_eq!(text.len(), 23);
            prop_assert_eq!(parse_timestamp_ms(&text), Ok(ms));
        }
    }
}
