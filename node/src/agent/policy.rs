//! The idle policy: when the agent may offer its host's GPUs to the pool.
//!
//! Two rules, both optional; when both are given both must hold:
//! - **utilisation**: every GPU has been below `utilisation_below_percent` for at least
//!   `idle_for_s` seconds (GPUs running one of the agent's own allocations count as idle);
//! - **windows**: now is inside one of the `windows`, e.g. `"22:00-08:00"` (every night),
//!   `"sat,sun"` (whole weekend days), `"mon-fri 18:00-24:00"`, in the policy's time zone
//!   (`local`, `utc` or a fixed offset such as `+08:00`). A window that crosses midnight
//!   belongs to the day it starts on. An offer made inside a window ends by the window's end.
//!
//! With neither rule the host is always offered. This module decides; it never sends anything
//! and never reads a clock (the runner passes the time).

use chrono::{Datelike, Offset, TimeZone, Timelike};

/// Seconds in a day.
const DAY_S: u32 = 86_400;

/// Windows a policy may list.
pub const POLICY_WINDOWS_MAX: usize = 64;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A recurring window: on `days` (Monday first), from `from_s` to `to_s` seconds of the day;
/// `from_s >= to_s` crosses midnight into the next day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    from_s: u32,
    to_s: u32,
}

const DAY_FULL_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// A day by its three-letter or full English name, any case; 0 is Monday.
fn parse_day(text: &str) -> Option<usize> {
    let lower = text.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|name| lower == *name)
        .or_else(|| DAY_FULL_NAMES.iter().position(|name| lower == *name))
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in text.split(',') {
        let item = item.trim();
        let (first, last) = match item.split_once('-') {
            Some((first, last)) => (first, last),
            None => (item, item),
        };
        let first = parse_day(first)
            .ok_or_else(|| format!("{item:?} is not a day or a range of days (mon…sun)"))?;
        let last = parse_day(last)
            .ok_or_else(|| format!("{item:?} is not a day or a range of days (mon…sun)"))?;
        // A range may wrap around the week: fri-mon is Friday to Monday.
        let mut day = first;
        loop {
            days[day] = true;
            if day == last {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    Ok(days)
}

fn parse_time(text: &str) -> Option<u32> {
    let (hours, minutes) = text.trim().split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) {
        return None;
    }
    Some(hours * 3600 + minutes * 60)
}

impl std::str::FromStr for Window {
    type Err = String;

    /// `[DAYS ]HH:MM-HH:MM` or `DAYS` alone (whole days). DAYS is a comma list of days or
    /// ranges: `sat,sun`, `mon-fri`.
    fn from_str(text: &str) -> Result<Window, String> {
        let usage = |why: String| {
            format!("invalid policy window {text:?}: {why}; expected e.g. \"22:00-08:00\", \"sat,sun\" or \"mon-fri 18:00-24:00\"")
        };
        let text_trimmed = text.trim();
        let (days_text, times_text) = match text_trimmed.rsplit_once(char::is_whitespace) {
            Some((days, times)) if times.contains(':') => (Some(days), Some(times)),
            _ if text_trimmed.contains(':') => (None, Some(text_trimmed)),
            _ => (Some(text_trimmed), None),
        };
        let days = match days_text {
            Some(days) => parse_days(days).map_err(usage)?,
            None => [true; 7],
        };
        let (from_s, to_s) = match times_text {
            None => (0, DAY_S),
            Some(times) => {
                let (from, to) = times
                    .split_once('-')
                    .ok_or_else(|| usage("times are HH:MM-HH:MM".to_owned()))?;
                let from_s =
                    parse_time(from).ok_or_else(|| usage(format!("{from:?} is not HH:MM")))?;
                let to_s = parse_time(to).ok_or_else(|| usage(format!("{to:?} is not HH:MM")))?;
                if from_s == DAY_S {
                    return Err(usage("a window cannot start at 24:00".to_owned()));
                }
                if from_s == to_s {
                    return Err(usage(
                        "the window is empty (use 00:00-24:00 for a whole day)".to_owned(),
                    ));
                }
                (from_s, to_s)
            }
        };
        Ok(Window { days, from_s, to_s })
    }
}

impl Window {
    /// Seconds until this window closes, if `second` of `weekday` (0 = Monday) is inside it.
    pub fn remaining_s(&self, weekday: usize, second: u32) -> Option<u32> {
        let previous = (weekday + 6) % 7;
        if self.from_s < self.to_s {
            (self.days[weekday % 7] && self.from_s <= second && second < self.to_s)
                .then(|| self.to_s - second)
        } else if self.days[weekday % 7] && second >= self.from_s {
            Some(DAY_S - second + self.to_s)
        } else if self.days[previous] && second < self.to_s {
            Some(self.to_s - second)
        } else {
            None
        }
    }
}

/// The time zone the windows are read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// The machine's local time zone (daylight saving included).
    Local,
    Utc,
    /// A fixed offset east of UTC, in seconds.
    Fixed(i32),
}

