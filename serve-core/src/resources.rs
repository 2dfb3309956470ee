//! Resources: what an instance has (CPUs, GPUs, custom resources), and what each replica holds for
//! its lifetime — Ray's `num_cpus`, `num_gpus` and `resources` in `ray_actor_options`.
//!
//! # The instance's capacity
//!
//! Set with [`Serve::builder()`](crate::Serve::builder): `.num_cpus(8.0).num_gpus(2.0)
//! .resource("a100", 4.0)`. Unset, GPUs are detected ([`detect_gpus`]: the entries of
//! `CUDA_VISIBLE_DEVICES` when it is set, else those of `/proc/driver/nvidia/gpus`, else none),
//! there are no custom resources, and CPUs are **not limited**: replicas here are tasks of one
//! process, not processes, and Ray's default of one CPU per replica against the core count would
//! leave most replicas of a small application pending on a laptop. Give the instance a CPU count
//! (e.g. `.num_cpus(detect_cpus() as f64)`) to account for CPUs and hand out CPU ids.
//!
//! # How a replica is placed
//!
//! * Amounts are kept to 1/10000 (Ray's precision), so fractions add up exactly: ten replicas of
//!   `0.1` GPU fill one GPU.
//! * CPUs and GPUs are **devices** numbered `0..n`, each holding one unit (a capacity with a
//!   fraction, such as 2.5 CPUs, ends with a device of 0.5). A request of `w + f` (`w` whole,
//!   `0 <= f < 1`) takes `w` devices that are entirely free, lowest ids first, and for `f` a share
//!   of one other device: the one with the *least* room that still fits (lowest id on ties), so
//!   fractions pack together and whole devices stay whole. A fraction never spans devices: `0.6`
//!   GPU needs `0.6` free on one GPU.
//! * A replica's ids are the devices it holds all or part of: `num_gpus = 1` gets a GPU nobody
//!   else holds (`[0]`, then `[1]`, ..); two replicas of `0.5` share GPU 0 and both get `[0]`.
//! * Custom resources are plain amounts, without ids.
//! * All or nothing: a request that does not fit takes nothing. The instance is never over-packed.
//! * A `Reservation` gives its share back when dropped (no bookkeeping call): a replica owns its
//!   reservation and drops it when the replica itself goes, after its last request.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde::{Deserialize, Serialize};

use crate::context::ReplicaInfo;
use crate::counted::Counted;
use crate::deployment::ReplicaResources;
use crate::error::{ErrorKind, ServeError};

/// One unit (one CPU, one GPU, one of a custom resource) in the pool's fixed-point amounts.
const UNIT: u64 = 10_000;

fn to_units(amount: f64) -> u64 {
    if amount.is_finite() && amount > 0.0 {
        (amount * UNIT as f64).round() as u64
    } else {
        0
    }
}

fn to_amount(units: u64) -> f64 {
    units as f64 / UNIT as f64
}

/// An instance's resources: everything it has ([`Serve::total_resources`](crate::Serve::total_resources))
/// or what is free now ([`Serve::available_resources`](crate::Serve::available_resources)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceResources {
    /// CPUs; `None` when the instance does not account for CPUs (the default; see the
    /// [module docs](self)).
    pub num_cpus: Option<f64>,
    /// GPUs.
    pub num_gpus: f64,
    /// Custom resources by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, f64>,
}

