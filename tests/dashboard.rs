//! The dashboard (issue 12) in a real headless Chromium: the page is loaded from a running
//! server while a load generator calls it, and the test reads the DOM the page built (its
//! script fetched the data and drew the cards) and saves a screenshot.
//!
//! Chromium comes from Debian's packages (`/usr/bin/chromium`, or `$CHROMIUM`); `.ci/run`
//! installs it when it is missing. On a machine without it the browser test says so and is
//! skipped, except under CI (`CI=true`), where a missing browser fails it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serve_core::BoxError;
use serve_core::http::Request;
use serve_core::prelude::*;
use serve_test_support::PATIENCE;
use serve_test_support::http::send;

// --- the application under load -------------------------------------------------------------------

/// A model that fails one call in ten.
#[deployment(num_replicas = 2)]
#[derive(Default)]
pub struct Scorer;

#[deployment]
impl Scorer {
    pub async fn score(&self, x: u64) -> Result<u64, BoxError> {
        if x.is_multiple_of(10) {
            return Err("every tenth call fails".into());
        }
        Ok(x * 2)
    }
}

#[deployment]
pub struct Front {
    scorer: DeploymentHandle<Scorer>,
}

#[deployment]
impl Front {
    pub fn new(scorer: DeploymentHandle<Scorer>) -> Self {
        Self { scorer }
    }

    pub async fn call(&self, req: Request) -> Result<String, ServeError> {
        let x: u64 = req
            .text()
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1);
        Ok(self.scorer.score.remote(x).await?.to_string())
    }
}

// --- the browser ------------------------------------------------------------------------------

/// Chromium, if this machine has it.
fn chromium() -> Option<PathBuf> {
    let candidates = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from));
    candidates.into_iter().find(|p| p.is_file())
}

/// Runs headless Chromium on `url` with `args` (after the flags this machine needs: no sandbox
/// as root, no background network), letting the page's timers run for `virtual_ms` of virtual
/// time; returns what it printed on stdout.
fn headless(chromium: &Path, profile: &Path, url: &str, args: &[&str], virtual_ms: u64) -> String {
    let budget = format!("--virtual-time-budget={virtual_ms}");
    let profile = format!("--user-data-dir={}", profile.display());
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
            &profile,
            &budget,
        ])
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Chromium starts");
    let output = wait_with_deadline(child, PATIENCE * 2);
    String::from_utf8_lossy(&output).into_owned()
}

/// The child's stdout once it exits; kills it (and fails) past `deadline`.
fn wait_with_deadline(mut child: std::process::Child, deadline: Duration) -> Vec<u8> {
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).unwrap();
        out
    });
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "Chromium exited with {status}");
            return reader.join().unwrap();
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("Chromium did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The text of the first element after `from` in `dom` whose opening tag has `class="{class}"`.
fn text_of<'a>(dom: &'a str, from: usize, class: &str) -> Option<&'a str> {
    let marker = format!("class=\"{class}\">");
    let start = dom[from..].find(&marker)? + from + marker.len();
    let end = dom[start..].find('<')? + start;
    Some(&dom[start..end])
}

// --- the test ---------------------------------------------------------------------------------

#[test]
fn the_dashboard_shows_deployments_and_live_rates_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the browser test: install Debian's chromium (.ci/run does)"
        );
        eprintln!(
            "SKIPPED: no Chromium on this machine (apt-get install chromium, or set CHROMIUM)"
        );
        return;
    };
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http(Front::bind(Scorer::bind()), "/").unwrap();

    // A load generator: four clients calling in a loop until the browser is done.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4u64)
        .map(|c| runtime.spawn(load(addr, c, stop.clone())))
        .collect();

    // Let the history take a few samples with traffic in them first.
    let data = runtime.block_on(wait_for_traffic(addr));
    assert!(data.contains("\"Scorer\""), "{data}");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("http://{addr}/-/dashboard");
    let dom = headless(
        &chromium,
        &dir.join("profile-dom"),
        &url,
        &["--dump-dom"],
        3000,
    );

    // The page's script built a card per deployment, with live figures from the server.
    for name in ["Front", "Scorer"] {
        let card = dom
            .find(&format!("data-deployment=\"{name}\""))
            .unwrap_or_else(|| panic!("a card for {name} in:\n{dom}"));
        let rps: f64 = text_of(&dom, card, "rps")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("a req/s figure for {name}"));
        assert!(rps > 0.0, "{name} shows {rps} req/s under load");
        let replicas = text_of(&dom, card, "replicas").unwrap();
        let want = if name == "Scorer" { "2/2" } else { "1/1" };
        assert_eq!(replicas, want, "{name}'s replicas");
    }
    let scorer = dom.find("data-deployment=\"Scorer\"").unwrap();
    let errors: f64 = text_of(&dom, scorer, "errors").unwrap().parse().unwrap();
    assert!(
        errors > 0.0,
        "one call in ten fails: the errors/s of Scorer is not 0"
    );
    assert!(dom.contains("class=\"replica\""), "the replicas are listed");
    assert!(
        dom.contains("<span id=\"error\"></span>"),
        "the page reached the server (its error line is empty)"
    );

    // A screenshot to look at.
    let png = dir.join("dashboard.png");
    let screenshot = format!("--screenshot={}", png.display());
    headless(
        &chromium,
        &dir.join("profile-png"),
        &url,
        &[&screenshot],
        3000,
    );
    let bytes = std::fs::read(&png).expect("Chromium saved the screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG at {}", png.display());
    assert!(
        bytes.len() > 10_000,
        "the screenshot has content: {} bytes",
        bytes.len()
    );
    eprintln!("screenshot: {}", png.display());

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        runtime.block_on(client).unwrap();
    }
    serve.shutdown();
}

/// Calls the application until `stop`.
async fn load(addr: SocketAddr, client: u64, stop: Arc<AtomicBool>) {
    let mut x = client;
    while !stop.load(Ordering::Relaxed) {
        let reply = send(addr, "POST", "/", &[], x.to_string()).await;
        assert!(reply.status == 200 || reply.status >= 500, "{reply:?}");
        x += 4;
    }
}

/// The dashboard's data once its history has a sample in which Scorer served requests.
async fn wait_for_traffic(addr: SocketAddr) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = send(addr, "GET", "/-/dashboard/data", &[], "").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let data: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        let served = data["samples"].as_array().unwrap().iter().any(|s| {
            s["deployments"]["Scorer"]["requests_per_s"]
                .as_f64()
                .unwrap_or(0.0)
                > 0.0
        });
        if served {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "no sample with traffic: {data}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
