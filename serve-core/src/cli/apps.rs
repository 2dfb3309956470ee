//! The applications a binary offers the command line, by name: one (`serve_core::main(app)`)
//! or several (`serve_core::apps().app("a", a).app("b", b).main()`), each possibly built from
//! arguments (`app_with_args`). `serve run NAME`, or a config file's `import_path`
//! (`hello:language_classifier`: the part after `:`), picks one.
//!
//! The command line handles them through [`Servable`], which hides each application's deployment
//! type: what the verbs need of one is its configurations, and to be run (over HTTP or not) or
//! to join a cluster as a worker.

#[cfg(feature = "cluster")]
use std::net::SocketAddr;

use serde::de::DeserializeOwned;

use crate::api::deployment::Deployment;
use crate::api::handle::CallOne;
use crate::config::{DeploymentConfig, config_error, import_attribute};
use crate::control::application::Application;
use crate::error::ServeError;
use crate::http::{IntoHttpResponse, Request};
use crate::serve::{RunOptions, Serve};

/// An application the command line runs, whatever its deployment type.
pub(crate) trait Servable {
    /// Each deployment's configuration, as the code sets it.
    fn deployment_configs(&self) -> Vec<DeploymentConfig>;
    /// Deploys it and serves it over HTTP under `route_prefix`.
    fn run_http(self: Box<Self>, serve: &Serve, options: RunOptions) -> Result<(), ServeError>;
    /// Deploys it without HTTP (`proxy_location: Disabled`).
    fn run(self: Box<Self>, serve: &Serve, options: RunOptions) -> Result<(), ServeError>;
    /// Joins a cluster as a worker that can run its replicas.
    #[cfg(feature = "cluster")]
    fn start_worker(
        self: Box<Self>,
        builder: crate::serve::ServeBuilder,
    ) -> Result<Box<dyn RunningWorker>, ServeError>;
}

/// A worker of the cluster, whatever its application's type.
#[cfg(feature = "cluster")]
pub(crate) trait RunningWorker: Send + Sync {
    fn node_name(&self) -> &str;
    fn serve_http(&self, addr: &str, route_prefix: &str) -> Result<SocketAddr, ServeError>;
    fn set_http_request_timeout(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), ServeError>;
    fn wait(&self) -> ServeError;
    fn leave(&self, timeout: Option<std::time::Duration>) -> bool;
}

/// An application whose ingress answers HTTP requests.
struct HttpApp<D: Deployment>(Application<D>);

impl<D, R> Servable for HttpApp<D>
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    fn deployment_configs(&self) -> Vec<DeploymentConfig> {
        self.0.deployment_configs()
    }

    fn run_http(self: Box<Self>, serve: &Serve, options: RunOptions) -> Result<(), ServeError> {
        serve.run_http(self.0, options).map(drop)
    }

    fn run(self: Box<Self>, serve: &Serve, options: RunOptions) -> Result<(), ServeError> {
        serve.run_with(self.0, options).map(drop)
    }

    #[cfg(feature = "cluster")]
    fn start_worker(
        self: Box<Self>,
        builder: crate::serve::ServeBuilder,
    ) -> Result<Box<dyn RunningWorker>, ServeError> {
        Ok(Box::new(builder.start_worker(self.0)?))
    }
}

#[cfg(feature = "cluster")]
impl<D, R> RunningWorker for crate::serve::cluster::Worker<D>
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    fn node_name(&self) -> &str {
        crate::serve::cluster::Worker::node_name(self)
    }

    fn serve_http(&self, addr: &str, route_prefix: &str) -> Result<SocketAddr, ServeError> {
        crate::serve::cluster::Worker::serve_http(self, addr, route_prefix)
    }

    fn set_http_request_timeout(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), ServeError> {
        crate::serve::cluster::Worker::set_http_request_timeout(self, timeout)
    }

    fn wait(&self) -> ServeError {
        crate::serve::cluster::Worker::wait(self)
    }

    fn leave(&self, timeout: Option<std::time::Duration>) -> bool {
        crate::serve::cluster::Worker::leave(self, timeout)
    }
}

/// Builds an application from a config file's `args`.
type Build =
    Box<dyn Fn(Option<serde_json::Value>) -> Result<Box<dyn Servable>, ServeError> + Send + Sync>;

/// One application a binary offers.
pub(crate) struct Offered {
    pub(crate) name: String,
    build: Build,
}

impl Offered {
    /// The application, built with `args` (a config file's; `None` when not given). It can be
    /// built again: the control API deploys new versions of it.
    pub(crate) fn build(
        &self,
        args: Option<serde_json::Value>,
    ) -> Result<Box<dyn Servable>, ServeError> {
        (self.build)(args)
    }
}

/// Offers `app` as `name` (see `serve_core::apps().app(..)`): it takes no `args`.
pub(crate) fn offer<D, R>(name: String, app: Application<D>) -> Offered
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    let label = name.clone();
    offered(name, move |args| {
        if has_args(args.as_ref()) {
            return Err(config_error(format!(
                "application `{label}` takes no `args` (it is offered with `.app(..)`; offer it \
                 with `.app_with_args(..)` to build it from them), but the config file gives some"
            )));
        }
        Ok(app.clone())
    })
}

