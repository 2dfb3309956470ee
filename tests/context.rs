//! The replica context and request ids (issue 4, point 8): what a method can learn about where it
//! runs, request ids shared along a composition, and log lines that carry them.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serve_core::prelude::*;

/// What `Model::predict` saw: application, deployment, replica id, request id.
type Seen = (String, String, usize, String);

#[deployment(num_replicas = 2)]
#[derive(Default)]
pub struct Model;

#[deployment]
impl Model {
    pub async fn predict(&self, x: u32) -> Seen {
        tracing::info!("scoring {x}");
        let ctx = serve_core::replica_context().expect("a method runs in a replica context");
        (
            ctx.app_name().to_owned(),
            ctx.deployment().to_owned(),
            ctx.replica_id(),
            ctx.request_id(),
        )
    }
}

#[deployment]
pub struct Front {
    model: DeploymentHandle<Model>,
}

#[deployment]
impl Front {
    pub fn new(model: DeploymentHandle<Model>) -> Self {
        Self { model }
    }
    /// Returns its own request id and what the model saw.
    pub async fn call(&self, x: u32) -> Result<(String, Seen), ServeError> {
        let own = serve_core::replica_context().unwrap().request_id();
        Ok((own, self.model.predict.remote(x).await?))
    }
    /// The same from a sync method.
    pub fn sync_call(&self, x: u32) -> Result<(String, Seen), ServeError> {
        let own = serve_core::replica_context().unwrap().request_id();
        Ok((own, self.model.predict.remote(x).result()?))
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn methods_see_their_replica_and_request_and_log_lines_carry_the_request_id() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let serve = Serve::start().unwrap();
    let front = serve.run(Front::bind(Model::bind())).unwrap();
    assert!(
        serve_core::replica_context().is_none(),
        "not inside a request here"
    );

    for (x, call) in [(7, front.remote(7)), (8, front.sync_call.remote(8))] {
        let outside_id = call.request_id();
        let (own, (app, deployment, replica, seen)) = call.result().unwrap();
        assert_eq!(
            own, outside_id,
            "the method sees the id of the request that runs it"
        );
        assert_eq!(
            seen, own,
            "a call made on behalf of a request shares its id"
        );
        assert_eq!((app.as_str(), deployment.as_str()), ("default", "Model"));
        assert!(replica < 2);
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let line = logs
            .lines()
            .find(|l| l.contains(&format!("scoring {x}")) && l.contains(&own))
            .unwrap_or_else(|| panic!("no log line with request id {own}:\n{logs}"));
        assert!(line.contains("deployment=Model"), "{line}");
    }

    let a = front.remote(1).result().unwrap().0;
    let b = front.remote(1).result().unwrap().0;
    assert_ne!(a, b, "separate outside calls are separate requests");
}
