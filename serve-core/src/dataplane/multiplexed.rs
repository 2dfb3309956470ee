//! Model-aware replica choice for a call sent for a multiplexed model id (Ray's multiplexed
//! routing). Only calls with a model id come here; a plain call goes straight to the picker.
//!
//! 1. Of the replicas that hold the model now (their `LoadedModels`), the least loaded one with a
//!    free slot takes it.
//! 2. If none holds it, or all that do are full, power of two choices decides among all replicas,
//!    comparing first how many models each holds and then its load: a new model goes where it
//!    evicts least (so different ids spread over the replicas before any is evicted), then where
//!    the load is lowest. The replica chosen loads the model.
//! 3. Failing that, any replica with a free slot; else the call waits in the queue like any other
//!    (and takes the first slot that frees up, wherever its model is).
//!
//! A replica in another process reports the ids it holds with each reply to a multiplexed call, so
//! a caller's view of it is as fresh as its last such reply.

use std::sync::Arc;

use super::replica::Replica;
use crate::request::multiplex::{LOADED_MODELS, LoadedModels};

/// The ids replica `replica` holds, as far as this process knows.
fn loaded<D>(replica: &Arc<dyn Replica<D>>) -> Option<Arc<LoadedModels>> {
    replica.info().state.get::<LoadedModels>(LOADED_MODELS)
}

/// Reserves a slot for a call sent for model `id` on one of `replicas` (each runs at most `max`
/// requests at once); `None` when every replica is full.
pub(crate) fn reserve<D>(
    replicas: &[Arc<dyn Replica<D>>],
    max: usize,
    id: &str,
    mut below: impl FnMut(usize) -> usize,
) -> Option<Arc<dyn Replica<D>>> {
    let n = replicas.len();
    if n == 0 {
        return None;
    }
    let held: Vec<usize> = replicas
        .iter()
        .map(|r| {
            loaded(r).map_or(0, |models| {
                if models.contains(id) {
                    usize::MAX
                } else {
                    models.len()
                }
            })
        })
        .collect();
    // 1. The replicas that hold it, least loaded first.
    let mut holders: Vec<usize> = (0..n).filter(|&i| held[i] == usize::MAX).collect();
    holders.sort_by_key(|&i| replicas[i].slots().load());
    if let Some(i) = holders
        .into_iter()
        .find(|&i| replicas[i].slots().try_reserve(max))
    {
        return Some(replicas[i].clone());
    }
    // 2. Power of two choices on (models held, load); 3. then any replica.
    let key = |i: usize| (held[i].min(usize::MAX - 1), replicas[i].slots().load());
    let (a, b) = if n == 1 {
        (0, 0)
    } else {
        let a = below(n);
        let mut b = below(n - 1);
        if b >= a {
            b += 1;
        }
        (a, b)
    };
    let (first, second) = if key(b) < key(a) { (b, a) } else { (a, b) };
    [first, second]
        .into_iter()
        .chain((0..n).map(|k| (a + k) % n))
        .find(|&i| replicas[i].slots().try_reserve(max))
        .map(|i| replicas[i].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::replica::LocalReplica;

    fn replicas(n: usize) -> Vec<Arc<dyn Replica<()>>> {
        (0..n).map(LocalReplica::unplaced).collect()
    }

    fn hold(replica: &Arc<dyn Replica<()>>, ids: &[&str]) {
        replica
            .info()
            .state
            .get_or_init(LOADED_MODELS, LoadedModels::default)
            .set(ids.iter().map(|id| Arc::from(*id)).collect());
    }

    fn pick(set: &[Arc<dyn Replica<()>>], max: usize, id: &str, seed: u64) -> Option<usize> {
        let mut rng = fastrand::Rng::with_seed(seed);
        reserve(set, max, id, |k| rng.usize(..k)).map(|r| r.info().replica_id)
    }

    #[test]
    fn a_replica_holding_the_model_takes_the_call_whatever_the_draw() {
        let set = replicas(4);
        hold(&set[2], &["a"]);
        for seed in 0..20 {
            assert_eq!(pick(&set, 100, "a", seed), Some(2));
        }
        assert_eq!(set[2].slots().load(), 20);
    }

    #[test]
    fn of_several_holders_the_least_loaded_takes_it() {
        let set = replicas(3);
        hold(&set[0], &["a"]);
        hold(&set[1], &["a", "b"]);
        assert!(set[0].slots().try_reserve(5));
        assert_eq!(pick(&set, 5, "a", 1), Some(1));
    }

    #[test]
    fn when_every_holder_is_full_another_replica_takes_it() {
        let set = replicas(2);
        hold(&set[0], &["a"]);
        assert!(set[0].slots().try_reserve(1));
        assert_eq!(pick(&set, 1, "a", 3), Some(1), "loads it there");
        assert_eq!(pick(&set, 1, "a", 3), None, "every replica full: the queue");
    }

    #[test]
    fn a_new_model_goes_where_fewest_models_are_held() {
        let set = replicas(2);
        hold(&set[0], &["a"]);
        for seed in 0..10 {
            assert_eq!(pick(&set, 100, "b", seed), Some(1), "seed {seed}");
        }
    }

    #[test]
    fn without_any_model_held_the_draw_spreads_the_calls() {
        let set = replicas(2);
        let picks: std::collections::HashSet<_> =
            (0..20).map(|seed| pick(&set, 100, "a", seed)).collect();
        assert_eq!(picks.len(), 2, "both replicas are drawn");
    }
}
