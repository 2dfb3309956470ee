//! The deployment API: what a `#[deployment]` type is to the runtime ([`Deployment`](deployment::Deployment),
//! its defaults and lifecycle hooks) and the typed [`DeploymentHandle`](handle::DeploymentHandle)
//! other code calls it through. The generated handle stubs call into the data plane (one layer
//! down); nothing here knows how replicas are started or scaled.

pub(crate) mod deployment;
pub(crate) mod handle;