impl std::str::FromStr for Zone {
    type Err = String;

    fn from_str(text: &str) -> Result<Zone, String> {
        let usage = || {
            format!("invalid time zone {text:?}: use \"local\", \"utc\" or an offset such as \"+08:00\"")
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Zone::Local),
            "utc" | "z" | "+00:00" => Ok(Zone::Utc),
            other => {
                let (sign, rest) = match other.as_bytes().first() {
                    Some(b'+') => (1, &other[1..]),
                    Some(b'-') => (-1, &other[1..]),
                    _ => return Err(usage()),
                };
                let seconds = parse_time(rest)
                    .filter(|s| *s < 18 * 3600)
                    .ok_or_else(usage)?;
                Ok(Zone::Fixed(sign * seconds as i32))
            }
        }
    }
}

impl Zone {
    /// The weekday (0 = Monday) and second of the day at `now_ns` in this zone.
    pub fn weekday_and_second(&self, now_ns: u64) -> (usize, u32) {
        let seconds = (now_ns / 1_000_000_000) as i64;
        let utc = chrono::DateTime::<chrono::Utc>::from_timestamp(seconds, 0).unwrap_or_default();
        let offset_s = match self {
            Zone::Utc => 0,
            Zone::Fixed(offset) => *offset,
            Zone::Local => chrono::Local
                .offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc(),
        };
        let local = utc.naive_utc() + chrono::Duration::seconds(i64::from(offset_s));
        (
            local.weekday().num_days_from_monday() as usize,
            local.num_seconds_from_midnight(),
        )
    }
}

/// The idle policy from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Offer only when every GPU has been below this utilisation…
    pub utilisation_below_percent: Option<u32>,
    /// …for at least this long.
    pub idle_for_s: u64,
    /// Offer only inside one of these (none: any time).
    pub windows: Vec<Window>,
    pub zone: Zone,
}

/// What the policy says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Offer a window of at most `length_max_s` seconds (`u64::MAX`: no limit from the policy).
    Offer { length_max_s: u64 },
    /// Do not offer now: `code` names the rule that holds it back (`outside_windows`,
    /// `gpus_in_use`, `not_idle_long_enough`), `reason` says it in words.
    Wait { code: &'static str, reason: String },
}