/// The CPUs this process may use (`std::thread::available_parallelism`; 1 if unknown).
pub fn detect_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The GPUs of this machine: the entries of `CUDA_VISIBLE_DEVICES` when it is set (`""` and
/// `NoDevFiles`: none; the list stops at a negative entry, as CUDA's does), else the entries of
/// `/proc/driver/nvidia/gpus`, else 0.
pub fn detect_gpus() -> usize {
    detected_gpu_labels().len()
}

/// What each detected GPU is called in `CUDA_VISIBLE_DEVICES`.
pub(crate) fn detected_gpu_labels() -> Vec<String> {
    gpu_labels(
        std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
        Path::new("/proc/driver/nvidia/gpus"),
    )
}

fn gpu_labels(cuda_visible_devices: Option<&str>, proc_gpus: &Path) -> Vec<String> {
    match cuda_visible_devices.map(str::trim) {
        Some("" | "NoDevFiles") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .take_while(|entry| !entry.starts_with('-'))
            .filter(|entry| !entry.is_empty())
            .map(str::to_owned)
            .collect(),
        None => {
            let count = std::fs::read_dir(proc_gpus).map_or(0, |dir| dir.count());
            (0..count).map(|i| i.to_string()).collect()
        }
    }
}

/// CPUs or GPUs: devices of (up to) one unit each.
#[derive(Debug, Clone)]
struct Devices {
    room: Vec<u64>,
    free: Vec<u64>,
}

impl Devices {
    fn new(total: u64) -> Self {
        let room: Vec<u64> = (0..total.div_ceil(UNIT))
            .map(|i| (total - i * UNIT).min(UNIT))
            .collect();
        Self {
            free: room.clone(),
            room,
        }
    }

    fn total(&self) -> u64 {
        self.room.iter().sum()
    }

    fn available(&self) -> u64 {
        self.free.iter().sum()
    }

    /// Takes `want` units by the rules in the module docs, or nothing. Returns the shares taken,
    /// by device id.
    fn take(&mut self, want: u64) -> Option<Vec<(usize, u64)>> {
        let (whole, part) = ((want / UNIT) as usize, want % UNIT);
        let wholes: Vec<usize> = (0..self.room.len())
            .filter(|&i| self.room[i] == UNIT && self.free[i] == UNIT)
            .take(whole)
            .collect();
        if wholes.len() < whole {
            return None;
        }
        let share = match part {
            0 => None,
            _ => Some(
                (0..self.free.len())
                    .filter(|i| !wholes.contains(i) && self.free[*i] >= part)
                    .min_by_key(|&i| (self.free[i], i))?,
            ),
        };
        let mut taken: Vec<(usize, u64)> = wholes.into_iter().map(|i| (i, UNIT)).collect();
        taken.extend(share.map(|i| (i, part)));
        for &(i, units) in &taken {
            self.free[i] -= units;
        }
        taken.sort_unstable();
        Some(taken)
    }

    fn give_back(&mut self, taken: &[(usize, u64)]) {
        for &(i, units) in taken {
            self.free[i] += units;
        }
    }
}

/// A custom resource: an amount.
#[derive(Debug, Clone, Copy)]
struct Amount {
    total: u64,
    free: u64,
}

/// What the pool has free.
#[derive(Debug, Clone)]
struct State {
    /// `None`: CPUs are not accounted for.
    cpus: Option<Devices>,
    gpus: Devices,
    custom: BTreeMap<String, Amount>,
}

/// What one reservation holds.
#[derive(Debug, Default)]
struct Held {
    cpus: Vec<(usize, u64)>,
    gpus: Vec<(usize, u64)>,
    custom: Vec<(String, u64)>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.cpus.is_empty() && self.gpus.is_empty() && self.custom.is_empty()
    }
}

impl State {
    /// Everything free.
    fn emptied(&self) -> State {
        let mut state = self.clone();
        if let Some(cpus) = &mut state.cpus {
            cpus.free = cpus.room.clone();
        }
        state.gpus.free = state.gpus.room.clone();
        for amount in state.custom.values_mut() {
            amount.free = amount.total;
        }
        state
    }

    /// Takes `request` (all of it or nothing).
    fn take(&mut self, request: &ReplicaResources) -> Option<Held> {
        let mut next = self.clone();
        let cpus = match &mut next.cpus {
            Some(cpus) => cpus.take(to_units(request.num_cpus))?,
            None => Vec::new(),
        };
        let gpus = next.gpus.take(to_units(request.num_gpus))?;
        let mut custom = Vec::new();
        for (name, amount) in &request.custom {
            let want = to_units(*amount);
            if want == 0 {
                continue;
            }
            let have = next.custom.get_mut(name)?;
            have.free = have.free.checked_sub(want)?;
            custom.push((name.clone(), want));
        }
        *self = next;
        Some(Held { cpus, gpus, custom })
    }

    fn give_back(&mut self, held: &Held) {
        if let Some(cpus) = &mut self.cpus {
            cpus.give_back(&held.cpus);
        }
        self.gpus.give_back(&held.gpus);
        for (name, units) in &held.custom {
            if let Some(amount) = self.custom.get_mut(name) {
                amount.free += units;
            }
        }
    }

