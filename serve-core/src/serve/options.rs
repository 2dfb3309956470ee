//! [`RunOptions`]: how an application is run (its name, its HTTP route prefix, its
//! deployments' configurations). What runs it is `serve/apps.rs`.

use crate::config::DeploymentConfig;

/// The name an application gets when it is run without one (Ray Serve's).
pub const DEFAULT_APP_NAME: &str = "default";

/// How an application is run: its name ([`DEFAULT_APP_NAME`] unless given), its HTTP route
/// prefix, and its deployments' configurations (as the code gives them unless given).
///
/// ```
/// use serve_core::prelude::*;
/// use serve_core::RunOptions;
///
/// #[deployment]
/// pub struct Greeter { greeting: String }
///
/// #[deployment]
/// impl Greeter {
///     pub fn new(greeting: String) -> Self { Self { greeting } }
///     pub fn call(&self, name: String) -> String { format!("{} {name}", self.greeting) }
/// }
///
/// let serve = Serve::start()?;
/// let hello = serve.run_with(Greeter::bind("Hello".into()), RunOptions::named("hello"))?;
/// let hola = serve.run_with(Greeter::bind("Hola".into()), RunOptions::named("hola"))?;
/// assert_eq!(hello.remote("Ada").result()?, "Hello Ada");
/// assert_eq!(hola.remote("Ada").result()?, "Hola Ada");
///
/// // Under a name that runs already: a new version of that application, rolled out in place.
/// serve.run_with(Greeter::bind("Hi".into()), RunOptions::named("hello"))?;
/// assert_eq!(hello.remote("Ada").result()?, "Hi Ada");
///
/// let names: Vec<String> = serve.status().into_iter().map(|a| a.name).collect();
/// assert_eq!(names, ["hello", "hola"]);
/// serve.delete("hola")?;
/// assert!(serve.get_app_handle::<Greeter>("hola").is_err());
/// # serve.shutdown();
/// # Ok::<(), ServeError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RunOptions {
    /// The application's name; `None`: [`DEFAULT_APP_NAME`].
    pub name: Option<String>,
    /// Where it is served over HTTP (`run_http` and its kin; `None` there: `"/"`). Not for
    /// [`Serve::run_with`](crate::Serve::run_with), which serves no HTTP.
    pub route_prefix: Option<String>,
    /// Each deployment's configuration, as [`Application::deployment_configs`](crate::Application::deployment_configs) gives them with
    /// values changed (e.g. from a config file); `None`: the code's.
    pub deployment_configs: Option<Vec<DeploymentConfig>>,
}

impl RunOptions {
    /// The defaults: the name [`DEFAULT_APP_NAME`], no route prefix, the code's configurations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options that name the application `name`.
    pub fn named(name: impl Into<String>) -> Self {
        Self::new().name(name)
    }

    /// Names the application.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the HTTP route prefix it is served under (`"/hello"`; `"/"` for everything).
    pub fn route_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.route_prefix = Some(prefix.into());
        self
    }

    /// Sets each deployment's configuration (see [`Serve::run_configured`](crate::Serve::run_configured)).
    pub fn deployment_configs(mut self, configs: Vec<DeploymentConfig>) -> Self {
        self.deployment_configs = Some(configs);
        self
    }

    /// The application's name: the one given, else [`DEFAULT_APP_NAME`].
    pub fn app_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_APP_NAME)
    }
}

/// A route prefix is the options an HTTP run needs most: `serve.run_http(app, "/hello")`.
impl From<&str> for RunOptions {
    fn from(route_prefix: &str) -> Self {
        Self::new().route_prefix(route_prefix)
    }
}

/// See `From<&str>`.
impl From<&String> for RunOptions {
    fn from(route_prefix: &String) -> Self {
        Self::new().route_prefix(route_prefix.as_str())
    }
}

/// See `From<&str>`.
impl From<String> for RunOptions {
    fn from(route_prefix: String) -> Self {
        Self::new().route_prefix(route_prefix)
    }
}
