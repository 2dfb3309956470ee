//! The sink and the generator together, on a real multi-threaded runtime: items are never held
//! back waiting for a batch to fill, batches form when the consumer is behind, and errors, panics,
//! cancellation and cut-off streams behave as with one item per message.

use std::time::Duration;

use async_stream::stream;
use futures::StreamExt;
use tokio::sync::{oneshot, watch};

use super::StreamSink;
use crate::error::{ErrorKind, ServeError};
use crate::request::generator::{self, BATCH_MAX, DeploymentResponseGenerator, STREAM_BUFFER};
use crate::util::panic::catch_async;

/// Far longer than any step takes; only there so that a broken test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

fn channel<T: Send + 'static>() -> (StreamSink<T>, DeploymentResponseGenerator<T>) {
    let (sender, generator) = generator::generator();
    (StreamSink::new(sender, "Test".into(), "items"), generator)
}

async fn next<T>(items: &mut DeploymentResponseGenerator<T>) -> Option<Result<T, ServeError>> {
    tokio::time::timeout(PATIENCE, items.next())
        .await
        .expect("the next item in time")
}

/// Drops its sender when dropped: the receiver then sees that the producer's stream is gone.
struct DropSignal(#[allow(dead_code)] oneshot::Sender<()>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_item_produced_alone_arrives_while_the_producer_waits() {
    let (sink, mut items) = channel::<u32>();
    let (go, wait) = oneshot::channel::<()>();
    tokio::spawn(sink.drive(stream! {
        yield 7;
        // The producer waits until the consumer has the first item: if it were held back for a
        // batch to fill, this would never end.
        let _ = wait.await;
        yield 8;
    }));
    assert_eq!(next(&mut items).await.unwrap().unwrap(), 7);
    go.send(()).unwrap();
    assert_eq!(next(&mut items).await.unwrap().unwrap(), 8);
    assert!(next(&mut items).await.is_none());
    assert_eq!(items.messages, 2, "each item alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_produced_alone_after_a_pause_arrives_while_the_producer_waits() {
    let (sink, mut items) = channel::<u32>();
    let (resume, paused) = oneshot::channel::<()>();
    let (finish, last_sent) = oneshot::channel::<()>();
    tokio::spawn(sink.drive(stream! {
        for i in 0..100 {
            yield i;
        }
        let _ = paused.await;
        yield 100;
        let _ = last_sent.await;
    }));
    for expected in 0..100 {
        assert_eq!(next(&mut items).await.unwrap().unwrap(), expected);
    }
    resume.send(()).unwrap();
    // Item 100 is alone: it arrives while the producer waits again.
    assert_eq!(next(&mut items).await.unwrap().unwrap(), 100);
    finish.send(()).unwrap();
    assert!(next(&mut items).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_slow_consumer_items_arrive_complete_and_in_order_in_batches() {
    const N: u32 = 20_000;
    let (sink, mut items) = channel::<u32>();
    let (produced_tx, mut produced) = watch::channel(0usize);
    // Each item is ready on its own after a yield to the scheduler, so nothing is batched while
    // there is room in the channel.
    tokio::spawn(sink.drive(stream! {
        for i in 0..N {
            tokio::task::yield_now().await;
            produced_tx.send_replace(i as usize + 1);
            yield i;
        }
    }));
    // The consumer is behind: it reads nothing until the channel is full and the producer has
    // collected a whole batch besides (the most it may run ahead).
    let ahead = STREAM_BUFFER + BATCH_MAX;
    tokio::time::timeout(PATIENCE, produced.wait_for(|n| *n >= ahead))
        .await
        .expect("the producer fills the channel")
        .unwrap();
    assert_eq!(
        *produced.borrow(),
        ahead,
        "the producer waits for the consumer"
    );
    for expected in 0..N {
        assert_eq!(next(&mut items).await.unwrap().unwrap(), expected);
        if expected % 3 == 0 {
            tokio::task::yield_now().await; // stay behind
        }
    }
    assert!(next(&mut items).await.is_none());
    assert!(
        items.messages < N as usize - BATCH_MAX,
        "{} messages for {N} items",
        items.messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_ends_the_stream_after_the_items_collected_before_it() {
    let (sink, mut items) = channel::<u32>();
    tokio::spawn(sink.drive_fallible(stream! {
        for i in 0..5 {
            yield Ok(i);
        }
        yield Err(std::io::Error::other("sensor failed"));
        yield Ok(99);
    }));
    for expected in 0..5 {
        assert_eq!(next(&mut items).await.unwrap().unwrap(), expected);
    }
    let err = next(&mut items).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert_eq!(err.method(), Some("items"));
    assert!(err.to_string().contains("sensor failed"), "{err}");
    assert!(next(&mut items).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_sends_the_items_collected_before_it_then_unwinds() {
    let (sink, mut items) = channel::<u32>();
    let task = tokio::spawn(catch_async(sink.drive(stream! {
        yield 1;
        yield 2;
        panic!("stream broke");
    })));
    assert_eq!(next(&mut items).await.unwrap().unwrap(), 1);
    assert_eq!(next(&mut items).await.unwrap().unwrap(), 2);
    assert!(
        task.await.unwrap().is_err(),
        "the panic reaches the caller of drive"
    );
    // Nobody sent the panic on (the replica's task does): the stream was cut off.
    let err = next(&mut items).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShutDown);
    assert!(next(&mut items).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_generator_drops_a_waiting_producer_at_once() {
    let (sink, mut items) = channel::<u32>();
    let (signal, dropped) = oneshot::channel::<()>();
    tokio::spawn(sink.drive(stream! {
        let _signal = DropSignal(signal);
        yield 0;
        std::future::pending::<()>().await;
        yield 1;
    }));
    assert_eq!(next(&mut items).await.unwrap().unwrap(), 0);
    drop(items);
    let gone = tokio::time::timeout(PATIENCE, dropped).await;
    assert!(gone.expect("the stream is dropped").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_generator_drops_a_producer_waiting_for_room() {
    let (sink, mut items) = channel::<u64>();
    let (signal, dropped) = oneshot::channel::<()>();
    tokio::spawn(sink.drive(stream! {
        let _signal = DropSignal(signal);
        for i in 0.. {
            yield i;
        }
    }));
    assert_eq!(next(&mut items).await.unwrap().unwrap(), 0);
    drop(items);
    let gone = tokio::time::timeout(PATIENCE, dropped).await;
    assert!(gone.expect("the stream is dropped").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_cut_off_mid_stream_ends_it_with_a_shut_down_error() {
    let (sink, mut items) = channel::<u32>();
    let task = tokio::spawn(sink.drive(stream! {
        yield 1;
        std::future::pending::<()>().await;
    }));
    assert_eq!(next(&mut items).await.unwrap().unwrap(), 1);
    task.abort();
    let err = next(&mut items).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShutDown);
    assert!(next(&mut items).await.is_none());
}
