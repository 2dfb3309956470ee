//! [`Head`]: the cluster's head — it accepts workers, places replicas on them for the control
//! plane, publishes the replica table, and watches the workers' heartbeats.
//!
//! # Failure detection
//!
//! Every node publishes a heartbeat each `heartbeat_s` (1 s by default). A worker silent for
//! [`MISSED_HEARTBEATS`] periods and a half (3.5 s by default; checked each period, so declared
//! within 4.5 s) is declared dead: the calls waiting for its replicas fail at once with
//! [`ErrorKind::Unavailable`] naming the replica and node, its replicas leave routing (requests
//! still queued go to the others), and each deployment's controller rebuilds the missing
//! replicas wherever resources allow. A worker that comes back after that is told to rejoin,
//! and joins as a new, empty node.
//!
//! No worker is declared dead while the head itself has lost its connection to NATS (then every
//! worker is silent); once the head is back, each gets a whole detection bound again.
//!
//! [`MISSED_HEARTBEATS`]: crate::config::MISSED_HEARTBEATS
//! [`ErrorKind::Unavailable`]: crate::ErrorKind::Unavailable

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::{Client, Event};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::protocol::{
    self, Entry, Gone, Heartbeat, Join, Joined, Leave, RouterConfig, Start, Started, Stop,
    Subjects, Table,
};
use crate::config::ClusterOptions;
use crate::control::application::BoxFuture;
use crate::control::nodes::{ClusterHooks, Node, NodeSet, RemoteStarted};
use crate::control::registry::Registry;
use crate::control::resources::ResourcePool;
use crate::error::ServeError;
use crate::request::context::ReplicaInfo;
use crate::transport::Served;
use crate::transport::nats::{NatsPlane, listen, subscribe};
use crate::util::sync::Lock;

/// The head of a cluster.
pub(crate) struct Head {
    /// Itself, for the guards it hands out.
    me: Weak<Head>,
    client: Client,
    subjects: Subjects,
    plane: NatsPlane,
    id: Arc<str>,
    options: ClusterOptions,
    nodes: Weak<NodeSet>,
    registry: Weak<Registry>,
    table: Mutex<Table>,
    workers: Mutex<HashMap<Arc<str>, Worker>>,
    next_key: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Whether the connection to NATS is down: then the workers' silence is the head's own,
    /// and none is declared dead for it.
    offline: AtomicBool,
}

/// A worker the head knows.
struct Worker {
    name: Arc<str>,
    last_seen: Instant,
    /// Set to true when it is declared dead (or leaves).
    gone: watch::Sender<bool>,
}

impl Head {
    /// Starts the head of the cluster `prefix` as node `id`, over `client`.
    pub(crate) async fn start(
        client: Client,
        events: mpsc::UnboundedReceiver<Event>,
        prefix: String,
        id: &str,
        options: ClusterOptions,
        nodes: &Arc<NodeSet>,
        registry: &Arc<Registry>,
    ) -> Result<Arc<Self>, ServeError> {
        // Naming this build hashes the executable, which takes seconds for a large (debug)
        // binary: start it now, on the blocking pool, rather than when the first worker joins.
        drop(tokio::task::spawn_blocking(super::build_id));
        let plane = NatsPlane::start(client.clone(), &prefix, id).await?;
        let head = Arc::new_cyclic(|me| Head {
            me: me.clone(),
            client: client.clone(),
            subjects: Subjects { prefix },
            plane,
            id: id.into(),
            options,
            nodes: Arc::downgrade(nodes),
            registry: Arc::downgrade(registry),
            table: Mutex::new(Table {
                head: id.to_owned(),
                version: 0,
                replicas: Vec::new(),
            }),
            workers: Mutex::default(),
            next_key: AtomicU64::new(1),
            tasks: Mutex::default(),
            offline: AtomicBool::new(false),
        });
        let joins = subscribe(&client, head.subjects.join()).await?;
        let leaves = subscribe(&client, head.subjects.leave()).await?;
        let beats = subscribe(&client, head.subjects.heartbeats()).await?;
        let weak = Arc::downgrade(&head);
        let tasks = [
            listen(&weak, joins, |head, message| async move {
                head.handle_join(message).await;
            }),
            listen(&weak, leaves, |head, message| async move {
                match protocol::decode::<Leave>(&message.payload, "leave") {
                    Ok(leave) => head.declare_gone(&leave.node, "left the cluster"),
                    Err(e) => tracing::warn!("{e}"),
                }
            }),
            listen(&weak, beats, |head, message| async move {
                head.handle_heartbeat(&message.payload);
            }),
            tokio::spawn(Self::keep_alive(weak.clone())),
            tokio::spawn(Self::watch_connection(weak, events)),
        ];
        *head.tasks.locked() = tasks.iter().map(|t| t.abort_handle()).collect();
        tracing::info!(
            node = %head.id,
            subjects = %head.subjects.prefix,
            "cluster head is up: workers join with `worker --cluster {}`",
            head.options.display_url()
        );
        Ok(head)
    }

