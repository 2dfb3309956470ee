//! [`ServeError`]: what a caller sees when a request does not produce a value.
//!
//! Every error names the deployment and method it came from (when there is one), says what kind of
//! failure it is ([`ErrorKind`]) and keeps the underlying cause reachable: a user's own error type is
//! kept as the [`std::error::Error::source`] and can be recovered with [`ServeError::downcast_ref`].
//! Errors are cheap to clone (clones of one response each get the same error).
//!
//! A `ServeError` is `Serialize` and `Deserialize`, so it can cross a process boundary: the kind,
//! deployment, method and message survive, and so does the cause chain, link by link. A cause
//! that is itself a `ServeError` comes back as one (an upstream failure still says what failed
//! upstream); any other cause (a user's own error type) comes back as a [`RemoteError`] carrying
//! its message, since its type cannot cross.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A boxed error as returned by user code.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What kind of failure a [`ServeError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The method returned `Err(e)`; `e` is the error's source.
    User,
    /// The method panicked; the message is the panic's payload.
    Panic,
    /// An argument was a response (or object ref) whose request failed; the source is that error.
    Upstream,
    /// The request was cancelled with `.cancel()` before it produced a value.
    Cancelled,
    /// `result_timeout` gave up waiting.
    Timeout,
    /// A blocking call (`.result()`, a blocking iterator) was made on an async runtime thread.
    BlockingInAsync,
    /// A replica's constructor failed (returned `Err`, or panicked).
    Constructor,
    /// The serve instance was shut down before the request completed.
    ShutDown,
    /// The value was already taken out of this response (e.g. by an earlier successful `result_timeout`).
    AlreadyTaken,
    /// The deployment's queue was full (`max_queued_requests`): the request was dropped at once.
    BackPressure,
    /// A configuration (a config file, a deployment option) is invalid; also: the cluster's
    /// NATS server refused the credentials, or the head refused a worker (another build).
    Config,
    /// The runtime itself could not do what was asked (e.g. it could not start its threads).
    Runtime,
    /// A value could not be encoded or decoded to cross to another process (a malformed message,
    /// or the two ends built from different code), or a method called by name does not exist.
    /// Also: a call with a stream argument (`ArgStream`) picked a replica in another process,
    /// where stream arguments cannot go yet.
    Wire,
    /// The replica that took the request, or its whole node, stopped answering (the process
    /// died, or lost its connection to the cluster) before the request completed. Also: a
    /// process could not reach its cluster's NATS server, or a worker found no head, in time.
    Unavailable,
    /// No application or deployment by that name (and, for a typed lookup, of that type) runs
    /// on the instance; also: a call through a handle of a deployment that was deleted.
    NotFound,
}