/// Offers as `name` the application `build` makes from its arguments (see
/// `serve_core::apps().app_with_args(..)`): a config file's `args`, or `{}` when it has none.
pub(crate) fn offer_with_args<A, D, R>(
    name: String,
    build: impl Fn(A) -> Application<D> + Send + Sync + 'static,
) -> Offered
where
    A: DeserializeOwned,
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    let label = name.clone();
    offered(name, move |args| {
        let args = match args {
            None | Some(serde_json::Value::Null) => serde_json::json!({}),
            Some(args) => args,
        };
        let args: A = serde_path_to_error::deserialize(args).map_err(|e| {
            let at = e.path().to_string();
            let at = if at == "." {
                String::new()
            } else {
                format!(" at `{at}`")
            };
            config_error(format!(
                "the `args` of application `{label}` do not fit it{at}: {}",
                e.inner()
            ))
        })?;
        Ok(build(args))
    })
}

/// The application `build` makes from a config file's `args`, offered as `name`.
fn offered<D, R>(
    name: String,
    build: impl Fn(Option<serde_json::Value>) -> Result<Application<D>, ServeError>
    + Send
    + Sync
    + 'static,
) -> Offered
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    Offered {
        name,
        build: Box::new(move |args| Ok(Box::new(HttpApp(build(args)?)) as Box<dyn Servable>)),
    }
}

/// Whether a config file's `args` ask for something (`{}` and `null` do not).
fn has_args(args: Option<&serde_json::Value>) -> bool {
    match args {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Object(map)) => !map.is_empty(),
        Some(_) => true,
    }
}

/// The one application of `serve_core::main(app)`, named for its ingress deployment.
pub(crate) fn single<D, R>(app: Application<D>) -> Vec<Offered>
where
    D: Deployment,
    D::Handle: CallOne<Request, Output = R>,
    R: IntoHttpResponse + Send + 'static,
{
    let name = app
        .deployment_configs()
        .last()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    vec![offer(name, app)]
}

/// A name as written in Python or in Rust, compared loosely: `language_classifier` is
/// `LanguageClassifier`.
fn loose(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The index of the offered application `wanted` names (its name exactly, else loosely; see
/// [`loose`]), or an error listing the names offered. With one offered, that one, whatever
/// `wanted` says (with a note for the log when it names another).
pub(crate) fn choose(
    offered: &[Offered],
    wanted: &str,
    from: &str,
    notes: &mut Vec<String>,
) -> Result<usize, ServeError> {
    if let Some(at) = offered.iter().position(|o| o.name == wanted) {
        return Ok(at);
    }
    let loosely: Vec<usize> = (0..offered.len())
        .filter(|&i| loose(&offered[i].name) == loose(wanted))
        .collect();
    if let [at] = loosely[..] {
        return Ok(at);
    }
    if offered.len() == 1 {
        notes.push(format!(
            "{from} names application `{wanted}`; this binary serves one, `{}`: running it",
            offered[0].name
        ));
        return Ok(0);
    }
    let names: Vec<&str> = offered.iter().map(|o| o.name.as_str()).collect();
    Err(config_error(format!(
        "{from} names application `{wanted}`, but this binary offers: {}",
        names.join(", ")
    )))
}

/// The name `run`'s argument gives an application: an import path's part after `:` (or after
/// the last `.`), or the argument itself.
pub(crate) fn import_name(target: &str) -> &str {
    import_attribute(target).unwrap_or(target)
}

/// The route an application is mounted at under `http_options.root_path`.
pub(crate) fn under_root(root: Option<&str>, route_prefix: &str) -> String {
    match root.map(|r| r.trim_end_matches('/')) {
        None | Some("") => route_prefix.to_owned(),
        Some(root) if route_prefix == "/" => root.to_owned(),
        Some(root) => format!("{root}{route_prefix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<Offered> {
        names
            .iter()
            .map(|n| Offered {
                name: (*n).to_owned(),
                build: Box::new(|_| Err(config_error("not built in this test".into()))),
            })
            .collect()
    }

    #[test]
    fn an_import_path_picks_an_application_by_name_exactly_then_loosely() {
        let offered = named(&["language_classifier", "Summarizer", "summarizer_v2"]);
        let notes = &mut Vec::new();
        assert_eq!(
            choose(&offered, "language_classifier", "x", notes).unwrap(),
            0
        );
        assert_eq!(
            choose(&offered, "LanguageClassifier", "x", notes).unwrap(),
            0
        );
        assert_eq!(choose(&offered, "summarizer", "x", notes).unwrap(), 1);
        assert!(notes.is_empty(), "{notes:?}");
        let err = choose(&offered, "translator", "import_path `t:translator`", notes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "import_path `t:translator` names application `translator`, but this binary \
                 offers: language_classifier, Summarizer, summarizer_v2"
            ),
            "{err}"
        );
        // One application offered: it runs, whatever the path names, and the log says so.
        let one = named(&["LanguageClassifier"]);
        assert_eq!(choose(&one, "other", "`x:other`", notes).unwrap(), 0);
        assert_eq!(
            notes[..],
            [
                "`x:other` names application `other`; this binary serves one, \
              `LanguageClassifier`: running it"
            ]
        );
    }
}
