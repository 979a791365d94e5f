//! Metering arithmetic: turns per-GPU down and busy spans into the three GPU-second counts of
//! a meter report, and decides which interval the next report covers.
//!
//! Time is counted on the offer's **grid**: whole seconds from the window start (`start_ns`),
//! so every report boundary is a whole number of seconds from the start and from the
//! previous report, as `spec/bank.md` §4.4 requires even for a window that does not start on a
//! whole second of Unix time. For each GPU and each second of a report, exactly one of three
//! things holds: **down** (a scripted fault, a lost GPU, the owner using it, or a time the agent
//! was not watching), else **busy** (under an allocation the agent runs), else **available**.
//! So `available + busy + down = gpu_count × seconds` by construction, whatever the spans.
//!
//! Pure: no clock, no I/O. The runner brings the time and the spans.

use ledger::limits::NS_PER_S;

/// `[start, end)` in seconds on an offer's grid (negative: before the window).
pub type Span = (i64, i64);

/// A time long before any window, as a span start: "since ever".
pub const SINCE_EVER_S: i64 = i64::MIN / 4;

/// A time long after any window, as a span end: "until further notice".
pub const UNTIL_FURTHER_NOTICE_S: i64 = i64::MAX / 4;

/// The three parts of a meter report, in GPU-seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub available_gpu_s: u64,
    pub busy_gpu_s: u64,
    pub down_gpu_s: u64,
}

impl Counts {
    pub fn total_gpu_s(&self) -> u64 {
        self.available_gpu_s + self.busy_gpu_s + self.down_gpu_s
    }
}

/// What is known of one GPU: when it was down and when it was busy (spans may overlap, in any
/// order; down wins over busy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuTimeline {
    pub down: Vec<Span>,
    pub busy: Vec<Span>,
}

/// An offer's grid: converts nanoseconds since the Unix epoch to seconds from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub start_ns: u64,
}

impl Grid {
    /// The grid second that contains `ns` (rounded towards the past).
    pub fn floor(&self, ns: u64) -> i64 {
        let offset = i128::from(ns) - i128::from(self.start_ns);
        clamp_s(offset.div_euclid(i128::from(NS_PER_S)))
    }

    /// The first grid second at or after `ns` (rounded towards the future).
    pub fn ceil(&self, ns: u64) -> i64 {
        let offset = i128::from(ns) - i128::from(self.start_ns);
        let step = i128::from(NS_PER_S);
        clamp_s((offset + step - 1).div_euclid(step))
    }

    /// The instant of grid second `s`, if it is a valid timestamp.
    pub fn ns(&self, s: i64) -> Option<u64> {
        let ns = i128::from(self.start_ns) + i128::from(s) * i128::from(NS_PER_S);
        u64::try_from(ns).ok()
    }
}

fn clamp_s(value: i128) -> i64 {
    value.clamp(i128::from(SINCE_EVER_S), i128::from(UNTIL_FURTHER_NOTICE_S)) as i64
}

/// Sorts spans and joins those that overlap or touch; drops empty ones.
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|(start, end)| start < end);
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// `spans` cut to `[from, to)`.
fn clip(spans: &[Span], from: i64, to: i64) -> Vec<Span> {
    spans
        .iter()
        .map(|&(start, end)| (start.max(from), end.min(to)))
        .filter(|(start, end)| start < end)
        .collect()
}

/// Seconds covered by merged spans.
fn length(merged: &[Span]) -> u64 {
    merged.iter().map(|(start, end)| (end - start) as u64).sum()
}

/// Merged `a` less merged `b`.
fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &(start, end) in a {
        let mut cursor = start;
        for &(b_start, b_end) in b {
            if b_end <= cursor || b_start >= end {
                continue;
            }
            if b_start > cursor {
                out.push((cursor, b_start));
            }
            cursor = cursor.max(b_end);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            out.push((cursor, end));
        }
    }
    out
}

/// The counts of `[from_s, to_s)` for these GPUs (one timeline each).
pub fn count(timelines: &[GpuTimeline], from_s: i64, to_s: i64) -> Counts {
    let seconds = (to_s - from_s).max(0) as u64;
    let mut counts = Counts::default();
    for timeline in timelines {
        let down = merge(clip(&timeline.down, from_s, to_s));
        let busy = subtract(&merge(clip(&timeline.busy, from_s, to_s)), &down);
        let down_s = length(&down);
        let busy_s = length(&busy);
        counts.down_gpu_s += down_s;
        counts.busy_gpu_s += busy_s;
        counts.available_gpu_s += seconds - down_s - busy_s;
    }
    counts
}

