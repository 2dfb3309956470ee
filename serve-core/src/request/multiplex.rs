//! Model multiplexing on the replica's side: Ray's `@serve.multiplexed`.
//!
//! A deployment's loader method marked `#[multiplexed(max_num_models_per_replica = N)]` keeps, per
//! replica, a [`ModelCache`] of at most `N` models by id. Calling the loader from a request
//! returns the cached model; a model not yet loaded is loaded once (concurrent calls for the same
//! id wait for that one load), and when it does not fit, the least recently used model is evicted
//! first, so its memory is free before the new one loads. An evicted model is dropped when the
//! last request still using it ends. A failed load caches nothing: the caller gets the loader's
//! error, and the next call for that id loads again.
//!
//! Each replica also keeps [`LoadedModels`], the ids it holds now: the router reads it to send a
//! request to a replica that already holds its model, and `status` reports it. A remote replica's
//! ids, on the caller's side, are what its replies last reported.
//!
//! The id a request was sent for ([`get_multiplexed_model_id`]) lives with the request itself (its
//! result cell, or a stream's `StreamRequest`), which the method's scope holds (see `context`), so
//! a call without one carries nothing for it; across processes it travels in the call message.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::context;
use crate::error::{BoxError, ErrorKind, ServeError};
use crate::metrics::series::ModelSeries;
use crate::util::sync::Lock;

/// The name the replica's [`LoadedModels`] is kept under in its `ReplicaState`.
pub(crate) const LOADED_MODELS: &str = "multiplexed model ids";

/// The model ids one replica holds now (least recently used first as of the last load or
/// eviction), and those it is loading: written by its [`ModelCache`] (or, for a remote replica on
/// the caller's side, by the replies it sends), read lock-free by the router and by `status`.
#[derive(Default)]
pub(crate) struct LoadedModels {
    ids: ArcSwap<Vec<Arc<str>>>,
    /// Ids being loaded: routing counts them as held, so concurrent first calls for one model
    /// go to the replica that loads it (while it has room) instead of loading it everywhere.
    loading: ArcSwap<Vec<Arc<str>>>,
}

impl LoadedModels {
    /// Whether it holds model `id`, or is loading it.
    pub(crate) fn contains(&self, id: &str) -> bool {
        let has = |ids: &[Arc<str>]| ids.iter().any(|held| &**held == id);
        has(&self.ids.load()) || has(&self.loading.load())
    }

    /// How many models it holds or loads.
    pub(crate) fn len(&self) -> usize {
        self.ids.load().len() + self.loading.load().len()
    }

    /// The ids it holds, least recently used first.
    pub(crate) fn ids(&self) -> Arc<Vec<Arc<str>>> {
        self.ids.load_full()
    }

    /// Replaces the ids it holds.
    pub(crate) fn set(&self, ids: Vec<Arc<str>>) {
        self.ids.store(Arc::new(ids));
    }

    /// Replaces the ids it is loading.
    fn set_loading(&self, ids: Vec<Arc<str>>) {
        self.loading.store(Arc::new(ids));
    }
}

/// The model id the current request was sent for (`handle.options().multiplexed_model_id(..)`,
/// or the HTTP header `serve_multiplexed_model_id`): Ray's `serve.get_multiplexed_model_id()`.
/// `None` outside a request, or for a request sent without one.
///
/// ```
/// use serve_core::prelude::*;
///
/// #[deployment]
/// #[derive(Default)]
/// pub struct Echo;
///
/// #[deployment]
/// impl Echo {
///     pub fn call(&self) -> String {
///         serve_core::get_multiplexed_model_id().unwrap_or_default()
///     }
/// }
///
/// let handle = serve_core::run(Echo::bind())?;
/// assert_eq!(handle.options().multiplexed_model_id("a").remote().result()?, "a");
/// assert_eq!(handle.remote().result()?, "");
/// # Ok::<(), ServeError>(())
/// ```
pub fn get_multiplexed_model_id() -> Option<String> {
    context::current().and_then(|scope| scope.model_id().map(|id| id.to_string()))
}

