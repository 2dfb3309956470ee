//! [`WorkerNode`]: a cluster worker — it joins the head, runs the replicas the head places on it,
//! keeps its routers in step with the head's replica table, and stops when the head is gone.
//!
//! # Losing the head
//!
//! A worker that hears no heartbeat from its head for the detection bound (3.5 heartbeat
//! periods) stops: it leaves routing, fails what it still runs with `ShutDown`, and its
//! [`wait`](WorkerNode::wait) returns the reason, so `worker` exits with an error (a process
//! supervisor or Kubernetes restarts it, and it joins the next head). Until then it keeps
//! serving calls already routed to it. It never spins: every wait is on a message or a timer.
//!
//! # Losing NATS for a moment
//!
//! The client reconnects by itself. Calls in flight when the connection dropped fail with
//! `Unavailable` (their replies may be lost). While the connection is down the head's silence
//! is no sign of its death (nothing reaches this worker), so the worker waits for the
//! connection instead, up to the connect timeout, and stops only if it does not come back by
//! then. On reconnecting the worker joins again: if the head still knew it, nothing else
//! changes; if the head had declared it dead, it drops its old replicas and joins as an empty
//! node, and the head places replicas on it again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::{Client, Event, RequestErrorKind};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::protocol::{
    self, Gone, Heartbeat, Join, Joined, Leave, RouterConfig, Start, Started, Stop, Subjects, Table,
};
use crate::config::ClusterOptions;
use crate::control::mirror::Mirror;
use crate::control::resources::InstanceResources;
use crate::error::{ErrorKind, ServeError};
use crate::request::context::{Assignment, ReplicaInfo};
use crate::transport::nats::{NatsPlane, listen, subscribe};
use crate::util::sync::Lock;

/// What a worker offers the cluster.
pub(crate) struct Offer {
    pub(crate) resources: InstanceResources,
    pub(crate) gpu_labels: Vec<String>,
}

/// A cluster worker.
pub(crate) struct WorkerNode {
    client: Client,
    subjects: Subjects,
    plane: NatsPlane,
    id: Arc<str>,
    name: Arc<str>,
    /// Its own options; `heartbeat_s` is replaced by the head's when it joins.
    options: Mutex<ClusterOptions>,
    app: Arc<str>,
    mirrors: HashMap<String, Arc<dyn Mirror>>,
    deployments: Vec<String>,
    offer: Offer,
    /// This node's replicas: key on the request plane -> (deployment, replica id).
    local: Mutex<HashMap<u64, (String, usize)>>,
    head: Mutex<HeadSeen>,
    next_key: AtomicU64,
    /// Why the worker stopped, once it did.
    stopped: watch::Sender<Option<ServeError>>,
    /// Since when the connection to NATS is down, while it is.
    offline: Mutex<Option<Instant>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// The head as this worker knows it.
#[derive(Default)]
struct HeadSeen {
    id: Option<String>,
    /// The version of its table applied here.
    version: u64,
    last_seen: Option<Instant>,
}

impl WorkerNode {
    /// Starts worker `id` (`name`) of cluster `prefix` for an application whose deployments are
    /// `mirrors` (children first, the ingress last), and joins the head; fails if no head
    /// answers within the connect timeout, or the head refuses it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        client: Client,
        events: mpsc::UnboundedReceiver<Event>,
        prefix: String,
        id: &str,
        name: &str,
        options: ClusterOptions,
        mirrors: Vec<Arc<dyn Mirror>>,
        offer: Offer,
    ) -> Result<Arc<Self>, ServeError> {
        let plane = NatsPlane::start(client.clone(), &prefix, id).await?;
        let deployments: Vec<String> = mirrors.iter().map(|m| m.name().to_string()).collect();
        let app: Arc<str> = deployments.last().map_or("", |d| d.as_str()).into();
        let worker = Arc::new(WorkerNode {
            client: client.clone(),
            subjects: Subjects { prefix },
            plane,
            id: id.into(),
            name: name.into(),
            options: Mutex::new(options),
            app,
            mirrors: mirrors
                .into_iter()
                .map(|m| (m.name().to_string(), m))
                .collect(),
            deployments,
            offer,
            local: Mutex::default(),
            head: Mutex::default(),
            next_key: AtomicU64::new(1),
            stopped: watch::Sender::new(None),
            offline: Mutex::new(None),
            tasks: Mutex::default(),
        });
        let starts = subscribe(&client, worker.subjects.start(id)).await?;
        let stops = subscribe(&client, worker.subjects.stop(id)).await?;
        let rejoins = subscribe(&client, worker.subjects.rejoin(id)).await?;
        let tables = subscribe(&client, worker.subjects.table()).await?;
        let beats = subscribe(&client, worker.subjects.heartbeats()).await?;
        let gone = subscribe(&client, worker.subjects.gone()).await?;
        let weak = Arc::downgrade(&worker);
        let tasks = [
            listen(&weak, starts, |worker, message| async move {
                tokio::spawn(worker.handle_start(message));
            }),
            listen(&weak, stops, |worker, message| async move {
                worker.handle_stop(&message.payload);
            }),
            listen(&weak, rejoins, |worker, _| async move {
                tracing::warn!("the head had declared this worker dead; joining again");
                // The head's answer says whether it still holds nothing of this node (then
                // `join` drops the old replicas). Not dropping them here: a rejoin sent before
                // this node's last join was answered would drop the replicas the head placed
                // since.
                if let Err(e) = worker.join().await {
                    worker.stop(e);
                }
            }),
            listen(&weak, tables, |worker, message| async move {
                match protocol::decode::<Table>(&message.payload, "table") {
                    Ok(table) => worker.apply_table(&table),
                    Err(e) => tracing::warn!("{e}"),
                }
            }),
            listen(&weak, gone, |worker, message| async move {
                match protocol::decode::<Gone>(&message.payload, "gone") {
                    Ok(gone) => worker.plane.fail_node(&gone.node, &gone.why),
                    Err(e) => tracing::warn!("{e}"),
                }
            }),
            listen(&weak, beats, |worker, message| async move {
                worker.handle_heartbeat(&message.payload);
            }),
        ];
        *worker.tasks.locked() = tasks.iter().map(|t| t.abort_handle()).collect();
        if let Err(e) = worker.join().await {
            worker.shutdown();
            return Err(e);
        }
        let more = [
            tokio::spawn(Self::keep_alive(weak.clone())),
            tokio::spawn(Self::watch_connection(weak, events)),
        ];
        worker
            .tasks
            .locked()
            .extend(more.iter().map(|t| t.abort_handle()));
        tracing::info!(
            node = %worker.id,
            "worker `{}` joined the cluster at {}",
            worker.name,
            worker.options.locked().display_url()
        );
        Ok(worker)
    }

