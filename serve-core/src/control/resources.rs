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

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::config::ReplicaResources;
use crate::request::context::Assignment;
use crate::util::sync::Lock;

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
    /// (Shared by the pools of a cluster's nodes, on the head.)
    released: Arc<tokio::sync::watch::Sender<u64>>,
}

impl PoolInner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
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
                released: Arc::new(tokio::sync::watch::Sender::new(0)),
            }),
        }
    }

    /// The head's record of a worker's resources, `total` (its GPUs named by `gpu_labels`),
    /// signalling each release on `released`.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn of_node(
        total: &InstanceResources,
        gpu_labels: Vec<String>,
        released: Arc<tokio::sync::watch::Sender<u64>>,
    ) -> Self {
        let mut pool = Self::new(total.num_cpus, total.num_gpus, &total.custom, gpu_labels);
        if let Some(inner) = Arc::get_mut(&mut pool.inner) {
            inner.released = released;
        }
        pool
    }

    /// The names of its GPUs in `CUDA_VISIBLE_DEVICES`, by id.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn gpu_labels(&self) -> Vec<String> {
        self.inner.gpu_labels.clone()
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

    /// Changes whenever a reservation gives its share back: pending replicas wait on it.
    pub(crate) fn released(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.released.subscribe()
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

#[cfg(test)]
mod tests;