/// One replica's models of one loader: at most `capacity`, by id, in least recently used order.
pub(crate) struct ModelCache<M> {
    capacity: usize,
    inner: Mutex<Inner<M>>,
    /// What the router and `status` read (the replica's one [`LoadedModels`]).
    loaded: Arc<LoadedModels>,
    /// Its metrics, on a replica that has them.
    metrics: Option<ModelSeries>,
}

struct Inner<M> {
    /// Least recently used first.
    models: Vec<(Arc<str>, Arc<M>)>,
    /// One entry per id being loaded (or waited for): the lock its one load holds.
    loading: HashMap<Arc<str>, Arc<Loading>>,
}

/// The lock held while one id loads: callers for the same id wait on it, then find the model.
#[derive(Default)]
struct Loading {
    /// For an `async fn` loader.
    lock: tokio::sync::Mutex<()>,
    /// For a sync loader (which blocks its thread anyway).
    sync_lock: Mutex<()>,
}

/// A model found, or the entry to wait on before loading it.
enum Lookup<'a, M: Send + Sync + 'static> {
    Found(Arc<M>),
    Load(Ticket<'a, M>),
}

impl<M: Send + Sync + 'static> ModelCache<M> {
    /// An empty cache of at most `capacity` models, reporting its ids to `loaded`.
    pub(crate) fn new(capacity: usize, loaded: Arc<LoadedModels>) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                models: Vec::new(),
                loading: HashMap::new(),
            }),
            loaded,
            metrics: None,
        }
    }

    /// The same, measured by `metrics`.
    fn measured(mut self, metrics: Option<ModelSeries>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The loader was called.
    #[inline]
    fn requested(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.requested();
        }
    }

    /// Model `id` loaded in `took`.
    fn loaded(&self, id: &str, took: Duration) {
        if let Some(metrics) = &self.metrics {
            metrics.loaded(id, took);
        }
    }

    /// Drops the cache's hold on `evicted` models (outside its lock), counting each: the model
    /// itself is dropped then, or when the last request still using it ends.
    fn unload(&self, evicted: Vec<(Arc<str>, Arc<M>)>) {
        for (id, model) in evicted {
            let start = Instant::now();
            drop(model);
            if let Some(metrics) = &self.metrics {
                metrics.evicted(&id);
                metrics.unloaded(start.elapsed());
            }
        }
    }

    /// Model `id`, loaded by `load` if it is not cached (once, however many callers ask at once).
    pub(crate) async fn get_async<F, Fut>(&self, id: &str, load: F) -> Result<Arc<M>, BoxError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<M, BoxError>>,
    {
        self.requested();
        let ticket = match self.lookup(id) {
            Lookup::Found(model) => return Ok(model),
            Lookup::Load(ticket) => ticket,
        };
        let held = ticket.loading.lock.lock().await;
        let result = match self.hit(id) {
            Some(model) => Ok(model),
            None => {
                self.make_room();
                let start = Instant::now();
                let loaded = load(id.to_owned()).await;
                loaded.map(|model| self.insert(&ticket.id, model, start.elapsed()))
            }
        };
        drop(held);
        drop(ticket);
        result
    }

    /// The same, for a sync loader: waiting callers block their thread.
    pub(crate) fn get_sync<F>(&self, id: &str, load: F) -> Result<Arc<M>, BoxError>
    where
        F: FnOnce(String) -> Result<M, BoxError>,
    {
        self.requested();
        let ticket = match self.lookup(id) {
            Lookup::Found(model) => return Ok(model),
            Lookup::Load(ticket) => ticket,
        };
        let held = ticket.loading.sync_lock.locked();
        let result = match self.hit(id) {
            Some(model) => Ok(model),
            None => {
                self.make_room();
                let start = Instant::now();
                let loaded = load(id.to_owned());
                loaded.map(|model| self.insert(&ticket.id, model, start.elapsed()))
            }
        };
        drop(held);
        drop(ticket);
        result
    }

    /// The model if cached (and marks it most recently used), else the entry to load it under.
    fn lookup(&self, id: &str) -> Lookup<'_, M> {
        let mut inner = self.inner.locked();
        if let Some(model) = Self::touch(&mut inner, id) {
            return Lookup::Found(model);
        }
        let (id, loading) = match inner.loading.get_key_value(id) {
            Some((id, loading)) => (id.clone(), loading.clone()),
            None => {
                let id: Arc<str> = Arc::from(id);
                let loading = Arc::new(Loading::default());
                inner.loading.insert(id.clone(), loading.clone());
                self.publish_loading(&inner);
                (id, loading)
            }
        };
        Lookup::Load(Ticket {
            cache: self,
            id,
            loading,
        })
    }

    /// The model if it was loaded while the caller waited.
    fn hit(&self, id: &str) -> Option<Arc<M>> {
        Self::touch(&mut self.inner.locked(), id)
    }

    /// Finds model `id` and moves it to the most recently used end.
    fn touch(inner: &mut Inner<M>, id: &str) -> Option<Arc<M>> {
        let at = inner.models.iter().position(|(held, _)| &**held == id)?;
        let entry = inner.models.remove(at);
        let model = entry.1.clone();
        inner.models.push(entry);
        Some(model)
    }

    /// Evicts least recently used models until one more fits.
    fn make_room(&self) {
        let evicted = {
            let mut inner = self.inner.locked();
            let evicted = Self::evict_past(&mut inner, self.capacity - 1);
            if !evicted.is_empty() {
                self.publish(&inner);
            }
            evicted
        };
        self.unload(evicted); // outside the lock
    }

    /// Caches a model that loaded in `took`, evicting the least recently used ones past the
    /// capacity (loads of other ids may have finished meanwhile).
    fn insert(&self, id: &Arc<str>, model: M, took: Duration) -> Arc<M> {
        self.loaded(id, took);
        let model = Arc::new(model);
        let evicted = {
            let mut inner = self.inner.locked();
            inner.models.push((id.clone(), model.clone()));
            let evicted = Self::evict_past(&mut inner, self.capacity);
            self.publish(&inner);
            evicted
        };
        self.unload(evicted); // outside the lock
        model
    }

    /// Takes the least recently used models out until at most `keep` are left. The caller drops
    /// them outside the lock (or the last request still using one does).
    fn evict_past(inner: &mut Inner<M>, keep: usize) -> Vec<(Arc<str>, Arc<M>)> {
        let excess = inner.models.len().saturating_sub(keep);
        let evicted: Vec<_> = inner.models.drain(..excess).collect();
        for (id, _) in &evicted {
            tracing::debug!(model_id = %id, "multiplexed model evicted");
        }
        evicted
    }

    /// Reports the ids being loaded.
    fn publish_loading(&self, inner: &Inner<M>) {
        self.loaded
            .set_loading(inner.loading.keys().cloned().collect());
    }

    /// Reports the ids held now (under the lock, so reports land in order). Only loads and
    /// evictions change them: a cache hit costs no report.
    fn publish(&self, inner: &Inner<M>) {
        self.loaded
            .set(inner.models.iter().map(|(id, _)| id.clone()).collect());
    }

    /// The ids cached now, least recently used first.
    #[cfg(test)]
    fn ids(&self) -> Vec<String> {
        let inner = self.inner.locked();
        let ids: Vec<String> = inner.models.iter().map(|(id, _)| id.to_string()).collect();
        let mut reported: Vec<String> = self.loaded.ids().iter().map(|id| id.to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        reported.sort();
        assert_eq!(sorted, reported, "the router sees the ids cached");
        ids
    }
}

