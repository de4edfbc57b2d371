//! The order of the slots on each row, chosen to cut edge crossings: a first
//! order from a walk down the edges, then sweeps that sort each row by where
//! its neighbours on the row above (or below) sit, keeping the best order seen.

use crate::layers::Layered;

/// At most this many sweeps.
const MAX_SWEEPS: usize = 24;
/// Stop after this many sweeps that found nothing better.
const PATIENCE: usize = 4;

/// Orders `layered.rows` in place.
pub(crate) fn order(layered: &mut Layered) {
    first_order(layered);
    let mut best = layered.rows.clone();
    let mut best_crossings = crossings(layered);
    let mut since_better = 0;
    for sweep in 0..MAX_SWEEPS {
        if best_crossings == 0 || since_better >= PATIENCE {
            break;
        }
        sort_rows(layered, sweep % 2 == 0);
        let now = crossings(layered);
        if now < best_crossings {
            best_crossings = now;
            best = layered.rows.clone();
            since_better = 0;
        } else {
            since_better += 1;
        }
    }
    layered.rows = best;
}

/// Each slot's index on its row.
pub(crate) fn positions(layered: &Layered) -> Vec<usize> {
    let mut at = vec![0; layered.slots.len()];
    for row in &layered.rows {
        for (i, &s) in row.iter().enumerate() {
            at[s] = i;
        }
    }
    at
}

/// Walks down from each box in row order, placing slots on their rows as
/// they are first reached: what follows a box starts out below it.
fn first_order(layered: &mut Layered) {
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layered.rows.len()];
    let mut seen = vec![false; layered.slots.len()];
    let roots: Vec<usize> = layered.rows.iter().flatten().copied().collect();
    for root in roots {
        let mut stack = vec![root];
        while let Some(s) = stack.pop() {
            if std::mem::replace(&mut seen[s], true) {
                continue;
            }
            rows[layered.slots[s].row].push(s);
            stack.extend(layered.slots[s].down.iter().rev().filter(|&&d| !seen[d]));
        }
    }
    layered.rows = rows;
}

/// Sorts each row by the mean position of its neighbours on the row above
/// (going down) or below (going up); a slot without such neighbours keeps its place.
fn sort_rows(layered: &mut Layered, down: bool) {
    let mut at = positions(layered);
    let count = layered.rows.len();
    for step in 1..count {
        let r = if down { step } else { count - 1 - step };
        let row = &layered.rows[r];
        let mut keyed: Vec<(f64, usize)> = Vec::new();
        let mut fixed: Vec<Option<usize>> = vec![None; row.len()];
        for (i, &s) in row.iter().enumerate() {
            let slot = &layered.slots[s];
            let near = if down { &slot.up } else { &slot.down };
            if near.is_empty() {
                fixed[i] = Some(s);
            } else {
                let mean = near.iter().map(|&n| at[n] as f64).sum::<f64>() / near.len() as f64;
                keyed.push((mean, s));
            }
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut sorted = keyed.into_iter().map(|(_, s)| s);
        let new_row: Vec<usize> =
            fixed.into_iter().filter_map(|kept| kept.or_else(|| sorted.next())).collect();
        for (i, &s) in new_row.iter().enumerate() {
            at[s] = i;
        }
        layered.rows[r] = new_row;
    }
}

/// How many pairs of edges cross, over all pairs of neighbouring rows.
pub(crate) fn crossings(layered: &Layered) -> usize {
    let at = positions(layered);
    let mut total = 0;
    for pair in layered.rows.windows(2) {
        let mut ends: Vec<(usize, usize)> = pair[0]
            .iter()
            .flat_map(|&s| layered.slots[s].down.iter().map(move |&d| (s, d)))
            // An edge cut short past the waypoint budget jumps rows: not counted.
            .filter(|&(s, d)| layered.slots[d].row == layered.slots[s].row + 1)
            .map(|(s, d)| (at[s], at[d]))
            .collect();
        ends.sort_unstable();
        total += inversions(ends.into_iter().map(|(_, lower)| lower), pair[1].len());
    }
    total
}

/// How many pairs in `values` (each below `bound`) are out of order, counted
/// with a Fenwick tree.
fn inversions(values: impl Iterator<Item = usize>, bound: usize) -> usize {
    let mut tree = vec![0usize; bound + 1];
    let mut count = 0;
    for (seen, value) in values.enumerate() {
        // How many seen so far are at most `value`.
        let mut not_above = 0;
        let mut i = value + 1;
        while i > 0 {
            not_above += tree[i];
            i &= i - 1;
        }
        count += seen - not_above;
        let mut i = value + 1;
        while i <= bound {
            tree[i] += 1;
            i += i & i.wrapping_neg();
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inversions_are_counted() {
        assert_eq!(inversions([0, 1, 2].into_iter(), 3), 0);
        assert_eq!(inversions([2, 1, 0].into_iter(), 3), 3);
        assert_eq!(inversions([1, 0, 1, 0].into_iter(), 2), 3);
    }
}