/// The error of a handle call, a task, or of starting an application.
///
/// `Display` gives a one-line message such as `Adder.call failed: increment overflowed`; the
/// [`source`](StdError::source) chain holds the cause.
#[derive(Clone)]
pub struct ServeError {
    kind: ErrorKind,
    deployment: Option<Arc<str>>,
    method: Option<Name>,
    message: Option<Arc<str>>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl ServeError {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            deployment: None,
            method: None,
            message: None,
            source: None,
        }
    }

    pub(crate) fn at(mut self, deployment: &Arc<str>, method: &'static str) -> Self {
        self.deployment = Some(deployment.clone());
        self.method = Some(Name::Static(method));
        self
    }

    pub(crate) fn in_task(mut self, name: &'static str) -> Self {
        self.method = Some(Name::Static(name));
        self
    }

    pub(crate) fn in_deployment(mut self, deployment: &Arc<str>) -> Self {
        self.deployment = Some(deployment.clone());
        self
    }

    pub(crate) fn with_message(mut self, message: impl Into<Arc<str>>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub(crate) fn with_source(mut self, source: BoxError) -> Self {
        self.source = Some(Arc::from(source));
        self
    }

    pub(crate) fn user(source: BoxError) -> Self {
        Self::new(ErrorKind::User).with_source(source)
    }

    pub(crate) fn panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        Self::new(ErrorKind::Panic).with_message(crate::util::panic::message(&*payload))
    }

    pub(crate) fn upstream(cause: ServeError) -> Self {
        Self::new(ErrorKind::Upstream).with_source(Box::new(cause))
    }

    pub(crate) fn back_pressure(max_queued: usize) -> Self {
        Self::new(ErrorKind::BackPressure).with_message(format!(
            "{max_queued} requests are already waiting (max_queued_requests)"
        ))
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn unavailable(message: impl Into<Arc<str>>) -> Self {
        Self::new(ErrorKind::Unavailable).with_message(message)
    }

    pub(crate) fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled)
    }

    pub(crate) fn shut_down() -> Self {
        Self::new(ErrorKind::ShutDown)
    }

    pub(crate) fn blocking_in_async(what: &str) -> Self {
        Self::new(ErrorKind::BlockingInAsync).with_message(format!(
            "{what} blocks the thread and cannot be called from async code (a tokio runtime thread); use `.await` instead"
        ))
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The failure's own message, if it has one (without the kind or the cause).
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The deployment the failure happened in, if any.
    pub fn deployment(&self) -> Option<&str> {
        self.deployment.as_deref()
    }

    /// The method (or task) the failure happened in, if any.
    pub fn method(&self) -> Option<&str> {
        self.method.as_ref().map(Name::as_str)
    }

    /// Finds an error of type `E` in this error's cause chain.
    ///
    /// A method that returned `Err(e)` keeps `e` reachable in-process:
    /// `err.downcast_ref::<MyError>()` gives it back, also when the error travelled through other
    /// deployments (an upstream failure, or an ingress that returned a downstream `ServeError`).
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        let mut current: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(err) = current {
            if let Some(found) = err.downcast_ref::<E>() {
                return Some(found);
            }
            current = err.source();
        }
        None
    }

    /// The error at the end of the cause chain that is not itself a `ServeError`, if any: for a
    /// user error, the user's own error.
    pub fn root_cause(&self) -> Option<&(dyn StdError + 'static)> {
        let mut current: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(err) = current {
            match err.downcast_ref::<ServeError>() {
                Some(inner) => current = inner.source(),
                None => return Some(err),
            }
        }
        None
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.deployment, self.method()) {
            (Some(d), Some(m)) => write!(f, "{d}.{m} ")?,
            (Some(d), None) => write!(f, "{d} ")?,
            (None, Some(m)) => write!(f, "{m} ")?,
            (None, None) => {}
        }
        let what = match self.kind {
            ErrorKind::User => "failed",
            ErrorKind::Panic => "panicked",
            ErrorKind::Upstream => "was not run: an argument's request failed",
            ErrorKind::Cancelled => "was cancelled",
            ErrorKind::Timeout => "timed out",
            ErrorKind::BlockingInAsync => "was called from async code",
            ErrorKind::Constructor => "could not be constructed",
            ErrorKind::ShutDown => "was not completed: the serve instance shut down",
            ErrorKind::AlreadyTaken => "has no value left: it was already taken",
            ErrorKind::Runtime => "runtime error",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::BackPressure => "Request dropped due to backpressure",
            ErrorKind::Wire => "could not cross to another process",
            // Not a request's error (joining a cluster, reaching its NATS server).
            ErrorKind::Unavailable if self.deployment.is_none() && self.method.is_none() => {
                "unavailable"
            }
            ErrorKind::Unavailable => "could not be reached",
            ErrorKind::NotFound => "not found",
        };
        f.write_str(what)?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeError")
            .field("kind", &self.kind)
            .field("deployment", &self.deployment)
            .field("method", &self.method)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

/// A method's or task's name: the generated code's `&'static str`, or a name that came from
/// another process.
#[derive(Debug, Clone)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Static(name) => name,
            Name::Shared(name) => name,
        }
    }
}