/// A caller's claim on an id's loading entry. Dropped (the load done, failed, or cancelled), it
/// forgets the entry when no other caller holds it (one that does finds the model, or loads it in
/// turn).
struct Ticket<'a, M: Send + Sync + 'static> {
    cache: &'a ModelCache<M>,
    id: Arc<str>,
    loading: Arc<Loading>,
}

impl<M: Send + Sync + 'static> Drop for Ticket<'_, M> {
    fn drop(&mut self) {
        let mut inner = self.cache.inner.locked();
        // Clones of the entry are made and dropped only under this lock (this one just below):
        // 2 is the map's and this ticket's.
        let mine = std::mem::take(&mut self.loading);
        if Arc::strong_count(&mine) == 2 {
            inner.loading.remove(&self.id);
            self.cache.publish_loading(&inner);
        }
        drop(mine);
    }
}

/// The cache of loader `loader` on the replica the calling code runs on.
fn cache<M: Send + Sync + 'static>(
    loader: &'static str,
    capacity: usize,
) -> Result<(Arc<ModelCache<M>>, Arc<str>), ServeError> {
    let replica = context::current_replica().ok_or_else(|| {
        ServeError::new(ErrorKind::Runtime).with_message(format!(
            "`{loader}` is a multiplexed model loader: call it inside its deployment's methods \
             (or constructor), where it has a replica to keep its models on"
        ))
    })?;
    // Two steps: `get_or_init` holds the state's lock while it makes an entry.
    let cache = match replica.state.get::<ModelCache<M>>(loader) {
        Some(cache) => cache,
        None => {
            let loaded = replica
                .state
                .get_or_init(LOADED_MODELS, LoadedModels::default);
            replica.state.get_or_init(loader, || {
                let metrics = replica.metrics.as_ref().map(|m| m.models());
                ModelCache::<M>::new(capacity, loaded).measured(metrics)
            })
        }
    };
    Ok((cache, replica.deployment.clone()))
}