/// The interval the next report covers, or `None` if there is nothing to report yet.
///
/// Reports end on the grid's multiples of `interval_s` (so a restarted agent cuts the same
/// boundaries), or at the window end `end_s`; each starts where the ledger says the last one
/// ended (`reported_until_s`), so reports never overlap and a catch-up report after a pause
/// covers the whole pause in one piece. `now_s` is the grid second that contains now: a
/// report never ends in the future.
pub fn next_report_span(
    reported_until_s: i64,
    now_s: i64,
    end_s: i64,
    interval_s: i64,
) -> Option<Span> {
    if interval_s <= 0 {
        return None;
    }
    let to = if now_s >= end_s {
        end_s
    } else {
        now_s.div_euclid(interval_s) * interval_s
    };
    (to > reported_until_s).then_some((reported_until_s, to))
}

/// What the agent saw of real GPUs since it started: for each GPU, when it was down. Before
/// the first sample nothing is known, so that time counts as down: a restarted agent cannot
/// tell whether a real GPU was usable while nobody watched it (`spec/agent.md`, Metering).
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// The first sample's instant: everything before it is unknown (down).
    observed_from_ns: Option<u64>,
    /// The last sample's instant: a sample's state covers the time since the one before.
    last_sample_ns: Option<u64>,
    /// Per GPU position: down spans in nanoseconds, merged as they come.
    down_ns: Vec<Vec<(u64, u64)>>,
}

impl Observations {
    pub fn new(gpu_count: usize) -> Observations {
        Observations {
            observed_from_ns: None,
            last_sample_ns: None,
            down_ns: vec![Vec::new(); gpu_count],
        }
    }

    /// Records a sample at `now_ns`: GPU `i` was down since the last sample if `down[i]`.
    /// A sample older than the last one is ignored.
    pub fn record(&mut self, now_ns: u64, down: &[bool]) {
        let Some(last) = self.last_sample_ns else {
            self.observed_from_ns = Some(now_ns);
            self.last_sample_ns = Some(now_ns);
            return;
        };
        if now_ns <= last {
            return;
        }
        for (spans, is_down) in self.down_ns.iter_mut().zip(down) {
            if !is_down {
                continue;
            }
            match spans.last_mut() {
                Some(span) if span.1 == last => span.1 = now_ns,
                _ => spans.push((last, now_ns)),
            }
        }
        self.last_sample_ns = Some(now_ns);
    }

    /// The last sample's instant.
    pub fn last_sample_ns(&self) -> Option<u64> {
        self.last_sample_ns
    }

    /// GPU `gpu`'s down spans on `grid`: the unobserved past, and every observed span widened
    /// to whole seconds (a partly down second is down).
    pub fn down_spans(&self, gpu: usize, grid: Grid) -> Vec<Span> {
        let unobserved_until = self
            .observed_from_ns
            .map_or(UNTIL_FURTHER_NOTICE_S, |ns| grid.ceil(ns));
        let mut spans = vec![(SINCE_EVER_S, unobserved_until)];
        if let Some(observed) = self.down_ns.get(gpu) {
            spans.extend(
                observed
                    .iter()
                    .map(|&(start, end)| (grid.floor(start), grid.ceil(end))),
            );
        }
        spans
    }

