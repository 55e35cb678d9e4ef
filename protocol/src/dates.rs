//! Calendar dates and times as the API and the catalogue write them: `YYYY-MM-DD` dates and
//! RFC 3339 UTC times, converted to and from the protocol's millisecond timestamps. Pure
//! arithmetic (proleptic Gregorian calendar, UTC), no clock.

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year, 1..=9999.
    pub year: u32,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month.
    pub day: u32,
}

fn days_in_month(year: u32, month: u32) -> Option<u32> {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    Some(match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    })
}

impl Date {
    /// Parses `YYYY-MM-DD` (a real calendar date, year 0001 to 9999).
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *b else {
            return None;
        };
        let digits = [y0, y1, y2, y3, m0, m1, d0, d1];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let num = |ds: &[u8]| {
            ds.iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        Date::new(num(&[y0, y1, y2, y3]), num(&[m0, m1]), num(&[d0, d1]))
    }

    /// A real calendar date (year 1 to 9999), or `None`.
    pub fn new(year: u32, month: u32, day: u32) -> Option<Date> {
        if year == 0 || year > 9999 || day == 0 || day > days_in_month(year, month)? {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days(&self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Whether the date is before 1970-01-01 (protocol timestamps cannot express it).
    pub fn before_epoch(&self) -> bool {
        self.year < 1970
    }

    /// The date of day number `days` since 1970-01-01.
    pub fn from_days(days: u64) -> Date {
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        Date {
            year: u32::try_from(year).unwrap_or(u32::MAX),
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
        }
    }

    /// The date a timestamp (ms, UTC) falls on.
    pub fn of_ms(ms: u64) -> Date {
        Date::from_days(ms / DAY_MS)
    }

    /// The first millisecond of the day, UTC (0 for dates before 1970).
    pub fn start_ms(&self) -> u64 {
        u64::try_from(self.days()).map_or(0, |d| d * DAY_MS)
    }

    /// The last millisecond of the day, UTC: an answer "by" this date may come until then.
    pub fn end_ms(&self) -> u64 {
        self.start_ms() + DAY_MS - 1
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Formats a timestamp (ms) as RFC 3339 UTC with milliseconds: `2021-03-01T10:00:00.000Z`.
pub fn rfc3339(ms: u64) -> String {
    let d = Date::of_ms(ms);
    let rem = ms % DAY_MS;
    format!(
        "{d}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Parses an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SS[.fff]Z` into ms.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, time) = s.split_once('T')?;
    let date = Date::parse(date).filter(|d| !d.before_epoch())?;
    let time = time.strip_suffix('Z')?;
    let (hms, frac) = match time.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (time, None),
    };
    let mut parts = hms.split(':');
    let mut num = |max: u64| -> Option<u64> {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<u64>().ok().filter(|v| *v <= max)
    };
    let (h, m, sec) = (num(23)?, num(59)?, num(59)?);
    let ms = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut digits: String = f.chars().take(3).collect();
            while digits.len() < 3 {
                digits.push('0');
            }
            digits.parse::<u64>().ok()?
        }
        Some(_) => return None,
    };
    Some(date.start_ms() + h * 3_600_000 + m * 60_000 + sec * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "1970-01-01",
            "2000-02-29",
            "2021-03-01",
            "2024-12-31",
            "2100-03-01",
        ] {
            let d = Date::parse(s).unwrap();
            assert_eq!(d.to_string(), s);
            assert_eq!(Date::from_days(u64::try_from(d.days()).unwrap()), d);
            assert_eq!(Date::of_ms(d.end_ms()), d);
        }
        assert_eq!(
            Date::parse("2021-03-01").unwrap().start_ms(),
            1_614_556_800_000
        );
        assert_eq!(rfc3339(1_614_592_800_000), "2021-03-01T10:00:00.000Z");
        assert_eq!(
            parse_rfc3339("2021-03-01T10:00:00Z"),
            Some(1_614_592_800_000)
        );
        assert_eq!(
            parse_rfc3339("2021-03-01T10:00:00.5Z"),
            Some(1_614_592_800_500)
        );
    }

    #[test]
    fn impossible_dates() {
        for s in [
            "2021-02-29",
            "2021-13-01",
            "2021-00-10",
            "2021-04-31",
            "0000-01-01",
            "1900-02-29",
            "2021-1-01",
            "20210301",
            "",
            "2021-03-01x",
        ] {
            assert!(Date::parse(s).is_none(), "{s}");
        }
        assert!(parse_rfc3339("2021-03-01T24:00:00Z").is_none());
        assert!(
            parse_rfc3339("1969-12-31T23:59:59Z").is_none(),
            "timestamps start in 1970"
        );
        assert!(parse_rfc3339("2021-03-01T10:00:00+01:00").is_none());
    }
}