/// The cause of an error that crossed a process boundary, when it was not a [`ServeError`]: its
/// message (the original's `Display`) and, in turn, its own cause. The original type did not
/// cross, so `downcast_ref::<YourError>()` finds nothing on the far side; match on
/// [`to_string`](ToString::to_string) or on the [`ErrorKind`] instead.
#[derive(Debug, Clone)]
pub struct RemoteError {
    message: String,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl RemoteError {
    /// The original error's message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for RemoteError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// How a [`ServeError`] crosses a process boundary.
#[derive(Serialize, Deserialize)]
struct WireError {
    kind: ErrorKind,
    deployment: Option<String>,
    method: Option<String>,
    message: Option<String>,
    source: Option<Box<WireCause>>,
}

/// One link of a cause chain on the wire.
#[derive(Serialize, Deserialize)]
enum WireCause {
    Serve(WireError),
    Other {
        message: String,
        source: Option<Box<WireCause>>,
    },
}

impl WireCause {
    fn of(error: &(dyn StdError + 'static)) -> Self {
        match error.downcast_ref::<ServeError>() {
            Some(serve) => WireCause::Serve(WireError::of(serve)),
            None => WireCause::Other {
                message: error.to_string(),
                source: error.source().map(|s| Box::new(WireCause::of(s))),
            },
        }
    }

    fn into_error(self) -> Arc<dyn StdError + Send + Sync + 'static> {
        match self {
            WireCause::Serve(wire) => Arc::new(wire.into_error()),
            WireCause::Other { message, source } => Arc::new(RemoteError {
                message,
                source: source.map(|s| s.into_error()),
            }),
        }
    }
}

impl WireError {
    fn of(error: &ServeError) -> Self {
        WireError {
            kind: error.kind,
            deployment: error.deployment.as_deref().map(str::to_owned),
            method: error.method().map(str::to_owned),
            message: error.message.as_deref().map(str::to_owned),
            source: error.source().map(|s| Box::new(WireCause::of(s))),
        }
    }

    fn into_error(self) -> ServeError {
        ServeError {
            kind: self.kind,
            deployment: self.deployment.map(Arc::from),
            method: self.method.map(|m| Name::Shared(Arc::from(m))),
            message: self.message.map(Arc::from),
            source: self.source.map(|s| s.into_error()),
        }
    }
}

impl Serialize for ServeError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireError::of(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ServeError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WireError::deserialize(deserializer).map(WireError::into_error)
    }
}

impl StdError for ServeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Overflow;
    impl fmt::Display for Overflow {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("overflow")
        }
    }
    impl StdError for Overflow {}

    #[test]
    fn display_names_deployment_method_and_cause() {
        let name: Arc<str> = Arc::from("Adder");
        let err = ServeError::user(Box::new(Overflow)).at(&name, "call");
        assert_eq!(err.to_string(), "Adder.call failed: overflow");
        assert_eq!(err.deployment(), Some("Adder"));
        assert_eq!(err.method(), Some("call"));
    }

    #[test]
    fn downcast_walks_through_upstream_errors() {
        let adder: Arc<str> = Arc::from("Adder");
        let mult: Arc<str> = Arc::from("Multiplier");
        let inner = ServeError::user(Box::new(Overflow)).at(&adder, "call");
        let outer = ServeError::upstream(inner).at(&mult, "call");
        assert!(outer.downcast_ref::<Overflow>().is_some());
        assert_eq!(outer.root_cause().unwrap().to_string(), "overflow");
        let text = outer.to_string();
        assert!(
            text.contains("Multiplier.call") && text.contains("Adder.call failed"),
            "{text}"
        );
    }

    #[test]
    fn panic_payloads_become_messages() {
        let err = ServeError::panic(Box::new("boom"));
        assert_eq!(err.kind(), ErrorKind::Panic);
        assert_eq!(err.to_string(), "panicked: boom");
        let err = ServeError::panic(Box::new(String::from("bang")));
        assert_eq!(err.to_string(), "panicked: bang");
    }

    fn across(err: &ServeError) -> ServeError {
        serde_json::from_str(&serde_json::to_string(err).unwrap()).unwrap()
    }

    #[test]
    fn an_error_crosses_a_process_boundary_with_its_kind_place_and_message() {
        let err = ServeError::user(Box::new(Overflow)).at(&Arc::from("Adder"), "call");
        let back = across(&err);
        assert_eq!(back.kind(), ErrorKind::User);
        assert_eq!(back.deployment(), Some("Adder"));
        assert_eq!(back.method(), Some("call"));
        assert_eq!(back.to_string(), err.to_string());
        // The user's type stays behind; its message crosses.
        assert!(back.downcast_ref::<Overflow>().is_none());
        let remote = back.downcast_ref::<RemoteError>().unwrap();
        assert_eq!(remote.message(), "overflow");
        assert_eq!(back.root_cause().unwrap().to_string(), "overflow");

        let err = ServeError::back_pressure(3).in_deployment(&Arc::from("Model"));
        let back = across(&err);
        assert_eq!(back.kind(), ErrorKind::BackPressure);
        assert_eq!(back.message(), err.message());
        assert_eq!(back.to_string(), err.to_string());
    }

    #[test]
    fn an_upstream_error_crosses_as_a_chain_of_serve_errors() {
        let inner = ServeError::user(Box::new(Overflow)).at(&Arc::from("Adder"), "call");
        let err = ServeError::upstream(inner).at(&Arc::from("Multiplier"), "call");
        let back = across(&err);
        assert_eq!(back.kind(), ErrorKind::Upstream);
        assert_eq!(back.to_string(), err.to_string());
        let upstream = back.downcast_ref::<ServeError>().unwrap();
        assert_eq!(upstream.kind(), ErrorKind::User);
        assert_eq!(upstream.deployment(), Some("Adder"));
        assert_eq!(back.root_cause().unwrap().to_string(), "overflow");
    }
}
