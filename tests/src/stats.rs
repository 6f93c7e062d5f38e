//! The benchmarks' statistics, kept pure: the median of repeated runs, their spread, and ratios of medians.
//!
//! One run per configuration cannot tell a change from noise, so every figure a benchmark prints is the median
//! of several runs with its minimum and maximum beside it, and a ratio between two commands is the ratio of their
//! medians (never of single runs, nor the median of per-run ratios).

/// The median, minimum and maximum of repeated measurements of one figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

/// The spread of `values`, or `None` when there are none (a NaN is ignored: it is no measurement).
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: sorted[0],
        max: sorted[n - 1],
        runs: n,
    })
}

/// `a`'s median over `b`'s, or `None` when `b`'s is zero.
pub fn ratio(a: &Spread, b: &Spread) -> Option<f64> {
    (b.median != 0.0).then(|| a.median / b.median)
}

/// The order of `runs` rounds of `commands` commands: round-robin, each round starting one command later, so
/// that no command always runs right after the same one (and none always gets the cache the previous left warm).
pub fn schedule(commands: usize, runs: usize) -> Vec<usize> {
    (0..runs)
        .flat_map(|round| (0..commands).map(move |i| (i + round) % commands))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_odd_count_is_the_middle_value() {
        let s = spread(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(
            s,
            Spread {
                median: 3.0,
                min: 1.0,
                max: 5.0,
                runs: 3
            }
        );
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = spread(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (3.0, 1.0, 10.0, 4));
    }

    #[test]
    fn one_value_is_its_own_spread_and_none_is_none() {
        let s = spread(&[2.5]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 2.5, 2.5));
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[f64::NAN]), None);
        assert_eq!(spread(&[f64::NAN, 1.0]).unwrap().runs, 1);
    }

    #[test]
    fn ratio_is_of_medians_not_of_extremes() {
        let a = spread(&[6.0, 7.0, 100.0]).unwrap();
        let b = spread(&[1.0, 5.0, 5.0]).unwrap();
        assert_eq!(ratio(&a, &b), Some(7.0 / 5.0));
        assert_eq!(ratio(&a, &spread(&[0.0]).unwrap()), None);
    }

    #[test]
    fn schedule_runs_every_command_runs_times_and_rotates_who_goes_first() {
        let order = schedule(3, 3);
        assert_eq!(order, vec![0, 1, 2, 1, 2, 0, 2, 0, 1]);
        for c in 0..3 {
            assert_eq!(order.iter().filter(|&&x| x == c).count(), 3);
        }
        // Each command follows a different one from round to round.
        let firsts: Vec<usize> = order.chunks(3).map(|r| r[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2]);
        assert!(schedule(3, 0).is_empty());
    }
}
