//! Merging windows (session windows): how a new window joins the windows a key already
//! has — Flink's `MergingWindowSet` with `TimeWindow.mergeWindows`.
//!
//! A key's windows are kept sorted (by start, then end) and pairwise apart: windows
//! that overlap or touch have been merged. A new window therefore merges with a
//! contiguous run of them — exactly those it intersects — into their cover. Three
//! cases, as in Flink:
//! * it intersects none: it becomes a window of its own;
//! * it lies inside one window: that window takes the element, nothing merges (no
//!   trigger `on_merge`, no state moves);
//! * otherwise the run and the new window merge into their cover; the merged windows'
//!   contents and trigger state move to it, their timers are deleted.
//!
//! Flink keeps each merged window's state under a "state window" to avoid moving it;
//! eddy's state is in memory, so the operator moves the (already aggregated) state
//! into the result window instead — same results, no indirection.

use std::ops::Range;

use super::windows::Window;

/// How a new window joins a key's windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergePlan<W> {
    /// The window that takes the element.
    pub(crate) result: W,
    /// The existing windows (indices into the sorted list) that `result` replaces;
    /// empty when the new window stands alone or lies inside one of them.
    pub(crate) merged: Range<usize>,
    /// Where `result` is (when it lies inside an existing window) or goes.
    pub(crate) index: usize,
    /// Whether `result` is an existing window, unchanged.
    pub(crate) existing: bool,
}

/// Plans how `new` joins `windows` (sorted, pairwise apart; each paired with its state).
pub(crate) fn plan_merge<W: Window, E>(windows: &[(W, E)], new: &W) -> MergePlan<W> {
    // Windows are apart and sorted, so the ones `new` intersects form a run.
    let first = windows.partition_point(|(w, _)| w < new && !w.intersects(new));
    let mut end = first;
    let mut result = new.clone();
    while end < windows.len() && windows[end].0.intersects(new) {
        result = result.cover(&windows[end].0);
        end += 1;
    }
    if end == first {
        return MergePlan {
            result,
            merged: first..first,
            index: first,
            existing: false,
        };
    }
    if end - first == 1 && windows[first].0 == result {
        return MergePlan {
            result,
            merged: first..first,
            index: first,
            existing: true,
        };
    }
    MergePlan {
        result,
        merged: first..end,
        index: first,
        existing: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::windows::TimeWindow;
    use proptest::prelude::*;

    /// Flink's algorithm: sort all windows by start, merge consecutive intersecting
    /// ones; the merge result that contains the new window is the result.
    fn flink(existing: &[TimeWindow], new: TimeWindow) -> (TimeWindow, Vec<TimeWindow>) {
        let mut all: Vec<TimeWindow> = existing.to_vec();
        all.push(new);
        all.sort_by_key(|w| w.start);
        let mut groups: Vec<(TimeWindow, Vec<TimeWindow>)> = Vec::new();
        for w in all {
            match groups.last_mut() {
                Some((cover, members)) if cover.intersects(&w) => {
                    *cover = cover.cover(&w);
                    members.push(w);
                }
                _ => groups.push((w, vec![w])),
            }
        }
        let (cover, mut members) = groups
            .into_iter()
            .find(|(_, members)| members.contains(&new))
            .unwrap();
        let position = members.iter().position(|w| *w == new).unwrap();
        members.remove(position);
        members.sort();
        (cover, members)
    }

    proptest! {
        #[test]
        fn plans_match_flinks_merge(
            starts in proptest::collection::vec((0i64..200, 1i64..15), 0..12),
            new_start in 0i64..200,
            new_gap in 1i64..15,
        ) {
            // Build a valid set by adding windows one at a time.
            let mut windows: Vec<(TimeWindow, ())> = Vec::new();
            for (start, gap) in starts {
                let plan = plan_merge(&windows, &TimeWindow::new(start, start + gap));
                if !plan.existing {
                    windows.splice(plan.merged.clone(), [(plan.result, ())]);
                }
                prop_assert!(windows.windows(2).all(|p| p[0].0 < p[1].0 && !p[0].0.intersects(&p[1].0)));
            }
            let existing: Vec<TimeWindow> = windows.iter().map(|(w, _)| *w).collect();
            let new = TimeWindow::new(new_start, new_start + new_gap);
            let plan = plan_merge(&windows, &new);
            let (cover, members) = flink(&existing, new);
            prop_assert_eq!(plan.result, cover);
            if plan.existing {
                prop_assert_eq!(&members, &vec![cover]);
                prop_assert_eq!(existing[plan.index], cover);
            } else {
                prop_assert_eq!(existing[plan.merged.clone()].to_vec(), members);
                prop_assert_eq!(plan.index, plan.merged.start);
                prop_assert!(existing[..plan.index].iter().all(|w| *w < cover));
                prop_assert!(existing[plan.merged.end..].iter().all(|w| *w > cover));
            }
        }
    }
}