    /// Stops the head's tasks and its request plane.
    pub(crate) fn shutdown(&self) {
        for task in self.tasks.locked().drain(..) {
            task.abort();
        }
        self.plane.shutdown();
    }

    async fn handle_join(&self, message: async_nats::Message) {
        let Some(reply) = message.reply else {
            tracing::warn!(
                subject = %message.subject,
                "dropped a join request without a reply subject"
            );
            return;
        };
        let answer = match protocol::decode::<Join>(&message.payload, "join") {
            Ok(join) => self.join(join, super::build_id_async().await),
            Err(e) => {
                tracing::warn!("{e}");
                Joined::Refused {
                    reason: e.to_string(),
                }
            }
        };
        let _ = self.client.publish(reply, protocol::encode(&answer)).await;
    }

    /// Accepts a worker, or says why not (the head runs `build`).
    fn join(&self, join: Join, build: &str) -> Joined {
        if join.build != build {
            let reason = format!(
                "worker `{}` runs build {} but the head runs build {build}: run the same \
                 application binary on every node (or set the same SERVE_BUILD_ID where \
                 identical code was built separately)",
                join.name, join.build
            );
            tracing::warn!("refused a worker: {reason}");
            return Joined::Refused { reason };
        }
        let Some(registry) = self.registry.upgrade() else {
            return Joined::Refused {
                reason: "the head is shutting down".into(),
            };
        };
        let deployments = registry.deployments();
        let names: Vec<String> = deployments.iter().map(|d| d.name().to_owned()).collect();
        let mut theirs = join.deployments.clone();
        let mut ours = names.clone();
        theirs.sort_unstable();
        ours.sort_unstable();
        // Before the head deploys its application there is nothing to compare yet (the build
        // check above already holds).
        if !ours.is_empty() && theirs != ours {
            let reason = format!(
                "worker `{}` has the deployments {:?} but the head runs {:?}",
                join.name, join.deployments, names
            );
            tracing::warn!("refused a worker: {reason}");
            return Joined::Refused { reason };
        }
        let Some(nodes) = self.nodes.upgrade() else {
            return Joined::Refused {
                reason: "the head is shutting down".into(),
            };
        };
        let settings = deployments
            .iter()
            .map(|d| {
                let config = d.config();
                RouterConfig {
                    name: config.name,
                    max_ongoing_requests: config.max_ongoing_requests,
                    max_queued_requests: config.max_queued_requests,
                    graceful_shutdown_timeout_s: config.graceful_shutdown_timeout_s,
                }
            })
            .collect();
        let id: Arc<str> = join.node.as_str().into();
        let known = self.workers.locked().contains_key(&id);
        if !known {
            let total = join.resources.into();
            let pool = ResourcePool::of_node(&total, join.gpu_labels, nodes.signal());
            self.workers.locked().insert(
                id.clone(),
                Worker {
                    name: join.name.as_str().into(),
                    last_seen: Instant::now(),
                    gone: watch::Sender::new(false),
                },
            );
            nodes.add_remote(Arc::new(Node {
                id: id.clone(),
                name: join.name.as_str().into(),
                pool,
            }));
            tracing::info!(
                node = %id,
                "worker `{}` joined with {:?}",
                join.name,
                total
            );
            for deployment in &deployments {
                deployment.wake();
            }
        }
        Joined::Accepted {
            head: self.id.to_string(),
            fresh: !known,
            heartbeat_s: self.options.heartbeat().as_secs_f64(),
            settings,
            table: self.table.locked().clone(),
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
        if *beat.node == *self.id {
            return;
        }
        let known = match self.workers.locked().get_mut(beat.node.as_str()) {
            Some(worker) => {
                worker.last_seen = Instant::now();
                true
            }
            None => false,
        };
        if !known {
            // Declared dead earlier (or joined an earlier head): it must join again, empty.
            let client = self.client.clone();
            let subject = self.subjects.rejoin(&beat.node);
            tokio::spawn(async move { client.publish(subject, bytes::Bytes::new()).await });
        }
    }

    /// Sends heartbeats and the table each period, and declares silent workers dead.
    async fn keep_alive(head: Weak<Head>) {
        let period = match head.upgrade() {
            Some(head) => head.options.heartbeat(),
            None => return,
        };
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(head) = head.upgrade() else { return };
            let table = head.table.locked().clone();
            let beat = protocol::encode(&Heartbeat {
                node: head.id.to_string(),
                table: table.version,
            });
            let _ = head
                .client
                .publish(head.subjects.heartbeat(&head.id), beat)
                .await;
            let _ = head
                .client
                .publish(head.subjects.table(), protocol::encode(&table))
                .await;
            if head.offline.load(Ordering::SeqCst) {
                continue;
            }
            let dead_after = head.options.dead_after();
            let silent: Vec<(Arc<str>, Duration)> = head
                .workers
                .locked()
                .iter()
                .filter(|(_, w)| w.last_seen.elapsed() > dead_after)
                .map(|(id, w)| (id.clone(), w.last_seen.elapsed()))
                .collect();
            for (id, silent_for) in silent {
                head.declare_gone(
                    &id,
                    &format!(
                        "stopped answering: no heartbeat for {:.1}s",
                        silent_for.as_secs_f64()
                    ),
                );
            }
        }
    }