    /// Forgets spans that end before `ns` (already reported).
    pub fn forget_before(&mut self, ns: u64) {
        for spans in &mut self.down_ns {
            spans.retain(|&(_, end)| end >= ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(down: &[Span], busy: &[Span]) -> GpuTimeline {
        GpuTimeline {
            down: down.to_vec(),
            busy: busy.to_vec(),
        }
    }

    /// Down spans, busy spans, report `[from, to)`, and the expected (available, busy, down).
    type Case = (&'static [Span], &'static [Span], i64, i64, (u64, u64, u64));

    #[test]
    fn counts_split_each_gpu_second_once() {
        let cases: [Case; 7] = [
            (&[], &[], 0, 60, (60, 0, 0)),
            (&[(10, 20)], &[], 0, 60, (50, 0, 10)),
            (&[(10, 20)], &[(15, 40)], 0, 60, (30, 20, 10)),
            // Overlapping and unsorted spans count once.
            (
                &[(30, 40), (10, 20), (15, 35)],
                &[(0, 5), (2, 8)],
                0,
                60,
                (22, 8, 30),
            ),
            // Only the part inside the report counts.
            (&[(-100, 5)], &[(55, 1000)], 0, 60, (50, 5, 5)),
            (&[(SINCE_EVER_S, 30)], &[], 20, 40, (10, 0, 10)),
            (&[(0, 60)], &[(0, 60)], 0, 60, (0, 0, 60)),
        ];
        for (down, busy, from, to, (available, busy_s, down_s)) in cases {
            let counts = count(&[timeline(down, busy)], from, to);
            assert_eq!(
                counts,
                Counts {
                    available_gpu_s: available,
                    busy_gpu_s: busy_s,
                    down_gpu_s: down_s
                },
                "down {down:?} busy {busy:?} [{from}, {to})"
            );
        }
    }

    #[test]
    fn sums_always_equal_gpu_count_times_seconds() {
        // A seeded walk over random spans; prints the seed on failure.
        let seed = 0x5eed_u64;
        let mut state = seed;
        let mut next = |bound: i64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as i64 - bound / 4
        };
        for round in 0..500 {
            let gpus = 1 + next(8).unsigned_abs() as usize % 8;
            let timelines: Vec<GpuTimeline> = (0..gpus)
                .map(|_| {
                    let spans = |next: &mut dyn FnMut(i64) -> i64| {
                        (0..next(6).unsigned_abs())
                            .map(|_| {
                                let start = next(200);
                                (start, start + next(80))
                            })
                            .collect::<Vec<Span>>()
                    };
                    GpuTimeline {
                        down: spans(&mut next),
                        busy: spans(&mut next),
                    }
                })
                .collect();
            let from = next(100);
            let to = from + next(150).abs();
            let counts = count(&timelines, from, to);
            assert_eq!(
                counts.total_gpu_s(),
                gpus as u64 * (to - from) as u64,
                "seed {seed:#x} round {round}"
            );
            // Splitting the interval anywhere gives the same totals.
            let middle = from + (to - from) / 3;
            let first = count(&timelines, from, middle);
            let second = count(&timelines, middle, to);
            assert_eq!(
                (
                    first.available_gpu_s + second.available_gpu_s,
                    first.busy_gpu_s + second.busy_gpu_s,
                    first.down_gpu_s + second.down_gpu_s
                ),
                (counts.available_gpu_s, counts.busy_gpu_s, counts.down_gpu_s),
                "seed {seed:#x} round {round}"
            );
        }
    }

    #[test]
    fn reports_tile_the_window_without_overlap() {
        // A 100 s window metered every 30 s, with the agent waking at uneven times.
        let (end, interval) = (100, 30);
        let mut reported_until = 0;
        let mut spans = Vec::new();
        for now in [-5, 0, 10, 29, 30, 31, 75, 89, 90, 99, 100, 130, 500] {
            if let Some((from, to)) = next_report_span(reported_until, now, end, interval) {
                assert_eq!(from, reported_until, "starts where the last one ended");
                assert!(to <= now, "never in the future");
                assert!(to <= end, "never past the window");
                spans.push((from, to));
                reported_until = to;
            }
        }
        assert_eq!(spans, vec![(0, 30), (30, 60), (60, 90), (90, 100)]);
        // A restart after a long pause catches up in one report, ending on a boundary.
        assert_eq!(next_report_span(30, 95, 200, 30), Some((30, 90)));
        assert_eq!(next_report_span(30, 31, 200, 30), None);
        assert_eq!(next_report_span(0, 10, 100, 0), None);
    }

    #[test]
    fn the_grid_rounds_both_ways_around_an_odd_start() {
        let grid = Grid {
            start_ns: 1_000_000_500,
        };
        assert_eq!(grid.floor(1_000_000_500), 0);
        assert_eq!(grid.ceil(1_000_000_500), 0);
        assert_eq!(grid.floor(1_000_000_499), -1);
        assert_eq!(grid.ceil(1_000_000_501), 1);
        assert_eq!(grid.floor(3_000_000_500), 2);
        assert_eq!(grid.ns(2), Some(3_000_000_500));
        assert_eq!(grid.ns(-2), None);
        assert_eq!(grid.floor(0), -2);
    }

    #[test]
    fn observations_count_the_unwatched_past_as_down() {
        let grid = Grid { start_ns: 0 };
        let mut observations = Observations::new(2);
        observations.record(10 * NS_PER_S + 5, &[true, true]); // first sample: only a start
        observations.record(12 * NS_PER_S, &[false, true]);
        observations.record(15 * NS_PER_S, &[false, true]);
        observations.record(14 * NS_PER_S, &[true, true]); // out of order: ignored
        observations.record(20 * NS_PER_S, &[true, false]);
        let timelines: Vec<GpuTimeline> = (0..2)
            .map(|gpu| GpuTimeline {
                down: observations.down_spans(gpu, grid),
                busy: vec![],
            })
            .collect();
        let counts = count(&timelines, 0, 20);
        // GPU 0: [0, 11) unwatched, [15, 20) down; GPU 1: [0, 11) unwatched, [10, 15) down.
        assert_eq!(counts.down_gpu_s, (11 + 5) + 15);
        assert_eq!(counts.total_gpu_s(), 40);
        observations.forget_before(16 * NS_PER_S);
        assert_eq!(observations.down_ns[1], vec![]);
        assert_eq!(
            observations.down_ns[0],
            vec![(15 * NS_PER_S, 20 * NS_PER_S)]
        );
    }
}