    /// The parts of `request` that do not fit now, each as "`what`: needs X, `free` Y".
    fn shortfall(&self, request: &ReplicaResources, free_word: &str) -> Vec<String> {
        let mut missing = Vec::new();
        let mut devices = |kind: &str, devices: &Devices, want: f64| {
            if devices.clone().take(to_units(want)).is_none() {
                let free = to_amount(devices.available());
                let largest = devices.free.iter().copied().max().unwrap_or(0);
                let split = if free > 0.0 && want.fract() > 0.0 {
                    format!(" (at most {} on one {kind})", to_amount(largest))
                } else {
                    String::new()
                };
                missing.push(format!("{kind}: needs {want}, {free_word} {free}{split}"));
            }
        };
        if let Some(cpus) = &self.cpus {
            devices("CPU", cpus, request.num_cpus);
        }
        devices("GPU", &self.gpus, request.num_gpus);
        for (name, amount) in &request.custom {
            let want = to_units(*amount);
            match self.custom.get(name) {
                _ if want == 0 => {}
                None => missing.push(format!("{name}: needs {amount}, the instance has none")),
                Some(have) if have.free < want => missing.push(format!(
                    "{name}: needs {amount}, {free_word} {}",
                    to_amount(have.free)
                )),
                Some(_) => {}
            }
        }
        missing
    }

    fn summary(&self, total: bool) -> InstanceResources {
        let pick = |d: &Devices| to_amount(if total { d.total() } else { d.available() });
        InstanceResources {
            num_cpus: self.cpus.as_ref().map(pick),
            num_gpus: pick(&self.gpus),
            custom: self
                .custom
                .iter()
                .map(|(name, a)| {
                    (
                        name.clone(),
                        to_amount(if total { a.total } else { a.free }),
                    )
                })
                .collect(),
        }
    }
}

struct PoolInner {
    state: Mutex<State>,
    /// Each GPU's name in `CUDA_VISIBLE_DEVICES`, by id.
    gpu_labels: Vec<String>,
    /// Bumped whenever a reservation gives its share back: pending replicas wait on it.
    released: tokio::sync::watch::Sender<u64>,
}

impl PoolInner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An instance's resources, handing out [`Reservation`]s. Cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct ResourcePool {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for ResourcePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourcePool")
            .field("available", &self.available())
            .finish()
    }
}

