//! The window a statistics query covers and how it splits into rollup rows.

use chrono::{DateTime, Datelike as _, Duration, TimeDelta, Utc};
use uuid::Uuid;

use super::AnalyticsError;

/// Points a series may have.
pub const MAX_POINTS: i64 = 1000;
const DEFAULT_WINDOW: TimeDelta = TimeDelta::hours(24);
const MINUTE: TimeDelta = TimeDelta::minutes(1);
const HOUR: TimeDelta = TimeDelta::hours(1);

/// The years a window may name: those RFC 3339 writes with four digits.
/// Far inside chrono's range (±262,143), so moving a bound by a day or to
/// a whole minute cannot overflow.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Whose executions: one function's, or every function's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Function(Uuid),
    Platform,
}

/// `[start, end)`, both on whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// `at` rounded down to a multiple of `step` (whole seconds) since the epoch.
/// In seconds rather than with chrono's `duration_trunc`, which counts in
/// nanoseconds and so fails outside the years 1677 to 2262.
fn floor(at: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    let step = step.num_seconds();
    if step <= 0 {
        return at;
    }
    DateTime::from_timestamp(at.timestamp().div_euclid(step) * step, 0).unwrap_or(at)
}

fn ceil(at: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    let down = floor(at, step);
    if down == at { at } else { down + step }
}

impl Window {
    /// `since`..`until` (default: the 24 hours up to `now`), widened to whole
    /// minutes; `until` must be later than `since`.
    pub fn new(
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, AnalyticsError> {
        for (name, at) in [("since", since), ("until", until)] {
            if let Some(at) = at
                && !YEARS.contains(&at.year())
            {
                return Err(AnalyticsError::BadArgument(format!(
                    "`{name}` ({at}) must be within the years {} to {}",
                    YEARS.start(),
                    YEARS.end()
                )));
            }
        }
        let until = until.unwrap_or(now);
        let since = since.unwrap_or(until - DEFAULT_WINDOW);
        if until <= since {
            return Err(AnalyticsError::BadArgument(format!(
                "`until` ({until}) must be later than `since` ({since})"
            )));
        }
        Ok(Self {
            start: floor(since, MINUTE),
            end: ceil(until, MINUTE),
        })
    }

    /// The whole hours inside the window, `[start, end)`; empty (both at the
    /// window's end) when there is none. Minute rows cover the rest.
    pub fn whole_hours(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let (first, last) = (ceil(self.start, HOUR), floor(self.end, HOUR));
        if first < last {
            (first, last)
        } else {
            (self.end, self.end)
        }
    }
}

/// Which rollup rows a window is read from: hour rows for its whole hours
/// and minute rows for the rest, or minute rows throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Hours,
    Minutes,
}

/// The points of a series: `bucket_seconds` wide, aligned to multiples of
/// it since the epoch (so hour rows never straddle a point when it is a
/// multiple of 3600), covering the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesBuckets {
    pub origin: DateTime<Utc>,
    pub width: TimeDelta,
    pub points: usize,
}

impl SeriesBuckets {
    pub fn new(window: &Window, bucket_seconds: i32) -> Result<Self, AnalyticsError> {
        if !(60..=86_400).contains(&bucket_seconds) || bucket_seconds % 60 != 0 {
            return Err(AnalyticsError::BadArgument(format!(
                "`bucketSeconds` must be a multiple of 60 from 60 to 86400, got {bucket_seconds}"
            )));
        }
        let width = Duration::seconds(bucket_seconds.into());
        let origin = floor(window.start, width);
        let span = (window.end - origin).num_seconds();
        let points = (span + i64::from(bucket_seconds) - 1) / i64::from(bucket_seconds);
        if points > MAX_POINTS {
            return Err(AnalyticsError::BadArgument(format!(
                "a series of {bucket_seconds}-second buckets over this window has {points} points; \
                 the limit is {MAX_POINTS}: use larger buckets or a shorter window"
            )));
        }
        Ok(Self {
            origin,
            width,
            points: points as usize,
        })
    }

    /// The finest rows its points need: hour rows when every point is whole
    /// hours, minute rows otherwise.
    pub fn resolution(&self) -> Resolution {
        if self.width.num_seconds() % 3600 == 0 {
            Resolution::Hours
        } else {
            Resolution::Minutes
        }
    }