    /// Fails the calls in flight when the connection to NATS drops (their replies may be lost).
    async fn watch_connection(head: Weak<Head>, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            let Some(head) = head.upgrade() else { return };
            match event {
                Event::Disconnected => {
                    head.offline.store(true, Ordering::SeqCst);
                    tracing::warn!("the head lost its connection to NATS; reconnecting");
                    head.plane
                        .fail_all("did not answer: the head lost its connection to NATS");
                }
                Event::Connected => {
                    // Every worker gets a whole detection bound to be heard again (it may
                    // reconnect a little later than the head).
                    let now = Instant::now();
                    for worker in head.workers.locked().values_mut() {
                        worker.last_seen = now;
                    }
                    head.offline.store(false, Ordering::SeqCst);
                    tracing::info!("the head is connected to NATS");
                }
                other => tracing::debug!("NATS: {other}"),
            }
        }
    }

    /// Worker `id` died or left: its calls fail, its replicas leave routing (and are rebuilt
    /// elsewhere by their controllers), its resources are forgotten.
    fn declare_gone(&self, id: &str, why: &str) {
        let Some(worker) = self.workers.locked().remove(id) else {
            return;
        };
        worker.gone.send_replace(true);
        tracing::warn!(node = %id, "worker `{}` {why}", worker.name);
        if let Some(nodes) = self.nodes.upgrade() {
            nodes.remove_remote(id);
        }
        let why = format!("did not answer: its node ({id}) {why}");
        self.plane.fail_node(id, &why);
        // The workers' calls to it fail too.
        let gone = protocol::encode(&Gone {
            node: id.to_owned(),
            why: why.clone(),
        });
        let client = self.client.clone();
        let subject = self.subjects.gone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { client.publish(subject, gone).await });
        }
        if let Some(registry) = self.registry.upgrade() {
            for deployment in registry.deployments() {
                let dropped = deployment.drop_node(id);
                if dropped > 0 {
                    tracing::warn!(
                        deployment = deployment.name(),
                        "{dropped} replica(s) were on node `{}`; replacing them",
                        worker.name
                    );
                }
            }
        }
        self.change_table(|table| table.replicas.retain(|e| e.node != id));
    }

    /// Changes the table and publishes it.
    fn change_table(&self, change: impl FnOnce(&mut Table)) {
        let table = {
            let mut table = self.table.locked();
            change(&mut table);
            table.version += 1;
            table.clone()
        };
        let client = self.client.clone();
        let subject = self.subjects.table();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { client.publish(subject, protocol::encode(&table)).await });
        }
    }

    fn target(info: &ReplicaInfo, node_name: &str) -> String {
        format!(
            "replica {}#{} on node `{node_name}`",
            info.deployment, info.replica_id
        )
    }
}

