//! Which replica takes a request: the [`ReplicaPicker`] interface and its implementation,
//! [`PowerOfTwoChoices`].

use std::sync::{Arc, Mutex};

use super::replica::Replica;
use crate::util::sync::Lock;

/// Chooses a replica for one request and reserves a slot on it.
pub(crate) trait ReplicaPicker<D>: Send + Sync {
    /// Reserves a slot on one of `replicas` (each runs at most `max` requests at once) and returns
    /// it; `None` when every replica is full (the request then waits in the queue).
    fn reserve(&self, replicas: &[Arc<dyn Replica<D>>], max: usize) -> Option<Arc<dyn Replica<D>>>;
}

/// Power of two choices (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing",
/// 2001): of two distinct replicas drawn at random, try the less loaded first, then the other,
/// then every other replica in turn. Picking the better of two random choices keeps the maximum
/// load within `O(log log n)` of the mean, without a global scan or a shared counter; the
/// fallback scan means a request only waits when every replica is full.
#[derive(Default)]
pub(crate) struct PowerOfTwoChoices {
    /// `None`: the thread-local generator (no lock on the request path); tests seed their own.
    rng: Option<Mutex<fastrand::Rng>>,
}

impl PowerOfTwoChoices {
    /// Draws from a generator seeded with `seed`, so a test sees the same choices every run.
    #[cfg(test)]
    pub(crate) fn with_seed(seed: u64) -> Self {
        Self {
            rng: Some(Mutex::new(fastrand::Rng::with_seed(seed))),
        }
    }

    #[inline]
    fn below(&self, k: usize) -> usize {
        match &self.rng {
            None => fastrand::usize(..k),
            Some(rng) => rng.locked().usize(..k),
        }
    }
}

impl<D: 'static> ReplicaPicker<D> for PowerOfTwoChoices {
    fn reserve(&self, replicas: &[Arc<dyn Replica<D>>], max: usize) -> Option<Arc<dyn Replica<D>>> {
        let n = replicas.len();
        match n {
            0 => return None,
            1 => {
                let only = &replicas[0];
                return only.slots().try_reserve(max).then(|| only.clone());
            }
            _ => {}
        }
        let (a, b) = two_choices(n, |k| self.below(k));
        let load = |i: usize| replicas[i].slots().load();
        let (first, second) = if load(b) < load(a) { (b, a) } else { (a, b) };
        [first, second]
            .into_iter()
            .chain(
                (0..n)
                    .map(|k| (a + k) % n)
                    .filter(|&i| i != first && i != second),
            )
            .find(|&i| replicas[i].slots().try_reserve(max))
            .map(|i| replicas[i].clone())
    }
}

/// Picks two distinct replica indices out of `n >= 2` with `rand(k)` in `0..k`.
fn two_choices(n: usize, mut rand: impl FnMut(usize) -> usize) -> (usize, usize) {
    let first = rand(n);
    let mut second = rand(n - 1);
    if second >= first {
        second += 1;
    }
    (first, second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::replica::LocalReplica;

    fn replicas(n: usize) -> Vec<Arc<dyn Replica<()>>> {
        (0..n).map(LocalReplica::unplaced).collect()
    }

    #[test]
    fn two_choices_are_distinct_and_cover_all_pairs() {
        let mut seen = std::collections::HashSet::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let (a, b) = two_choices(4, |k| rng.usize(..k));
            assert_ne!(a, b);
            assert!(a < 4 && b < 4);
            seen.insert((a, b));
        }
        assert_eq!(
            seen.len(),
            12,
            "every ordered pair of distinct replicas is reachable"
        );
    }

    #[test]
    fn reserve_prefers_the_less_loaded_replica_and_respects_the_limit() {
        let picker = PowerOfTwoChoices::with_seed(3);
        let set = replicas(2);
        let picks: Vec<usize> = (0..4)
            .map(|_| picker.reserve(&set, 2).unwrap().info().replica_id)
            .collect();
        let loads: Vec<usize> = set.iter().map(|r| r.slots().load()).collect();
        assert_eq!(loads, [2, 2], "picks {picks:?} spread over both replicas");
        assert!(picker.reserve(&set, 2).is_none(), "all slots taken");
    }

    #[test]
    fn of_two_the_less_loaded_is_taken() {
        let picker = PowerOfTwoChoices::with_seed(11);
        let set = replicas(2);
        assert!(set[0].slots().try_reserve(5));
        assert!(set[0].slots().try_reserve(5));
        for _ in 0..2 {
            let picked = picker.reserve(&set, 5).unwrap();
            assert_eq!(picked.info().replica_id, 1, "replica 1 is less loaded");
        }
    }

    #[test]
    fn a_retired_replica_takes_no_request() {
        let picker = PowerOfTwoChoices::default();
        let set = replicas(1);
        assert!(!set[0].slots().retire(), "idle when retired");
        assert!(picker.reserve(&set, 5).is_none());
    }
}