    /// The point a rollup row starting at `bucket` belongs to.
    pub fn index_of(&self, bucket: DateTime<Utc>) -> Option<usize> {
        let offset = (bucket - self.origin).num_seconds();
        if offset < 0 {
            return None;
        }
        let index = (offset / self.width.num_seconds()) as usize;
        (index < self.points).then_some(index)
    }

    pub fn start_of(&self, index: usize) -> DateTime<Utc> {
        self.origin + self.width * index as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn windows_widen_to_whole_minutes_and_default_to_a_day() {
        let now = at("2026-12-01T10:30:30Z");
        let window = Window::new(None, None, now).unwrap();
        assert_eq!(window.start, at("2026-11-30T10:30:00Z"));
        assert_eq!(window.end, at("2026-12-01T10:31:00Z"));
        let since = Window::new(Some(at("2026-12-01T09:00:00Z")), None, now).unwrap();
        assert_eq!(since.start, at("2026-12-01T09:00:00Z"));
        assert!(Window::new(Some(now), Some(now), now).is_err());
        assert!(Window::new(Some(now), Some(now - MINUTE), now).is_err());
    }

    #[test]
    fn times_beyond_four_digit_years_are_refused_not_overflowed() {
        let now = at("2026-12-01T10:30:30Z");
        let earliest = at("-262143-01-01T12:00:00Z");
        let latest = at("+262142-12-31T23:59:30Z");
        for (since, until) in [
            (None, Some(earliest)),
            (Some(earliest), None),
            (Some(now), Some(latest)),
            (Some(at("+10000-01-01T00:00:00Z")), Some(latest)),
        ] {
            let refused = Window::new(since, until, now).unwrap_err().to_string();
            assert!(refused.contains("within the years 1 to 9999"), "{refused}");
        }
        let edges = Window::new(
            Some(at("0001-01-01T00:00:00Z")),
            Some(at("9999-12-31T23:59:30Z")),
            now,
        )
        .unwrap();
        assert_eq!(edges.end, at("+10000-01-01T00:00:00Z"));
        let hours = Window::new(
            Some(at("0001-01-01T00:30:00Z")),
            Some(at("9999-12-31T22:30:00Z")),
            now,
        )
        .unwrap()
        .whole_hours();
        assert_eq!(
            hours,
            (at("0001-01-01T01:00:00Z"), at("9999-12-31T22:00:00Z"))
        );
        assert!(Window::new(None, Some(at("0001-01-01T00:00:00Z")), now).is_ok());
    }

    #[test]
    fn whole_hours_leave_the_edges_to_minutes() {
        let now = at("2026-12-01T10:30:00Z");
        let w = Window::new(Some(at("2026-12-01T07:15:00Z")), Some(now), now).unwrap();
        assert_eq!(
            w.whole_hours(),
            (at("2026-12-01T08:00:00Z"), at("2026-12-01T10:00:00Z"))
        );
        let short = Window::new(Some(at("2026-12-01T10:05:00Z")), Some(now), now).unwrap();
        assert_eq!(short.whole_hours(), (short.end, short.end));
    }

    #[test]
    fn series_buckets_are_validated_and_aligned() {
        let now = at("2026-12-01T10:30:00Z");
        let day = Window::new(None, Some(now), now).unwrap();
        for bad in [0, 59, 61, 90, 86_460, -60] {
            assert!(SeriesBuckets::new(&day, bad).is_err(), "{bad}");
        }
        let minutes = SeriesBuckets::new(&day, 60);
        assert!(minutes.is_err(), "1440 points");
        let hourly = SeriesBuckets::new(&day, 3600).unwrap();
        assert_eq!(hourly.origin, at("2026-11-30T10:00:00Z"));
        assert_eq!(hourly.points, 25);
        assert_eq!(hourly.resolution(), Resolution::Hours);
        assert_eq!(hourly.index_of(at("2026-12-01T10:29:00Z")), Some(24));
        assert_eq!(hourly.index_of(at("2026-11-30T09:59:00Z")), None);
        assert_eq!(hourly.start_of(1), at("2026-11-30T11:00:00Z"));
        let ten_minutes = SeriesBuckets::new(&day, 600).unwrap();
        assert_eq!(ten_minutes.resolution(), Resolution::Minutes);
    }
}
