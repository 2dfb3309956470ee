use super::*;

#[test]
fn sole_consumer_takes_the_value_without_clone() {
    struct NotClone(u8);
    let (completer, consumer) = pending::<NotClone>(0);
    completer.complete(Ok(NotClone(7)));
    let response = DeploymentResponse::from_consumer(consumer);
    assert_eq!(response.result().unwrap().0, 7);
}

#[test]
fn clones_each_get_the_value() {
    let (completer, consumer) = pending::<String>(0);
    let a = DeploymentResponse::from_consumer(consumer);
    let b = a.clone();
    completer.complete(Ok("v".into()));
    assert_eq!(a.result().unwrap(), "v");
    assert_eq!(b.result().unwrap(), "v");
}

#[test]
fn dropped_completer_fails_the_request() {
    let (completer, consumer) = pending::<u8>(0);
    drop(completer);
    let err = DeploymentResponse::from_consumer(consumer)
        .result()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShutDown);
}

#[test]
fn timeout_then_result_on_the_same_response() {
    let (completer, consumer) = pending::<u8>(0);
    let response = DeploymentResponse::from_consumer(consumer);
    let err = response
        .result_timeout(Duration::from_millis(1))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    completer.complete(Ok(3));
    assert_eq!(response.result_timeout(Duration::from_secs(5)).unwrap(), 3);
}

#[test]
fn a_value_taken_by_result_timeout_is_not_handed_out_twice() {
    let (completer, consumer) = pending::<u8>(0);
    let response = DeploymentResponse::from_consumer(consumer);
    completer.complete(Ok(4));
    assert_eq!(response.result_timeout(Duration::from_secs(1)).unwrap(), 4);
    let err = response.result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyTaken);
}

#[test]
fn cancelling_a_request_cancels_what_it_started_and_nothing_else() {
    let (_parent_done, parent) = pending::<u8>(0);
    let (_child_done, child) = pending::<u8>(0);
    let (_other_done, other) = pending::<u8>(0);
    let (grandchild_done, grandchild) = pending::<u8>(0);
    parent.cell.adopt(child.cell.clone());
    child.cell.adopt(grandchild.cell.clone());
    DeploymentResponse::from_consumer(parent).cancel();
    for started in [child, grandchild] {
        let err = DeploymentResponse::from_consumer(started)
            .result()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled);
    }
    drop(grandchild_done);
    let other = DeploymentResponse::from_consumer(other);
    assert_eq!(
        other
            .result_timeout(Duration::from_millis(1))
            .unwrap_err()
            .kind(),
        ErrorKind::Timeout,
        "an unrelated request is untouched"
    );
}

#[test]
fn a_child_adopted_by_a_cancelled_request_is_cancelled_at_once() {
    let (_p, parent) = pending::<u8>(0);
    let parent = DeploymentResponse::from_consumer(parent);
    parent.cancel();
    let (_c, child) = pending::<u8>(0);
    parent.consumer.cell.adopt(child.cell.clone());
    let err = DeploymentResponse::from_consumer(child)
        .result()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
}

#[test]
fn cancel_wins_over_a_later_completion() {
    let (completer, consumer) = pending::<u8>(0);
    let response = DeploymentResponse::from_consumer(consumer);
    response.cancel();
    completer.complete(Ok(1));
    assert_eq!(response.result().unwrap_err().kind(), ErrorKind::Cancelled);
}

#[test]
fn object_ref_by_reference_can_be_awaited_many_times() {
    let (completer, consumer) = pending::<u32>(0);
    let obj = ObjectRef::from_consumer(consumer);
    completer.complete(Ok(9));
    futures::executor::block_on(async {
        assert_eq!((&obj).await.unwrap(), 9);
        assert_eq!((&obj).await.unwrap(), 9);
        assert_eq!(obj.clone().await.unwrap(), 9);
        assert_eq!(obj.await.unwrap(), 9);
    });
}
