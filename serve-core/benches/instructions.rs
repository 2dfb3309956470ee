//! Instructions per handle call, counted by valgrind's callgrind: a measure of the hot path that,
//! unlike wall-clock time on a shared machine, barely moves between runs (a few percent, from
//! thread scheduling), so a change that adds work to every call shows up.
//!
//! ```sh
//! cargo bench -p serve-core --bench instructions
//! ```
//!
//! runs this binary under `valgrind --tool=callgrind` twice per workload, with `SHORT` and `LONG`
//! calls, and prints `(instructions(LONG) - instructions(SHORT)) / (LONG - SHORT)`: the cost of one
//! call with start-up and shut-down cancelled out. Without valgrind it says so and exits.
//!
//! Next to the total it prints serve-core's *own* instructions per call: the self cost of every
//! function whose name is in `serve_core` (callgrind_annotate's per-function counts), without
//! tokio, libc or the caller. The total moves by 5-10% between runs, because it depends on
//! whether threads park between calls; the own count moves by a few instructions, so it is the
//! guard against a change that makes serve-core's hot path heavier.
//!
//! Workloads (the caller is a current-thread runtime on the main thread, as in `benches/handle.rs`):
//! * `bare`: a bare tokio mpsc + oneshot round trip to a server task on a multi-threaded runtime;
//! * `async_hop`: `handle.remote(x).await` on an `async fn` method;
//! * `sync_hop`: the same on a sync `fn` method (called from the main thread: once its calls
//!   prove short, it runs in a task on the async workers);
//! * `chain`: the seed's Ingress -> Adder -> Multiplier with async leaves (`common::AsyncIngress`);
//! * `sync_chain`: the same as the seed wrote it, with sync leaves (`common::Ingress`): once their
//!   calls prove short, the leaves run in place in the ingress's task;
//! * `http_bare`: a `POST /` with the hello app's JSON to a bare axum handler that parses it and
//!   formats the greeting (a hyper client on one keep-alive connection; its instructions count
//!   too, the same in both HTTP rows);
//! * `http`: the same request to the seed's hello app behind the HTTP proxy (ingress
//!   `LanguageClassifier`, then `SpanishResponder`);
//! * `stream_item`: one item of the seed's composed stream (`Caller` re-streams `Streamer`'s
//!   `0..N`, consumed on the main thread): a stream of `SHORT` items and one of `LONG`.

use std::process::Command;

use serve_core::prelude::*;
use tokio::sync::{mpsc, oneshot};

const SHORT: u64 = 1_000;
const LONG: u64 = 11_000;

mod common;
use common::{
    Adder, AsyncAdder, AsyncEcho, AsyncIngress, AsyncMultiplier, Caller, Ingress, Multiplier,
    Streamer, SyncEcho,
};

#[allow(dead_code)] // the client, the app and the bare server only
mod hello;

const WORKLOADS: [&str; 8] = [
    "bare",
    "async_hop",
    "sync_hop",
    "chain",
    "sync_chain",
    "http_bare",
    "http",
    "stream_item",
];

/// Sends `calls` hello requests one after another on one keep-alive connection to `addr`,
/// checking each answer; returns the sum `sum_of` expects.
fn http_requests(caller: &tokio::runtime::Runtime, addr: std::net::SocketAddr, calls: u64) -> u64 {
    caller.block_on(async {
        let mut sender = hello::connect(addr).await.expect("connects");
        for _ in 0..calls {
            hello::hello(&mut sender, addr).await.expect("Hola Dora");
        }
    });
    calls * (calls - 1) / 2 + calls
}

/// Awaits `call(x)` for `x` in `0..calls`, one after another, on `caller`; returns the sum of
/// the answers.
fn sum_of<F, Fut>(caller: &tokio::runtime::Runtime, calls: u64, mut call: F) -> u64
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    caller.block_on(async {
        let mut sum = 0;
        for x in 0..calls {
            sum += call(x).await;
        }
        sum
    })
}