impl ClusterHooks for Head {
    fn start_remote(
        &self,
        node: &Arc<Node>,
        info: &Arc<ReplicaInfo>,
        user_config: Option<serde_json::Value>,
    ) -> BoxFuture<'static, Result<RemoteStarted, ServeError>> {
        let start = Start {
            app: info.app.to_string(),
            deployment: info.deployment.to_string(),
            replica_id: info.replica_id,
            assignment: (&info.assigned).into(),
            user_config: user_config.map(|c| c.to_string()),
        };
        let gone = self
            .workers
            .locked()
            .get(&node.id)
            .map(|w| w.gone.subscribe());
        let request = async_nats::Request::new()
            .payload(protocol::encode(&start))
            .timeout(None);
        let client = self.client.clone();
        let subject = self.subjects.start(&node.id);
        let target = Self::target(info, &node.name);
        let (node, info) = (node.clone(), info.clone());
        let head = self.weak();
        Box::pin(async move {
            let unavailable = |why: String| {
                ServeError::unavailable(format!("{target} could not be started: {why}"))
                    .in_deployment(&info.deployment)
            };
            let Some(mut gone) = gone else {
                return Err(unavailable("the node left the cluster".into()));
            };
            let reply = tokio::select! {
                reply = client.send_request(subject, request) => reply,
                _ = gone.wait_for(|gone| *gone) => {
                    return Err(unavailable("the node died".into()));
                }
            };
            let reply = reply.map_err(|e| unavailable(e.to_string()))?;
            match protocol::decode::<Started>(&reply.payload, "start reply")? {
                Started::Failed { error } => Err(error),
                Started::Running { key } => {
                    let Some(head) = head.upgrade() else {
                        return Err(ServeError::shut_down());
                    };
                    let entry = Entry {
                        deployment: info.deployment.to_string(),
                        replica_id: info.replica_id,
                        node: node.id.to_string(),
                        node_name: node.name.to_string(),
                        key,
                    };
                    head.change_table(|table| table.replicas.push(entry));
                    let endpoint = head.plane.endpoint(&node.id, key, target);
                    let guard = RemoteGuard {
                        head: Arc::downgrade(&head),
                        node: node.id.clone(),
                        stop: Stop {
                            key,
                            deployment: info.deployment.to_string(),
                            replica_id: info.replica_id,
                        },
                    };
                    Ok(RemoteStarted {
                        endpoint,
                        guard: Box::new(guard),
                    })
                }
            }
        })
    }

    fn publish_local(
        &self,
        info: &Arc<ReplicaInfo>,
        served: Arc<dyn Served>,
    ) -> Box<dyn Any + Send + Sync> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.plane.serve(key, served);
        let entry = Entry {
            deployment: info.deployment.to_string(),
            replica_id: info.replica_id,
            node: self.id.to_string(),
            node_name: info.node.as_deref().unwrap_or("head").to_owned(),
            key,
        };
        self.change_table(|table| table.replicas.push(entry));
        Box::new(LocalGuard {
            head: self.weak(),
            key,
            deployment: info.deployment.to_string(),
            replica_id: info.replica_id,
        })
    }
}

impl Head {
    fn weak(&self) -> Weak<Head> {
        self.me.clone()
    }
}

/// Stops a replica on its worker (and unlists it) when dropped.
struct RemoteGuard {
    head: Weak<Head>,
    node: Arc<str>,
    stop: Stop,
}

impl Drop for RemoteGuard {
    fn drop(&mut self) {
        let Some(head) = self.head.upgrade() else {
            return;
        };
        let (deployment, replica_id) = (&self.stop.deployment, self.stop.replica_id);
        head.change_table(|table| {
            table
                .replicas
                .retain(|e| !(e.deployment == *deployment && e.replica_id == replica_id))
        });
        let client = head.client.clone();
        let subject = head.subjects.stop(&self.node);
        let stop = protocol::encode(&self.stop);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { client.publish(subject, stop).await });
        }
    }
}

/// Unlists a replica of the head when dropped, and stops serving it once calls already sent to
/// it have had time to arrive.
struct LocalGuard {
    head: Weak<Head>,
    key: u64,
    deployment: String,
    replica_id: usize,
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        let Some(head) = self.head.upgrade() else {
            return;
        };
        let (deployment, replica_id) = (&self.deployment, self.replica_id);
        head.change_table(|table| {
            table
                .replicas
                .retain(|e| !(e.deployment == *deployment && e.replica_id == replica_id))
        });
        let plane = head.plane.clone();
        let key = self.key;
        let grace = head.options.heartbeat();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(grace).await;
                plane.unserve(key);
            });
        }
    }
}
