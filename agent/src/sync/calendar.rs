//! The absence calendar window: which people's absences may have changed since the last run.
//!
//! Loket has no employer-wide list of absence records and no version number for them, so an
//! incremental run cannot ask "what changed". It reads the employer-wide absence calendar for a
//! window around today instead, and compares, per person, the days the calendar shows as absent
//! with the days the stored absences cover. A new sick report, a recovery, a withdrawn absence and
//! a corrected first or last day all change those days; a person whose days match and who has no
//! open absence is not asked again. People with an open absence are always asked (their progress
//! can change without the days changing).
//!
//! The comparison is on merged day ranges clipped to the window, so it does not depend on whether
//! the calendar clips its periods to the window, splits them, or lists one entry per employment.
//! A period without a first day cannot be compared and marks its person as changed: a mismatch
//! costs one request, never a missed change.

use std::collections::{HashMap, HashSet};

use chrono::{Days, NaiveDate};

/// The days the calendar was read for, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// One absence period as a first day (unknown if `None`) and a last day (open if `None`).
pub type Period = (Option<NaiveDate>, Option<NaiveDate>);

/// Merged, disjoint, sorted day ranges inside the window; `None` when a period has no first day.
fn coverage(periods: &[Period], window: Window) -> Option<Vec<(NaiveDate, NaiveDate)>> {
    let mut ranges = Vec::with_capacity(periods.len());
    for &(first, last) in periods {
        let first = first?;
        let start = first.max(window.start);
        let end = last.map_or(window.end, |l| l.min(window.end));
        if start <= end {
            ranges.push((start, end));
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(NaiveDate, NaiveDate)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            // Overlapping or adjacent days form one range.
            Some(last)
                if last
                    .1
                    .checked_add_days(Days::new(1))
                    .is_none_or(|n| start <= n) =>
            {
                last.1 = last.1.max(end);
            }
            _ => merged.push((start, end)),
        }
    }
    Some(merged)
}

/// People whose absent days in the window differ between the calendar and the stored absences.
pub fn changed_people(
    calendar: &HashMap<String, Vec<Period>>,
    stored: &HashMap<String, Vec<Period>>,
    window: Window,
) -> HashSet<String> {
    let none: Vec<Period> = Vec::new();
    calendar
        .keys()
        .chain(stored.keys())
        .filter(|id| {
            let shown = coverage(calendar.get(*id).unwrap_or(&none), window);
            let kept = coverage(stored.get(*id).unwrap_or(&none), window);
            shown.is_none() || shown != kept
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(day: u32) -> NaiveDate {
        // Days 1..=400 from a fixed origin; tests only use small offsets.
        NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date") + Days::new(u64::from(day))
    }

    fn window() -> Window {
        Window {
            start: d(100),
            end: d(200),
        }
    }

    fn people(list: &[(&str, Vec<Period>)]) -> HashMap<String, Vec<Period>> {
        list.iter()
            .map(|(id, p)| (id.to_string(), p.clone()))
            .collect()
    }

    #[test]
    fn same_days_are_unchanged_however_the_calendar_cuts_them() {
        let stored = people(&[("a", vec![(Some(d(50)), Some(d(120)))])]);
        // Unclipped, clipped to the window, and split per day range across two employments.
        for shown in [
            vec![(Some(d(50)), Some(d(120)))],
            vec![(Some(d(100)), Some(d(120)))],
            vec![(Some(d(90)), Some(d(110))), (Some(d(111)), Some(d(120)))],
        ] {
            let cal = people(&[("a", shown)]);
            assert!(changed_people(&cal, &stored, window()).is_empty());
        }
    }

    #[test]
    fn new_closed_withdrawn_and_corrected_absences_are_changes() {
        let stored = people(&[
            ("closed", vec![(Some(d(110)), Some(d(115)))]),
            ("withdrawn", vec![(Some(d(120)), Some(d(125)))]),
            ("open", vec![(Some(d(130)), None)]),
            ("same", vec![(Some(d(140)), Some(d(150)))]),
        ]);
        let cal = people(&[
            ("new", vec![(Some(d(190)), None)]),
            ("closed", vec![(Some(d(110)), Some(d(114)))]),
            ("open", vec![(Some(d(130)), Some(d(160)))]),
            ("same", vec![(Some(d(140)), Some(d(150)))]),
        ]);
        let changed = changed_people(&cal, &stored, window());
        let expected: HashSet<String> = ["new", "closed", "withdrawn", "open"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(changed, expected);
    }

    #[test]
    fn days_outside_the_window_do_not_count_and_unknown_first_days_do() {
        let stored = people(&[("a", vec![(Some(d(10)), Some(d(20)))])]);
        assert!(changed_people(&HashMap::new(), &stored, window()).is_empty());
        let cal = people(&[("b", vec![(None, Some(d(150)))])]);
        assert_eq!(
            changed_people(&cal, &HashMap::new(), window()),
            HashSet::from(["b".to_string()])
        );
    }

    proptest! {
        /// Coverage is a set of days: splitting a period at any day, or listing it twice, never
        /// changes it, and a person with identical periods on both sides is never changed.
        #[test]
        fn coverage_is_a_set_of_days(
            periods in prop::collection::vec((0u32..300, 0u32..60, any::<bool>()), 0..6),
            cut in 0u32..60,
        ) {
            let as_periods: Vec<Period> = periods
                .iter()
                .map(|&(s, len, open)| (Some(d(s)), (!open).then(|| d(s + len))))
                .collect();
            let mut split: Vec<Period> = Vec::new();
            for &(s, len, open) in &periods {
                let c = cut.min(len);
                split.push((Some(d(s)), Some(d(s + c))));
                split.push((Some(d(s + c)), (!open).then(|| d(s + len))));
                split.push((Some(d(s)), (!open).then(|| d(s + len))));
            }
            prop_assert_eq!(coverage(&as_periods, window()), coverage(&split, window()));
            let cal = people(&[("x", as_periods.clone())]);
            prop_assert!(changed_people(&cal, &cal, window()).is_empty());
        }
    }
}