impl Policy {
    /// Whether to offer at `now_ns`, given how long the GPUs have been idle.
    pub fn decide(&self, now_ns: u64, idle: &IdleTracker) -> Decision {
        let mut length_max_s = u64::MAX;
        if !self.windows.is_empty() {
            let (weekday, second) = self.zone.weekday_and_second(now_ns);
            let remaining = self
                .windows
                .iter()
                .filter_map(|window| window.remaining_s(weekday, second))
                .max();
            match remaining {
                Some(remaining) => length_max_s = u64::from(remaining),
                None => {
                    return Decision::Wait {
                        code: "outside_windows",
                        reason: "outside the policy windows".to_owned(),
                    }
                }
            }
        }
        if let Some(threshold) = self.utilisation_below_percent {
            match idle.idle_since_ns {
                None => {
                    return Decision::Wait {
                        code: "gpus_in_use",
                        reason: format!("a GPU is at or above {threshold}% utilisation, or down"),
                    }
                }
                Some(since) => {
                    let idle_s = now_ns.saturating_sub(since) / 1_000_000_000;
                    if idle_s < self.idle_for_s {
                        return Decision::Wait {
                            code: "not_idle_long_enough",
                            reason: format!(
                                "idle for {idle_s} s of the {} s required",
                                self.idle_for_s
                            ),
                        };
                    }
                }
            }
        }
        Decision::Offer { length_max_s }
    }
}

/// Since when every GPU has been idle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdleTracker {
    idle_since_ns: Option<u64>,
}