    /// This node's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Resolves when the worker stopped (its head is gone), with the reason.
    pub(crate) async fn wait(&self) -> ServeError {
        let mut stopped = self.stopped.subscribe();
        match stopped.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_else(ServeError::shut_down),
            Err(_) => ServeError::shut_down(),
        }
    }

    /// Leaves the cluster: the head stops routing here at once and rebuilds this node's
    /// replicas elsewhere; what this node runs for other nodes may finish for up to `timeout`.
    /// Returns whether it did.
    pub(crate) async fn leave(&self, timeout: Duration) -> bool {
        let leave = protocol::encode(&Leave {
            node: self.id.to_string(),
        });
        let _ = self.client.publish(self.subjects.leave(), leave).await;
        let _ = self.client.flush().await;
        for mirror in self.mirrors.values() {
            mirror.close();
        }
        tokio::time::timeout(timeout, self.plane.idle())
            .await
            .is_ok()
    }

    /// Stops its tasks and its request plane.
    pub(crate) fn shutdown(&self) {
        for task in self.tasks.locked().drain(..) {
            task.abort();
        }
        self.plane.shutdown();
    }

    fn stop(&self, why: ServeError) {
        tracing::error!("worker `{}` stops: {why}", self.name);
        for mirror in self.mirrors.values() {
            mirror.close();
        }
        self.stopped.send_replace(Some(why));
    }

    /// Asks the head to take this node, retrying while no head answers (it may start later)
    /// until the connect timeout.
    async fn join(&self) -> Result<(), ServeError> {
        let build = super::build_id_async().await;
        let before: HashSet<u64> = self.local.locked().keys().copied().collect();
        let join = protocol::encode(&Join {
            node: self.id.to_string(),
            name: self.name.to_string(),
            build: build.to_owned(),
            deployments: self.deployments.clone(),
            resources: (&self.offer.resources).into(),
            gpu_labels: self.offer.gpu_labels.clone(),
        });
        let timeout = self.options.locked().connect_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let request = async_nats::Request::new()
                .payload(join.clone())
                .timeout(Some(
                    left.clamp(Duration::from_millis(100), Duration::from_secs(2)),
                ));
            match self
                .client
                .send_request(self.subjects.join(), request)
                .await
            {
                Ok(reply) => {
                    return match protocol::decode::<Joined>(&reply.payload, "join reply")? {
                        Joined::Refused { reason } => Err(ServeError::new(ErrorKind::Config)
                            .with_message(format!("the head refused this worker: {reason}"))),
                        Joined::Accepted {
                            head,
                            fresh,
                            heartbeat_s,
                            settings,
                            table,
                        } => {
                            self.options.locked().heartbeat_s = heartbeat_s;
                            if fresh && !before.is_empty() {
                                self.drop_replicas(Some(&before));
                            }
                            self.configure(&settings);
                            *self.head.locked() = HeadSeen {
                                id: Some(head),
                                version: 0,
                                last_seen: Some(Instant::now()),
                            };
                            self.apply_table(&table);
                            Ok(())
                        }
                    };
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        RequestErrorKind::NoResponders | RequestErrorKind::TimedOut
                    ) && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(ServeError::unavailable(format!(
                        "no head of the cluster answered on `{}` within {timeout:?} ({e}): start \
                         the head first (`run --cluster {}`), with the same cluster name",
                        self.subjects.join(),
                        self.options.locked().display_url()
                    )));
                }
            }
        }
    }

    /// Takes the head's request-path settings (config files included).
    fn configure(&self, settings: &[RouterConfig]) {
        for setting in settings {
            if let Some(mirror) = self.mirrors.get(&setting.name) {
                mirror.set_max_ongoing(setting.max_ongoing_requests);
            }
        }
    }

    /// Drops this node's replicas (those in `only`, or all), and every other node's from
    /// routing (the next table brings them back).
    fn drop_replicas(&self, only: Option<&HashSet<u64>>) {
        let dropped: Vec<(u64, (String, usize))> = self
            .local
            .locked()
            .extract_if(|key, _| only.is_none_or(|only| only.contains(key)))
            .collect();
        for (key, (deployment, replica_id)) in dropped {
            if let Some(mirror) = self.mirrors.get(&deployment) {
                mirror.remove(replica_id);
            }
            self.plane.unserve(key);
        }
        for mirror in self.mirrors.values() {
            for id in mirror.remote_ids() {
                mirror.remove(id);
            }
        }
        self.head.locked().version = 0;
    }

    async fn handle_start(self: Arc<Self>, message: async_nats::Message) {
        let Some(reply) = message.reply else {
            tracing::warn!(
                subject = %message.subject,
                "dropped a start request without a reply subject"
            );
            return;
        };
        let answer = match self.start_replica(&message.payload).await {
            Ok(key) => Started::Running { key },
            Err(error) => {
                tracing::error!("a replica could not be started here: {error}");
                Started::Failed { error }
            }
        };
        let _ = self.client.publish(reply, protocol::encode(&answer)).await;
    }

    async fn start_replica(&self, payload: &[u8]) -> Result<u64, ServeError> {
        let start: Start = protocol::decode(payload, "start")?;
        let Some(mirror) = self.mirrors.get(&start.deployment).cloned() else {
            return Err(ServeError::new(ErrorKind::Wire).with_message(format!(
                "worker `{}` has no deployment `{}`",
                self.name, start.deployment
            )));
        };
        let user_config = match &start.user_config {
            Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                ServeError::new(ErrorKind::Wire)
                    .with_message(format!("a malformed user_config: {e}"))
            })?),
            None => None,
        };
        let info = ReplicaInfo::new(
            start.app.as_str().into(),
            mirror.name().clone(),
            start.replica_id,
            start.assignment.into(),
        )
        .on_node(Some(self.name.clone()))
        .logging(mirror.logging());
        let served = mirror.start_local(info, user_config).await?;
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.plane.serve(key, served);
        self.local
            .locked()
            .insert(key, (start.deployment.clone(), start.replica_id));
        tracing::info!(
            deployment = %start.deployment,
            replica = start.replica_id,
            "replica started on this worker"
        );
        Ok(key)
    }

    fn handle_stop(&self, payload: &[u8]) {
        let stop: Stop = match protocol::decode(payload, "stop") {
            Ok(stop) => stop,
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        let Some((deployment, replica_id)) = self.local.locked().remove(&stop.key) else {
            return;
        };
        if let Some(mirror) = self.mirrors.get(&deployment) {
            mirror.remove(replica_id);
        }
        tracing::info!(%deployment, replica = replica_id, "replica stopped on this worker");
        // Calls already sent to it still arrive for a moment.
        let plane = self.plane.clone();
        let grace = self.options.locked().heartbeat();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            plane.unserve(stop.key);
        });
    }

    /// Follows the head's table: routes to the replicas of other nodes it lists, and to no other.
    fn apply_table(&self, table: &Table) {
        {
            let mut head = self.head.locked();
            if head.id.as_deref() != Some(table.head.as_str()) || table.version <= head.version {
                return;
            }
            head.version = table.version;
        }
        for (name, mirror) in &self.mirrors {
            let wanted: HashMap<usize, &protocol::Entry> = table
                .replicas
                .iter()
                .filter(|e| e.deployment == *name && *e.node != *self.id)
                .map(|e| (e.replica_id, e))
                .collect();
            let have = mirror.remote_ids();
            for id in &have {
                if !wanted.contains_key(id) {
                    mirror.remove(*id);
                }
            }
            for (id, entry) in wanted {
                if have.contains(&id) {
                    continue;
                }
                let info = ReplicaInfo::new(
                    self.app.clone(),
                    mirror.name().clone(),
                    id,
                    Assignment::none(),
                )
                .on_node(Some(entry.node_name.as_str().into()));
                let target = format!("replica {name}#{id} on node `{}`", entry.node_name);
                let endpoint = self.plane.endpoint(&entry.node, entry.key, target);
                mirror.add_remote(Arc::new(info), endpoint);
            }
        }
    }

    fn handle_heartbeat(&self, payload: &[u8]) {
        let beat = match protocol::decode::<Heartbeat>(payload, "heartbeat") {
            Ok(beat) => beat,
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        let mut head = self.head.locked();
        if head.id.as_deref() == Some(beat.node.as_str()) {
            head.last_seen = Some(Instant::now());
        }
    }

    /// Sends heartbeats each period, and stops the worker when the head has been silent too
    /// long.
    async fn keep_alive(worker: Weak<WorkerNode>) {
        let (period, dead_after) = match worker.upgrade() {
            Some(worker) => {
                let options = worker.options.locked();
                // Three times the head's bound for workers: a worker frozen or cut off for a
                // while comes back to be told to rejoin, rather than exiting at once.
                (options.heartbeat(), options.dead_after() * 3)
            }
            None => return,
        };
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_tick = Instant::now();
        loop {
            ticker.tick().await;
            let Some(worker) = worker.upgrade() else {
                return;
            };
            // This process did not run for a while (frozen, swapped out, starved): the head's
            // heartbeats of that time wait unread, so its silence is this worker's own. It gets
            // a whole detection bound again (and if it declared this worker dead meanwhile, it
            // says so on hearing the next heartbeat, and the worker joins again).
            if last_tick.elapsed() > period * 2 {
                tracing::warn!(
                    "worker `{}` did not run for {:.1}s",
                    worker.name,
                    last_tick.elapsed().as_secs_f64()
                );
                worker.head.locked().last_seen = Some(Instant::now());
            }
            last_tick = Instant::now();
            let beat = protocol::encode(&Heartbeat {
                node: worker.id.to_string(),
                table: 0,
            });
            let _ = worker
                .client
                .publish(worker.subjects.heartbeat(&worker.id), beat)
                .await;
            let offline = *worker.offline.locked();
            if let Some(since) = offline {
                // The head's silence is this worker's own: wait for the connection.
                let timeout = worker.options.locked().connect_timeout();
                if since.elapsed() > timeout {
                    worker.stop(ServeError::unavailable(format!(
                        "lost the connection to NATS at {} and could not get it back within \
                         {timeout:?}",
                        worker.options.locked().display_url()
                    )));
                    return;
                }
                continue;
            }
            let silent = worker
                .head
                .locked()
                .last_seen
                .map(|seen| seen.elapsed())
                .filter(|silent| *silent > dead_after);
            if let Some(silent) = silent {
                let head = worker.head.locked().id.clone().unwrap_or_default();
                worker.stop(ServeError::unavailable(format!(
                    "the head (node {head}) stopped answering: no heartbeat for {:.1}s",
                    silent.as_secs_f64()
                )));
                return;
            }
        }
    }

    /// Fails the calls in flight when the connection drops, and joins again when it returns.
    async fn watch_connection(
        worker: Weak<WorkerNode>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let mut lost = false;
        // Joining again runs on its own, so the next drop is seen while it waits for the head
        // (which may be reconnecting too): a drop ends it, the next reconnection starts another.
        let mut rejoin: Option<tokio::task::JoinHandle<()>> = None;
        while let Some(event) = events.recv().await {
            let Some(worker) = worker.upgrade() else {
                return;
            };
            match event {
                Event::Disconnected => {
                    lost = true;
                    if let Some(rejoin) = rejoin.take() {
                        rejoin.abort();
                    }
                    worker.offline.locked().get_or_insert_with(Instant::now);
                    tracing::warn!("worker `{}` lost its connection to NATS", worker.name);
                    worker
                        .plane
                        .fail_all("did not answer: this worker lost its connection to NATS");
                }
                Event::Connected if lost => {
                    lost = false;
                    // The head gets a whole detection bound to be heard again.
                    worker.head.locked().last_seen = Some(Instant::now());
                    *worker.offline.locked() = None;
                    tracing::info!("worker `{}` is connected to NATS again", worker.name);
                    let joining = Arc::downgrade(&worker);
                    rejoin = Some(tokio::spawn(async move {
                        let Some(worker) = joining.upgrade() else {
                            return;
                        };
                        if let Err(e) = worker.join().await {
                            worker.stop(e);
                        }
                    }));
                }
                other => tracing::debug!("NATS: {other}"),
            }
        }
    }
}
