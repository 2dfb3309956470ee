//! The user guide: how to build, serve, scale and operate applications with `serve-core`, one
//! chapter per module below.
//!
//! The chapters are the Markdown files under `serve-core/docs/`, included here so that rustdoc
//! renders them and every Rust example in them runs as a doc test (`cargo test -p serve-core
//! --doc`): the guide cannot drift from the API. Read them here (`cargo doc -p serve-core
//! --open`, then `serve_core::guide`) or as Markdown, on GitHub or in an editor. Links between
//! chapters point to the Markdown files, so they work on GitHub; here, use the list below.
//!
//! 1. [`getting_started`]: a first deployment; `bind` and `Application`, handles,
//!    `DeploymentResponse`, object refs and `#[remote]` tasks.
//! 2. [`composition`]: Ray Serve's seed programs (hello, chain, stream, object ref), the Python
//!    next to the Rust, in full.
//! 3. [`streaming`]: streaming methods and response generators.
//! 4. [`http`]: serving over HTTP: the ingress, `#[ingress]` routes, several applications on one
//!    server, streaming responses, client disconnects, health and status endpoints.
//! 5. [`cli_and_config`]: the `serve` command line (`run`, `config`, `status`) and YAML/TOML
//!    config files.
//! 6. [`scaling`]: scaling and reliability: the knobs, autoscaling, back pressure, timeouts,
//!    cancellation, health checks, `reconfigure` and updates, graceful shutdown, the replica
//!    context, deployment states and what a caller sees when something fails.
//! 7. [`cluster`]: running on many machines: the head and its workers over NATS, placement,
//!    how calls cross, HTTP on every node, failure, security, the programmatic forms.
//! 8. [`concepts`]: the reference: deployment options, replicas and routing, resources, errors,
//!    `&self` methods and serve instances.
//! 9. [`benchmarks`]: what a handle call and an HTTP request cost, in time and in instructions,
//!    the soak test, and the wire format chosen for calls between processes.
//! 10. [`batching`]: dynamic batching with `#[batch]`: how batches form, errors, changing the
//!     batch size at run time, and what it gains.
//! 11. [`multiplexing`]: model multiplexing: `#[multiplexed]` loaders, choosing a call's model,
//!     routing to the replica that holds it, status, across processes.
//! 12. [`operating`]: operating it: the Prometheus metrics at `/metrics` (Ray Serve's, with
//!     their labels and Ray's names), reading them in process, a Grafana dashboard, what
//!     measuring costs, the live dashboard, log formats, and the control API (Ray's REST API:
//!     deploy a changed config to a running server, delete an application, shut down; the
//!     token).

#[doc = include_str!("../docs/getting-started.md")]
pub mod getting_started {}

// Its `hello` example calls `serve_core::main`: without the `cli` feature the chapter (and so its
// doc tests) is left out.
#[cfg_attr(feature = "cli", doc = include_str!("../docs/composition.md"))]
#[cfg_attr(
    not(feature = "cli"),
    doc = "Ray Serve's seed programs (needs the `cli` feature)."
)]
pub mod composition {}

#[doc = include_str!("../docs/streaming.md")]
pub mod streaming {}

#[doc = include_str!("../docs/http.md")]
pub mod http {}

// Its examples call `serve_core::main` and use `ServeConfig`: without the `cli` feature the chapter
// (and so its doc tests) is left out.
#[cfg_attr(feature = "cli", doc = include_str!("../docs/cli-and-config.md"))]
#[cfg_attr(
    not(feature = "cli"),
    doc = "The `serve` command line and config files (needs the `cli` feature)."
)]
pub mod cli_and_config {}

#[doc = include_str!("../docs/scaling.md")]
pub mod scaling {}

// Its example calls `ServeBuilder::cluster` and `start_worker`: without the `cluster` feature the
// chapter (and so its doc test) is left out.
#[cfg_attr(feature = "cluster", doc = include_str!("../docs/cluster.md"))]
#[cfg_attr(
    not(feature = "cluster"),
    doc = "Running on many machines (needs the `cluster` feature)."
)]
pub mod cluster {}

#[doc = include_str!("../docs/concepts.md")]
pub mod concepts {}

#[doc = include_str!("../docs/benchmarks.md")]
pub mod benchmarks {}

#[doc = include_str!("../docs/batching.md")]
pub mod batching {}

#[doc = include_str!("../docs/multiplexing.md")]
pub mod multiplexing {}

#[doc = include_str!("../docs/operating.md")]
pub mod operating {}