/// Checks a model id given to a loader.
fn checked_id<'a>(loader: &'static str, id: &'a str) -> Result<&'a str, ServeError> {
    if id.is_empty() {
        return Err(ServeError::new(ErrorKind::User)
            .with_message(format!("`{loader}` was given an empty model id")));
    }
    Ok(id)
}

/// A loader's error, naming the model it was loading.
fn load_failed(err: BoxError, id: &str, deployment: &Arc<str>, loader: &'static str) -> ServeError {
    ServeError::user(err)
        .with_message(format!("could not load model `{id}`"))
        .at(deployment, loader)
}

/// What an `async fn` loader marked `#[multiplexed]` expands to: model `id` from the replica's
/// cache, `load`ed (the user's body) if needed.
#[doc(hidden)]
pub async fn multiplexed_async<M, F, Fut>(
    loader: &'static str,
    capacity: usize,
    id: &str,
    load: F,
) -> Result<Arc<M>, ServeError>
where
    M: Send + Sync + 'static,
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<M, BoxError>>,
{
    let id = checked_id(loader, id)?;
    let (cache, deployment) = cache::<M>(loader, capacity)?;
    cache
        .get_async(id, load)
        .await
        .map_err(|e| load_failed(e, id, &deployment, loader))
}

/// What a sync loader marked `#[multiplexed]` expands to.
#[doc(hidden)]
pub fn multiplexed_sync<M, F>(
    loader: &'static str,
    capacity: usize,
    id: &str,
    load: F,
) -> Result<Arc<M>, ServeError>
where
    M: Send + Sync + 'static,
    F: FnOnce(String) -> Result<M, BoxError>,
{
    let id = checked_id(loader, id)?;
    let (cache, deployment) = cache::<M>(loader, capacity)?;
    cache
        .get_sync(id, load)
        .map_err(|e| load_failed(e, id, &deployment, loader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A model that counts its drops.
    struct Model {
        id: String,
        drops: Arc<AtomicUsize>,
    }

    impl Drop for Model {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn cache(capacity: usize) -> ModelCache<Model> {
        ModelCache::new(capacity, Arc::default())
    }

    fn load_sync(
        cache: &ModelCache<Model>,
        id: &str,
        loads: &AtomicUsize,
        drops: &Arc<AtomicUsize>,
    ) -> Arc<Model> {
        cache
            .get_sync(id, |id| {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok(Model {
                    id,
                    drops: drops.clone(),
                })
            })
            .unwrap()
    }

    #[test]
    fn a_model_loads_once_and_is_then_served_from_the_cache() {
        let (cache, loads, drops) = (cache(2), AtomicUsize::new(0), Arc::default());
        let first = load_sync(&cache, "a", &loads, &drops);
        let again = load_sync(&cache, "a", &loads, &drops);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(first.id, "a");
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.ids(), ["a"]);
    }

    #[test]
    fn the_least_recently_used_model_is_evicted_and_dropped_first() {
        let (cache, loads, drops) = (cache(2), AtomicUsize::new(0), Arc::default());
        drop(load_sync(&cache, "a", &loads, &drops));
        drop(load_sync(&cache, "b", &loads, &drops));
        drop(load_sync(&cache, "a", &loads, &drops)); // `b` is now the least recently used
        assert_eq!(cache.ids(), ["b", "a"]);
        drop(load_sync(&cache, "c", &loads, &drops));
        assert_eq!(cache.ids(), ["a", "c"], "b evicted");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "and dropped");
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_evicted_model_in_use_is_dropped_by_its_last_user() {
        let (cache, loads, drops) = (cache(1), AtomicUsize::new(0), Arc::default());
        let a = load_sync(&cache, "a", &loads, &drops);
        drop(load_sync(&cache, "b", &loads, &drops));
        assert_eq!(cache.ids(), ["b"]);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "still in use");
        drop(a);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_load_caches_nothing_and_the_next_call_loads_again() {
        let (cache, loads, drops) = (cache(2), AtomicUsize::new(0), Arc::default());
        let err = cache
            .get_sync("a", |_| Err("disk on fire".into()))
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "disk on fire");
        assert!(cache.ids().is_empty());
        assert!(
            cache.inner.locked().loading.is_empty(),
            "no entry left behind"
        );
        load_sync(&cache, "a", &loads, &drops);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_calls_for_one_id_load_it_once() {
        let cache = Arc::new(cache(2));
        let loads = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (cache, loads, drops) = (cache.clone(), loads.clone(), drops.clone());
                let mut released = released.clone();
                tokio::spawn(async move {
                    cache
                        .get_async("a", |id| async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            // Hold the load until every caller asked.
                            released.wait_for(|go| *go).await.unwrap();
                            Ok(Model { id, drops })
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        // Every caller is in: one loads, the others wait on its entry.
        while cache
            .inner
            .locked()
            .loading
            .get("a")
            .map_or(0, Arc::strong_count)
            < 9
        {
            tokio::task::yield_now().await;
        }
        assert!(
            cache.loaded.contains("a") && cache.loaded.ids().is_empty(),
            "routing sees the replica loading it; status does not list it yet"
        );
        release.send(true).unwrap();
        let models: Vec<_> = futures::future::join_all(calls).await;
        let first = models[0].as_ref().unwrap();
        for model in &models {
            assert!(Arc::ptr_eq(first, model.as_ref().unwrap()));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(cache.inner.locked().loading.is_empty());
        assert_eq!(cache.ids(), ["a"]);
        assert_eq!(cache.loaded.len(), 1, "no longer loading");
    }

    #[tokio::test]
    async fn a_cancelled_load_lets_the_next_caller_load() {
        let (cache, drops) = (cache(2), Arc::new(AtomicUsize::new(0)));
        let pending = cache.get_async("a", |_| futures::future::pending());
        assert!(futures::poll!(Box::pin(pending)).is_pending()); // dropped mid-load
        let model = cache
            .get_async("a", |id| async move { Ok(Model { id, drops }) })
            .await
            .unwrap();
        assert_eq!(model.id, "a");
    }
}