impl ResourcePool {
    /// A pool of `num_cpus` (`None`: CPUs not accounted for), `num_gpus` and `custom` resources;
    /// `gpu_labels` name the GPUs in `CUDA_VISIBLE_DEVICES` (missing ones are named by id).
    pub(crate) fn new(
        num_cpus: Option<f64>,
        num_gpus: f64,
        custom: &BTreeMap<String, f64>,
        gpu_labels: Vec<String>,
    ) -> Self {
        let gpus = Devices::new(to_units(num_gpus));
        let gpu_labels = (0..gpus.room.len())
            .map(|i| gpu_labels.get(i).cloned().unwrap_or_else(|| i.to_string()))
            .collect();
        let state = State {
            cpus: num_cpus.map(|n| Devices::new(to_units(n))),
            gpus,
            custom: custom
                .iter()
                .map(|(name, amount)| {
                    let units = to_units(*amount);
                    let amount = Amount {
                        total: units,
                        free: units,
                    };
                    (name.clone(), amount)
                })
                .collect(),
        };
        Self {
            inner: Arc::new(PoolInner {
                state: Mutex::new(state),
                gpu_labels,
                released: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// Reserves `request` if it fits now (all of it, or nothing).
    pub(crate) fn reserve(&self, request: &ReplicaResources) -> Option<Reservation> {
        let held = self.inner.state().take(request)?;
        let labels: Vec<&str> = held
            .gpus
            .iter()
            .map(|&(i, _)| self.inner.gpu_labels[i].as_str())
            .collect();
        let assignment = Assignment {
            cpu_ids: held.cpus.iter().map(|&(i, _)| i).collect(),
            gpu_ids: held.gpus.iter().map(|&(i, _)| i).collect(),
            cuda_visible_devices: labels.join(","),
            resources: request.clone(),
        };
        Some(Reservation {
            pool: self.inner.clone(),
            held,
            assignment,
        })
    }

    /// Whether `request` would fit now (nothing is reserved).
    pub(crate) fn fits(&self, request: &ReplicaResources) -> bool {
        self.inner.state().clone().take(request).is_some()
    }

    /// `Err` (saying what is short) when `request` could not fit even in an empty instance.
    pub(crate) fn check_feasible(&self, request: &ReplicaResources) -> Result<(), String> {
        let empty = self.inner.state().emptied();
        match empty.clone().take(request) {
            Some(_) => Ok(()),
            None => Err(empty.shortfall(request, "the instance has").join("; ")),
        }
    }

    /// What of `request` does not fit now ("GPU: needs 1, free 0; a100: ..").
    pub(crate) fn shortfall(&self, request: &ReplicaResources) -> String {
        self.inner.state().shortfall(request, "free").join("; ")
    }

    /// Everything the instance has.
    pub(crate) fn total(&self) -> InstanceResources {
        self.inner.state().summary(true)
    }

    /// What is free now.
    pub(crate) fn available(&self) -> InstanceResources {
        self.inner.state().summary(false)
    }
}

/// What a replica was given: its request and the CPU and GPU ids it holds.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    pub(crate) cpu_ids: Vec<usize>,
    pub(crate) gpu_ids: Vec<usize>,
    pub(crate) cuda_visible_devices: String,
    pub(crate) resources: ReplicaResources,
}

impl Assignment {
    /// Nothing reserved (a replica made without a pool, in unit tests).
    pub(crate) fn none() -> Self {
        Self {
            cpu_ids: Vec::new(),
            gpu_ids: Vec::new(),
            cuda_visible_devices: String::new(),
            resources: ReplicaResources {
                num_cpus: 0.0,
                num_gpus: 0.0,
                custom: BTreeMap::new(),
            },
        }
    }
}

/// A share of the pool, given back when dropped.
pub(crate) struct Reservation {
    pool: Arc<PoolInner>,
    held: Held,
    assignment: Assignment,
}

impl Reservation {
    pub(crate) fn assignment(&self) -> &Assignment {
        &self.assignment
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("assignment", &self.assignment)
            .finish()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        self.pool.state().give_back(&self.held);
        self.pool.released.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// How the replicas of one deployment get their resources: now, or (pending) when a reservation
/// elsewhere is given back. Numbers the replicas too, so a constructor already knows its replica.
pub(crate) struct Placement {
    pool: ResourcePool,
    /// What each new replica reserves (an update may change it: later replicas reserve the new
    /// amounts, running ones keep what they hold).
    request: Mutex<ReplicaResources>,
    app: Arc<str>,
    deployment: Arc<str>,
    next_id: AtomicUsize,
    /// Reserved at deploy time for the initial replicas, taken by their constructions.
    prepaid: Mutex<VecDeque<Reservation>>,
    /// Replicas holding a reservation whose constructor has not finished.
    building: Arc<AtomicUsize>,
    /// Replicas waiting for resources (pending).
    waiting: AtomicUsize,
    /// Told when a replica starts waiting (the deployment's controller may make room).
    on_wait: OnceLock<Arc<tokio::sync::Notify>>,
    /// The deployment (its router); a pending replica of a deployment that is gone gives up.
    owner: OnceLock<Weak<dyn std::any::Any + Send + Sync>>,
    /// Pending replicas already warned about at deploy time (not warned about again).
    announced: AtomicUsize,
}

/// A replica's place: its identity and what it was given, held while it is constructed and then
/// by the replica itself.
pub(crate) struct Placed {
    info: Arc<ReplicaInfo>,
    reservation: Reservation,
    /// Counts it as being constructed until the replica takes its parts.
    _building: Counted<Arc<AtomicUsize>>,
}

impl Placed {
    pub(crate) fn info(&self) -> &Arc<ReplicaInfo> {
        &self.info
    }

    /// The replica's identity and its reservation; it no longer counts as being constructed.
    pub(crate) fn into_parts(self) -> (Arc<ReplicaInfo>, Reservation) {
        (self.info, self.reservation)
    }
}

impl Placement {
    pub(crate) fn new(
        pool: ResourcePool,
        request: ReplicaResources,
        app: Arc<str>,
        deployment: Arc<str>,
    ) -> Self {
        Self {
            pool,
            request: Mutex::new(request),
            app,
            deployment,
            next_id: AtomicUsize::new(0),
            prepaid: Mutex::new(VecDeque::new()),
            building: Arc::new(AtomicUsize::new(0)),
            waiting: AtomicUsize::new(0),
            on_wait: OnceLock::new(),
            owner: OnceLock::new(),
            announced: AtomicUsize::new(0),
        }
    }

    /// What each new replica reserves.
    pub(crate) fn request(&self) -> ReplicaResources {
        self.request
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes what replicas placed from now on reserve.
    pub(crate) fn set_request(&self, request: ReplicaResources) {
        *self.request.lock().unwrap_or_else(|p| p.into_inner()) = request;
    }

    /// Fails (with what is short) when one replica asking for `request` could never fit.
    pub(crate) fn check_feasible(
        &self,
        deployment: &str,
        request: &ReplicaResources,
    ) -> Result<(), ServeError> {
        check_feasible(&self.pool, deployment, request)
    }

    /// Records the deployment the replicas are for (once it is gone, pending replicas give up),
    /// and what to tell when a replica starts waiting for resources.
    pub(crate) fn set_owner(
        &self,
        owner: Weak<dyn std::any::Any + Send + Sync>,
        on_wait: Arc<tokio::sync::Notify>,
    ) {
        let _ = self.owner.set(owner);
        let _ = self.on_wait.set(on_wait);
    }

    /// Reserves now for up to `n` replicas (taken by [`take_prepaid`](Self::take_prepaid));
    /// returns how many fit, with a warning naming what is missing for the others.
    pub(crate) fn reserve_upfront(&self, n: usize) -> usize {
        let mut prepaid = self.prepaid.lock().unwrap_or_else(|p| p.into_inner());
        let request = self.request();
        for _ in 0..n {
            match self.pool.reserve(&request) {
                Some(reservation) => prepaid.push_back(reservation),
                None => break,
            }
        }
        let fit = prepaid.len();
        if fit < n {
            self.announced.fetch_add(n - fit, Ordering::SeqCst);
            tracing::warn!(
                deployment = %self.deployment,
                "{} of {n} replica(s) are pending: each needs {} and the instance is short of it \
                 ({}); they start when resources are released",
                n - fit,
                describe(&request),
                self.pool.shortfall(&request),
            );
        }
        fit
    }

    /// A place reserved up front, numbered now (so initial replicas are numbered in order).
    pub(crate) fn take_prepaid(&self) -> Option<Placed> {
        let reservation = self
            .prepaid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()?;
        Some(self.placed(reservation))
    }

    /// `prepaid`, or a place as soon as the resources are free: while they are not, the replica
    /// is *pending* (with a warning naming what is missing). Fails only when the deployment is
    /// gone.
    pub(crate) async fn place(&self, prepaid: Option<Placed>) -> Result<Placed, ServeError> {
        if let Some(placed) = prepaid {
            return Ok(placed);
        }
        let mut released = self.pool.inner.released.subscribe();
        let mut warned = false;
        // Counts the replica as waiting for resources from its first miss until it returns.
        let mut waiting = None;
        loop {
            released.borrow_and_update();
            if self
                .owner
                .get()
                .is_some_and(|owner| owner.strong_count() == 0)
            {
                return Err(ServeError::shut_down().in_deployment(&self.deployment));
            }
            let request = self.request();
            if let Some(reservation) = self.pool.reserve(&request) {
                if warned {
                    tracing::info!(
                        deployment = %self.deployment,
                        "a pending replica got its resources and starts"
                    );
                }
                return Ok(self.placed(reservation));
            }
            if waiting.is_none() {
                waiting = Some(Counted::new(&self.waiting));
                if let Some(on_wait) = self.on_wait.get() {
                    on_wait.notify_one();
                }
            }
            if !warned {
                warned = true;
                let announced = self
                    .announced
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if !announced {
                    tracing::warn!(
                        deployment = %self.deployment,
                        "a replica is pending: it needs {} and the instance is short of it ({}); \
                         it starts when resources are released",
                        describe(&request),
                        self.pool.shortfall(&request),
                    );
                }
            }
            // The pool outlives this wait (`self` holds it), so the sender is never dropped.
            let _ = released.changed().await;
        }
    }

    fn placed(&self, reservation: Reservation) -> Placed {
        let building = Counted::new(self.building.clone());
        let info = ReplicaInfo::new(
            self.app.clone(),
            self.deployment.clone(),
            self.next_id.fetch_add(1, Ordering::SeqCst),
            reservation.assignment().clone(),
        );
        Placed {
            info: Arc::new(info),
            reservation,
            _building: building,
        }
    }

    /// Replicas holding their resources whose constructor has not finished.
    pub(crate) fn building(&self) -> usize {
        self.building.load(Ordering::SeqCst)
    }

    /// Replicas waiting for resources (pending).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Whether a new replica's resources are free now (given back, not yet taken).
    pub(crate) fn fits_now(&self) -> bool {
        self.pool.fits(&self.request())
    }

    /// Why `pending` replicas do not start (for `status`).
    pub(crate) fn pending_message(&self, pending: usize) -> String {
        let request = self.request();
        let short = self.pool.shortfall(&request);
        let short = if short.is_empty() {
            String::new()
        } else {
            format!(" ({short})")
        };
        format!(
            "{pending} replica(s) pending: each needs {}; the instance has {} free{short}",
            describe(&request),
            describe_instance(&self.pool.available()),
        )
    }
}

/// Fails (with what is short) when one replica of `deployment` could never fit in `pool`.
pub(crate) fn check_feasible(
    pool: &ResourcePool,
    deployment: &str,
    request: &ReplicaResources,
) -> Result<(), ServeError> {
    pool.check_feasible(request).map_err(|short| {
        ServeError::new(ErrorKind::Runtime)
            .with_message(format!(
                "a replica of `{deployment}` needs {} but could never fit in this instance ({short}); \
                 give the instance more with `Serve::builder()` (`.num_cpus(n)`, `.num_gpus(n)`, \
                 `.resource(name, n)`)",
                describe(request),
            ))
            .in_deployment(&Arc::from(deployment))
    })
}

/// `{CPU: 1, GPU: 0.5, a100: 1}`.
fn describe(request: &ReplicaResources) -> String {
    let mut parts = vec![format!("CPU: {}", request.num_cpus)];
    if request.num_gpus > 0.0 {
        parts.push(format!("GPU: {}", request.num_gpus));
    }
    parts.extend(
        request
            .custom
            .iter()
            .filter(|(_, amount)| **amount > 0.0)
            .map(|(name, amount)| format!("{name}: {amount}")),
    );
    format!("{{{}}}", parts.join(", "))
}

fn describe_instance(resources: &InstanceResources) -> String {
    let mut parts = Vec::new();
    if let Some(cpus) = resources.num_cpus {
        parts.push(format!("CPU: {cpus}"));
    }
    parts.push(format!("GPU: {}", resources.num_gpus));
    parts.extend(
        resources
            .custom
            .iter()
            .map(|(name, amount)| format!("{name}: {amount}")),
    );
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cpus: Option<f64>, gpus: f64) -> ResourcePool {
        ResourcePool::new(cpus, gpus, &BTreeMap::new(), Vec::new())
    }

    fn ask(cpus: f64, gpus: f64) -> ReplicaResources {
        ReplicaResources {
            num_cpus: cpus,
            num_gpus: gpus,
            custom: BTreeMap::new(),
        }
    }

    #[test]
    fn a_reservation_gives_its_share_back_when_dropped() {
        let pool = pool(Some(2.0), 1.0);
        let a = pool.reserve(&ask(1.0, 1.0)).unwrap();
        assert_eq!(pool.available().num_cpus, Some(1.0));
        assert_eq!(pool.available().num_gpus, 0.0);
        assert!(pool.reserve(&ask(1.0, 1.0)).is_none(), "no GPU left");
        assert_eq!(
            pool.available().num_cpus,
            Some(1.0),
            "a failed reservation takes nothing"
        );
        drop(a);
        assert_eq!(pool.available(), pool.total());
        assert!(pool.reserve(&ask(1.0, 1.0)).is_some());
    }

    #[test]
    fn whole_gpus_get_distinct_ids_and_the_pool_is_never_over_packed() {
        let pool = pool(None, 2.0);
        let a = pool.reserve(&ask(1.0, 1.0)).unwrap();
        let b = pool.reserve(&ask(1.0, 1.0)).unwrap();
        assert_eq!(a.assignment().gpu_ids, [0]);
        assert_eq!(b.assignment().gpu_ids, [1]);
        assert!(pool.reserve(&ask(0.0, 1.0)).is_none());
        assert!(pool.reserve(&ask(0.0, 0.1)).is_none());
        drop(a);
        let c = pool.reserve(&ask(0.0, 1.0)).unwrap();
        assert_eq!(
            c.assignment().gpu_ids,
            [0],
            "the freed GPU is handed out again"
        );
        assert!(
            c.assignment().cpu_ids.is_empty(),
            "without a CPU count, no CPU ids"
        );
    }

    #[test]
    fn fractions_share_a_device_and_add_up_exactly() {
        let pool = pool(Some(1.0), 2.0);
        // Ten tenths of a GPU fill GPU 0 exactly; GPU 1 stays whole.
        let tenths: Vec<_> = (0..10)
            .map(|_| pool.reserve(&ask(0.1, 0.1)).unwrap())
            .collect();
        assert!(tenths.iter().all(|r| r.assignment().gpu_ids == [0]));
        assert!(tenths.iter().all(|r| r.assignment().cpu_ids == [0]));
        assert_eq!(pool.available().num_gpus, 1.0);
        assert_eq!(pool.available().num_cpus, Some(0.0));
        assert!(pool.reserve(&ask(0.0, 0.1)).unwrap().assignment().gpu_ids == [1]);
        let whole = pool.reserve(&ask(0.0, 1.0)).unwrap();
        assert_eq!(whole.assignment().gpu_ids, [1]);
        drop(tenths);
        assert_eq!(pool.available().num_cpus, Some(1.0));
    }

    #[test]
    fn a_fraction_packs_onto_the_fullest_device_that_fits_and_never_spans_two() {
        let pool = pool(None, 2.0);
        let a = pool.reserve(&ask(0.0, 0.6)).unwrap(); // GPU 0: 0.4 left
        let b = pool.reserve(&ask(0.0, 0.3)).unwrap(); // best fit: GPU 0 again
        assert_eq!(
            (
                a.assignment().gpu_ids.clone(),
                b.assignment().gpu_ids.clone()
            ),
            (vec![0], vec![0])
        );
        let c = pool.reserve(&ask(0.0, 0.6)).unwrap(); // only GPU 1 has room
        assert_eq!(c.assignment().gpu_ids, [1]);
        // 0.5 is free in all (0.1 + 0.4) but not on one GPU.
        assert!(pool.reserve(&ask(0.0, 0.5)).is_none());
        assert!(
            pool.shortfall(&ask(0.0, 0.5))
                .contains("at most 0.4 on one GPU")
        );
    }

    #[test]
    fn whole_and_fractional_parts_together() {
        let pool = pool(Some(4.0), 0.0);
        let a = pool.reserve(&ask(1.5, 0.0)).unwrap();
        assert_eq!(a.assignment().cpu_ids, [0, 1]);
        let b = pool.reserve(&ask(2.0, 0.0)).unwrap();
        assert_eq!(b.assignment().cpu_ids, [2, 3]);
        let c = pool.reserve(&ask(0.5, 0.0)).unwrap();
        assert_eq!(c.assignment().cpu_ids, [1], "the other half of CPU 1");
        assert!(pool.reserve(&ask(0.0001, 0.0)).is_none());
    }

    #[test]
    fn a_capacity_with_a_fraction_ends_with_a_partial_device() {
        let pool = pool(Some(2.5), 0.0);
        let a = pool.reserve(&ask(0.5, 0.0)).unwrap();
        assert_eq!(
            a.assignment().cpu_ids,
            [2],
            "the half CPU, leaving whole ones whole"
        );
        let b = pool.reserve(&ask(2.0, 0.0)).unwrap();
        assert_eq!(b.assignment().cpu_ids, [0, 1]);
        assert!(pool.reserve(&ask(0.1, 0.0)).is_none());
        assert!(pool.check_feasible(&ask(3.0, 0.0)).is_err());
        assert!(pool.check_feasible(&ask(2.5, 0.0)).is_ok());
    }

    #[test]
    fn custom_resources_are_amounts() {
        let custom = BTreeMap::from([("a100".to_owned(), 2.0)]);
        let pool = ResourcePool::new(None, 0.0, &custom, Vec::new());
        let mut req = ask(1.0, 0.0);
        req.custom.insert("a100".into(), 1.5);
        let a = pool.reserve(&req).unwrap();
        assert!(pool.reserve(&req).is_none());
        assert_eq!(pool.shortfall(&req), "a100: needs 1.5, free 0.5");
        assert_eq!(pool.available().custom["a100"], 0.5);
        drop(a);
        assert!(pool.reserve(&req).is_some());
        req.custom.insert("tpu".into(), 1.0);
        let err = pool.check_feasible(&req).unwrap_err();
        assert!(err.contains("tpu: needs 1, the instance has none"), "{err}");
        req.custom.insert("tpu".into(), 0.0);
        assert!(
            pool.check_feasible(&req).is_ok(),
            "asking for 0 asks nothing"
        );
    }

    #[test]
    fn infeasible_requests_say_what_is_short() {
        let pool = pool(Some(2.0), 0.0);
        let err = pool.check_feasible(&ask(1.0, 1.0)).unwrap_err();
        assert_eq!(err, "GPU: needs 1, the instance has 0");
        let err = check_feasible(&pool, "Model", &ask(4.0, 0.0)).unwrap_err();
        assert!(err.to_string().contains("CPU: 4"), "{err}");
        assert!(err.to_string().contains("`Model`"), "{err}");
    }

    #[test]
    fn many_threads_never_over_pack() {
        let pool = pool(Some(3.0), 2.0);
        let held = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        if let Some(r) = pool.reserve(&ask(0.5, 0.25)) {
                            let mut held = held.lock().unwrap();
                            held.push(r);
                            if held.len() > 4 {
                                held.remove(0);
                            }
                        }
                    }
                });
            }
        });
        let held = held.into_inner().unwrap();
        let gpus: f64 = held.iter().map(|r| r.assignment().resources.num_gpus).sum();
        assert!(gpus <= 2.0);
        let left = pool.available();
        assert!(left.num_cpus.unwrap() >= 0.0 && left.num_gpus >= 0.0);
        drop(held);
        assert_eq!(pool.available(), pool.total());
    }

    #[test]
    fn gpus_are_detected_from_cuda_visible_devices_first() {
        let none = Path::new("/nonexistent/nvidia/gpus");
        assert_eq!(gpu_labels(Some("2,3"), none), ["2", "3"]);
        assert_eq!(gpu_labels(Some(" 1 , GPU-abc "), none), ["1", "GPU-abc"]);
        assert!(gpu_labels(Some(""), none).is_empty());
        assert!(gpu_labels(Some("NoDevFiles"), none).is_empty());
        assert_eq!(gpu_labels(Some("0,-1,1"), none), ["0"]);
        assert!(gpu_labels(None, none).is_empty());
        let dir = std::env::temp_dir().join(format!("serve-gpus-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("0000:01:00.0")).unwrap();
        std::fs::create_dir_all(dir.join("0000:02:00.0")).unwrap();
        assert_eq!(gpu_labels(None, &dir), ["0", "1"]);
        assert_eq!(gpu_labels(Some("1"), &dir), ["1"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gpu_labels_name_the_visible_devices() {
        let pool = ResourcePool::new(None, 2.0, &BTreeMap::new(), vec!["5".into(), "7".into()]);
        let a = pool.reserve(&ask(0.0, 1.0)).unwrap();
        let b = pool.reserve(&ask(0.0, 1.0)).unwrap();
        assert_eq!(a.assignment().cuda_visible_devices, "5");
        assert_eq!(b.assignment().cuda_visible_devices, "7");
    }
}