/// Runs `calls` calls of `workload` (the child process under valgrind). Every workload answers
/// `x + 1` (the chain `(x + 1) * 2`, halved), so the sums are checked alike.
fn run(workload: &str, calls: u64) {
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a caller runtime");
    let serve = Serve::start().expect("a serve instance");
    let sum: u64 = match workload {
        "bare" => {
            let server = tokio::runtime::Runtime::new().expect("a server runtime");
            let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(64);
            server.spawn(async move {
                while let Some((x, reply)) = rx.recv().await {
                    let _ = reply.send(x + 1);
                }
            });
            let tx = &tx;
            sum_of(&caller, calls, |x| async move {
                let (reply, answer) = oneshot::channel();
                tx.send((x, reply)).await.expect("the server runs");
                answer.await.expect("the server answers")
            })
        }
        "async_hop" => {
            let handle = serve.run(AsyncEcho::bind()).expect("deploys");
            sum_of(&caller, calls, |x| {
                let answer = handle.remote(x);
                async { answer.await.expect("answers") }
            })
        }
        "sync_hop" => {
            let handle = serve.run(SyncEcho::bind()).expect("deploys");
            sum_of(&caller, calls, |x| {
                let answer = handle.remote(x);
                async { answer.await.expect("answers") }
            })
        }
        "chain" => {
            let app = AsyncIngress::bind(AsyncAdder::bind(1), AsyncMultiplier::bind(2));
            let handle = serve.run(app).expect("deploys");
            sum_of(&caller, calls, |x| {
                let answer = handle.remote(x as i32);
                async { answer.await.expect("answers") as u64 / 2 }
            })
        }
        "sync_chain" => {
            let app = Ingress::bind(Adder::bind(1), Multiplier::bind(2));
            let handle = serve.run(app).expect("deploys");
            sum_of(&caller, calls, |x| {
                let answer = handle.remote(x as i32);
                async { answer.await.expect("answers") as u64 / 2 }
            })
        }
        "http_bare" => {
            let (_server, addr) = hello::start_bare();
            http_requests(&caller, addr, calls)
        }
        "http" => {
            let addr = serve.start_http("127.0.0.1:0").expect("HTTP proxy");
            let app = hello::LanguageClassifier::bind(
                hello::SpanishResponder::bind(),
                hello::FrenchResponder::bind(),
            );
            serve.run_http(app, "/").expect("deploys");
            http_requests(&caller, addr, calls)
        }
        "stream_item" => {
            let handle = serve.run(Caller::bind(Streamer::bind())).expect("deploys");
            caller.block_on(async {
                let limit = u32::try_from(calls).expect("items fit a u32");
                let mut items: DeploymentResponseGenerator<u32> = handle.remote(limit);
                let mut sum = 0;
                while let Some(item) = items.next().await {
                    sum += u64::from(item.expect("an item")) + 1;
                }
                sum
            })
        }
        other => panic!("unknown workload {other}"),
    };
    assert_eq!(sum, calls * (calls - 1) / 2 + calls, "every call answered");
    serve.shutdown();
}

/// Instructions callgrind counted for one child run, all of them and serve-core's own, or why
/// there is no count.
fn count(workload: &str, calls: u64) -> Result<(u64, u64), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::env::temp_dir().join(format!(
        "serve-instructions-{}-{workload}-{calls}.out",
        std::process::id()
    ));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(me)
        .args(["--child", workload, &calls.to_string()])
        .output()
        .map_err(|e| format!("valgrind could not be run ({e}); install valgrind"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("the run under valgrind failed:\n{stderr}"));
    }
    let total = stderr
        .lines()
        .find_map(|line| {
            let (_, count) = line.split_once("Collected :")?;
            count.trim().parse().ok()
        })
        .ok_or_else(|| format!("no instruction count in valgrind's output:\n{stderr}"))?;
    let own = own_instructions(&out);
    let _ = std::fs::remove_file(&out);
    Ok((total, own?))
}

/// The self cost of the functions in `serve_core`, from callgrind_annotate's per-function list.
fn own_instructions(out: &std::path::Path) -> Result<u64, String> {
    let output = Command::new("callgrind_annotate")
        .args(["--threshold=100", "--inclusive=no"])
        .arg(out)
        .output()
        .map_err(|e| format!("callgrind_annotate could not be run ({e})"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // Lines such as `1,606,000 ( 2.29%)  ???:serve_core::router::Router<D>::reserve [..]`.
    Ok(text
        .lines()
        .filter(|line| line.contains("serve_core"))
        .filter_map(|line| {
            line.split_whitespace()
                .next()?
                .replace(',', "")
                .parse::<u64>()
                .ok()
        })
        .sum())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, workload, calls] = args.as_slice()
        && flag == "--child"
    {
        run(workload, calls.parse().expect("a number of calls"));
        return;
    }
    // `cargo bench` passes `--bench` (and maybe a filter): anything else picks workloads by name.
    let filter: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    println!("instructions per call (callgrind; {LONG} - {SHORT} calls)");
    let mut bare = None;
    for workload in WORKLOADS {
        if !filter.is_empty() && !filter.iter().any(|f| workload.contains(f)) {
            continue;
        }
        let (per_call, own) = match (count(workload, SHORT), count(workload, LONG)) {
            (Ok(short), Ok(long)) => (
                long.0.saturating_sub(short.0) / (LONG - SHORT),
                long.1.saturating_sub(short.1) / (LONG - SHORT),
            ),
            (Err(e), _) | (_, Err(e)) => {
                println!("{workload}: not counted: {e}");
                return;
            }
        };
        if workload == "bare" {
            bare = Some(per_call);
        }
        match bare.filter(|_| workload != "bare") {
            Some(bare) => println!(
                "{workload:>10}: {per_call:>7} ({:.2}x bare), serve-core's own: {own:>5}",
                per_call as f64 / bare as f64
            ),
            None => println!("{workload:>10}: {per_call:>7}"),
        }
    }
}