impl IdleTracker {
    /// Records a sample: `utilisations[i]` is GPU i's utilisation, `None` if it is down. A GPU
    /// running one of the agent's own allocations should be passed as `Some(0)`.
    pub fn observe(&mut self, now_ns: u64, utilisations: &[Option<u32>], threshold_percent: u32) {
        let idle = utilisations
            .iter()
            .all(|utilisation| utilisation.is_some_and(|percent| percent < threshold_percent));
        if idle {
            self.idle_since_ns.get_or_insert(now_ns);
        } else {
            self.idle_since_ns = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    /// 2026-01-05 00:00:00 UTC, a Monday.
    const MONDAY_NS: u64 = 1_767_571_200 * S;

    fn at(day: u64, hours: u64, minutes: u64) -> u64 {
        MONDAY_NS + (day * 86_400 + hours * 3600 + minutes * 60) * S
    }

    #[test]
    fn windows_parse_or_explain() {
        let night: Window = "22:00-08:00".parse().unwrap();
        assert_eq!(
            night,
            Window {
                days: [true; 7],
                from_s: 79_200,
                to_s: 28_800
            }
        );
        let weekend: Window = "sat,sun".parse().unwrap();
        assert_eq!(
            weekend.days,
            [false, false, false, false, false, true, true]
        );
        assert_eq!((weekend.from_s, weekend.to_s), (0, DAY_S));
        let evenings: Window = "Mon-Fri 18:00-24:00".parse().unwrap();
        assert_eq!(evenings.days, [true, true, true, true, true, false, false]);
        assert_eq!(
            "fri-mon".parse::<Window>().unwrap().days,
            [true, false, false, false, true, true, true]
        );
        assert!("saturday".parse::<Window>().unwrap().days[5]);
        assert_eq!("sat, sun".parse::<Window>().unwrap(), weekend);
        for bad in [
            "",
            "22:00",
            "22-08",
            "25:00-08:00",
            "08:00-08:00",
            "24:00-08:00",
            "xyz",
            "mon-xyz 10:00-11:00",
            "10:60-11:00",
            "8:00-9:00",
            "satur",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_contain_the_right_times_and_say_when_they_close() {
        let night: Window = "22:00-08:00".parse().unwrap();
        assert_eq!(night.remaining_s(0, 23 * 3600), Some(9 * 3600));
        assert_eq!(night.remaining_s(0, 7 * 3600), Some(3600));
        assert_eq!(night.remaining_s(0, 8 * 3600), None);
        assert_eq!(night.remaining_s(0, 12 * 3600), None);
        // A night window only on Fridays covers Friday night and early Saturday.
        let friday_night: Window = "fri 22:00-08:00".parse().unwrap();
        assert_eq!(friday_night.remaining_s(4, 23 * 3600), Some(9 * 3600));
        assert_eq!(friday_night.remaining_s(5, 3600), Some(7 * 3600));
        assert_eq!(friday_night.remaining_s(3, 23 * 3600), None);
        assert_eq!(friday_night.remaining_s(4, 3600), None);
        let weekend: Window = "sat,sun".parse().unwrap();
        assert_eq!(weekend.remaining_s(6, 0), Some(DAY_S));
        assert_eq!(weekend.remaining_s(0, 0), None);
    }

    #[test]
    fn zones_parse_and_shift_the_clock() {
        assert_eq!("local".parse::<Zone>(), Ok(Zone::Local));
        assert_eq!("UTC".parse::<Zone>(), Ok(Zone::Utc));
        assert_eq!("+08:00".parse::<Zone>(), Ok(Zone::Fixed(8 * 3600)));
        assert_eq!(
            "-05:30".parse::<Zone>(),
            Ok(Zone::Fixed(-(5 * 3600 + 1800)))
        );
        for bad in ["", "cst", "+8", "+25:00", "08:00"] {
            assert!(bad.parse::<Zone>().is_err(), "{bad}");
        }
        assert_eq!(Zone::Utc.weekday_and_second(at(0, 1, 0)), (0, 3600));
        // 20:00 UTC on Monday is 04:00 on Tuesday in UTC+8.
        assert_eq!(
            Zone::Fixed(8 * 3600).weekday_and_second(at(0, 20, 0)),
            (1, 4 * 3600)
        );
        assert_eq!(
            Zone::Fixed(-3600).weekday_and_second(at(0, 0, 30)),
            (6, 23 * 3600 + 1800)
        );
    }

    #[test]
    fn the_policy_needs_both_rules_when_both_are_given() {
        let policy = Policy {
            utilisation_below_percent: Some(10),
            idle_for_s: 600,
            windows: vec!["22:00-08:00".parse().unwrap(), "sat,sun".parse().unwrap()],
            zone: Zone::Utc,
        };
        let mut idle = IdleTracker::default();
        let start = at(0, 21, 0);
        idle.observe(start, &[Some(3), Some(0)], 10);
        // Idle, but outside the windows.
        assert!(matches!(
            policy.decide(start + 700 * S, &idle),
            Decision::Wait {
                code: "outside_windows",
                ..
            }
        ));
        // Inside the night window and idle long enough: offer until 08:00.
        assert_eq!(
            policy.decide(at(0, 23, 0), &idle),
            Decision::Offer {
                length_max_s: 9 * 3600
            }
        );
        // A GPU gets busy: the idle time starts again.
        idle.observe(at(0, 23, 1), &[Some(50), Some(0)], 10);
        assert!(matches!(
            policy.decide(at(0, 23, 2), &idle),
            Decision::Wait { .. }
        ));
        idle.observe(at(0, 23, 3), &[Some(5), Some(0)], 10);
        assert!(
            matches!(policy.decide(at(0, 23, 8), &idle), Decision::Wait { code: "not_idle_long_enough", reason } if reason.contains("idle for 300 s"))
        );
        assert!(matches!(
            policy.decide(at(0, 23, 13), &idle),
            Decision::Offer { .. }
        ));
        // A lost GPU is not idle.
        idle.observe(at(0, 23, 14), &[None, Some(0)], 10);
        assert!(matches!(
            policy.decide(at(0, 23, 30), &idle),
            Decision::Wait { .. }
        ));
        // Saturday noon: the weekend window runs to midnight.
        let mut idle = IdleTracker::default();
        idle.observe(at(5, 11, 0), &[Some(0)], 10);
        assert_eq!(
            policy.decide(at(5, 12, 0), &idle),
            Decision::Offer {
                length_max_s: 12 * 3600
            }
        );
        // No rules: always.
        let always = Policy {
            utilisation_below_percent: None,
            idle_for_s: 0,
            windows: vec![],
            zone: Zone::Local,
        };
        assert_eq!(
            always.decide(at(2, 12, 0), &IdleTracker::default()),
            Decision::Offer {
                length_max_s: u64::MAX
            }
        );
    }
}
