use super::*;
use crate::control::placement::check_feasible;

fn pool(cpus: Option<f64>, gpus: f64) -> ResourcePool {
    ResourcePool::new(cpus, gpus, &BTreeMap::new(), Vec::new())
}

fn ask(cpus: f64, gpus: f64) -> ReplicaResources {
    ReplicaResources {
        num_cpus: cpus,
        num_gpus: gpus,
        custom: BTreeMap::new(),
    }
}

#[test]
fn a_reservation_gives_its_share_back_when_dropped() {
    let pool = pool(Some(2.0), 1.0);
    let a = pool.reserve(&ask(1.0, 1.0)).unwrap();
    assert_eq!(pool.available().num_cpus, Some(1.0));
    assert_eq!(pool.available().num_gpus, 0.0);
    assert!(pool.reserve(&ask(1.0, 1.0)).is_none(), "no GPU left");
    assert_eq!(
        pool.available().num_cpus,
        Some(1.0),
        "a failed reservation takes nothing"
    );
    drop(a);
    assert_eq!(pool.available(), pool.total());
    assert!(pool.reserve(&ask(1.0, 1.0)).is_some());
}

#[test]
fn whole_gpus_get_distinct_ids_and_the_pool_is_never_over_packed() {
    let pool = pool(None, 2.0);
    let a = pool.reserve(&ask(1.0, 1.0)).unwrap();
    let b = pool.reserve(&ask(1.0, 1.0)).unwrap();
    assert_eq!(a.assignment().gpu_ids, [0]);
    assert_eq!(b.assignment().gpu_ids, [1]);
    assert!(pool.reserve(&ask(0.0, 1.0)).is_none());
    assert!(pool.reserve(&ask(0.0, 0.1)).is_none());
    drop(a);
    let c = pool.reserve(&ask(0.0, 1.0)).unwrap();
    assert_eq!(
        c.assignment().gpu_ids,
        [0],
        "the freed GPU is handed out again"
    );
    assert!(
        c.assignment().cpu_ids.is_empty(),
        "without a CPU count, no CPU ids"
    );
}

#[test]
fn fractions_share_a_device_and_add_up_exactly() {
    let pool = pool(Some(1.0), 2.0);
    // Ten tenths of a GPU fill GPU 0 exactly; GPU 1 stays whole.
    let tenths: Vec<_> = (0..10)
        .map(|_| pool.reserve(&ask(0.1, 0.1)).unwrap())
        .collect();
    assert!(tenths.iter().all(|r| r.assignment().gpu_ids == [0]));
    assert!(tenths.iter().all(|r| r.assignment().cpu_ids == [0]));
    assert_eq!(pool.available().num_gpus, 1.0);
    assert_eq!(pool.available().num_cpus, Some(0.0));
    assert!(pool.reserve(&ask(0.0, 0.1)).unwrap().assignment().gpu_ids == [1]);
    let whole = pool.reserve(&ask(0.0, 1.0)).unwrap();
    assert_eq!(whole.assignment().gpu_ids, [1]);
    drop(tenths);
    assert_eq!(pool.available().num_cpus, Some(1.0));
}

#[test]
fn a_fraction_packs_onto_the_fullest_device_that_fits_and_never_spans_two() {
    let pool = pool(None, 2.0);
    let a = pool.reserve(&ask(0.0, 0.6)).unwrap(); // GPU 0: 0.4 left
    let b = pool.reserve(&ask(0.0, 0.3)).unwrap(); // best fit: GPU 0 again
    assert_eq!(
        (
            a.assignment().gpu_ids.clone(),
            b.assignment().gpu_ids.clone()
        ),
        (vec![0], vec![0])
    );
    let c = pool.reserve(&ask(0.0, 0.6)).unwrap(); // only GPU 1 has room
    assert_eq!(c.assignment().gpu_ids, [1]);
    // 0.5 is free in all (0.1 + 0.4) but not on one GPU.
    assert!(pool.reserve(&ask(0.0, 0.5)).is_none());
    assert!(
        pool.shortfall(&ask(0.0, 0.5))
            .contains("at most 0.4 on one GPU")
    );
}

#[test]
fn whole_and_fractional_parts_together() {
    let pool = pool(Some(4.0), 0.0);
    let a = pool.reserve(&ask(1.5, 0.0)).unwrap();
    assert_eq!(a.assignment().cpu_ids, [0, 1]);
    let b = pool.reserve(&ask(2.0, 0.0)).unwrap();
    assert_eq!(b.assignment().cpu_ids, [2, 3]);
    let c = pool.reserve(&ask(0.5, 0.0)).unwrap();
    assert_eq!(c.assignment().cpu_ids, [1], "the other half of CPU 1");
    assert!(pool.reserve(&ask(0.0001, 0.0)).is_none());
}

#[test]
fn a_capacity_with_a_fraction_ends_with_a_partial_device() {
    let pool = pool(Some(2.5), 0.0);
    let a = pool.reserve(&ask(0.5, 0.0)).unwrap();
    assert_eq!(
        a.assignment().cpu_ids,
        [2],
        "the half CPU, leaving whole ones whole"
    );
    let b = pool.reserve(&ask(2.0, 0.0)).unwrap();
    assert_eq!(b.assignment().cpu_ids, [0, 1]);
    assert!(pool.reserve(&ask(0.1, 0.0)).is_none());
    assert!(pool.check_feasible(&ask(3.0, 0.0)).is_err());
    assert!(pool.check_feasible(&ask(2.5, 0.0)).is_ok());
}

#[test]
fn custom_resources_are_amounts() {
    let custom = BTreeMap::from([("a100".to_owned(), 2.0)]);
    let pool = ResourcePool::new(None, 0.0, &custom, Vec::new());
    let mut req = ask(1.0, 0.0);
    req.custom.insert("a100".into(), 1.5);
    let a = pool.reserve(&req).unwrap();
    assert!(pool.reserve(&req).is_none());
    assert_eq!(pool.shortfall(&req), "a100: needs 1.5, free 0.5");
    assert_eq!(pool.available().custom["a100"], 0.5);
    drop(a);
    assert!(pool.reserve(&req).is_some());
    req.custom.insert("tpu".into(), 1.0);
    let err = pool.check_feasible(&req).unwrap_err();
    assert!(err.contains("tpu: needs 1, the instance has none"), "{err}");
    req.custom.insert("tpu".into(), 0.0);
    assert!(
        pool.check_feasible(&req).is_ok(),
        "asking for 0 asks nothing"
    );
}

#[test]
fn infeasible_requests_say_what_is_short() {
    let pool = pool(Some(2.0), 0.0);
    let err = pool.check_feasible(&ask(1.0, 1.0)).unwrap_err();
    assert_eq!(err, "GPU: needs 1, the instance has 0");
    let nodes = crate::control::nodes::NodeSet::new(pool.clone(), Default::default());
    let err = check_feasible(&nodes, "Model", &ask(4.0, 0.0)).unwrap_err();
    assert!(err.to_string().contains("CPU: 4"), "{err}");
    assert!(err.to_string().contains("`Model`"), "{err}");
}

#[test]
fn many_threads_never_over_pack() {
    let pool = pool(Some(3.0), 2.0);
    let held = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..200 {
                    if let Some(r) = pool.reserve(&ask(0.5, 0.25)) {
                        let mut held = held.lock().unwrap();
                        held.push(r);
                        if held.len() > 4 {
                            held.remove(0);
                        }
                    }
                }
            });
        }
    });
    let held = held.into_inner().unwrap();
    let gpus: f64 = held.iter().map(|r| r.assignment().resources.num_gpus).sum();
    assert!(gpus <= 2.0);
    let left = pool.available();
    assert!(left.num_cpus.unwrap() >= 0.0 && left.num_gpus >= 0.0);
    drop(held);
    assert_eq!(pool.available(), pool.total());
}

#[test]
fn gpus_are_detected_from_cuda_visible_devices_first() {
    let none = Path::new("/nonexistent/nvidia/gpus");
    assert_eq!(gpu_labels(Some("2,3"), none), ["2", "3"]);
    assert_eq!(gpu_labels(Some(" 1 , GPU-abc "), none), ["1", "GPU-abc"]);
    assert!(gpu_labels(Some(""), none).is_empty());
    assert!(gpu_labels(Some("NoDevFiles"), none).is_empty());
    assert_eq!(gpu_labels(Some("0,-1,1"), none), ["0"]);
    assert!(gpu_labels(None, none).is_empty());
    let dir = std::env::temp_dir().join(format!("serve-gpus-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("0000:01:00.0")).unwrap();
    std::fs::create_dir_all(dir.join("0000:02:00.0")).unwrap();
    assert_eq!(gpu_labels(None, &dir), ["0", "1"]);
    assert_eq!(gpu_labels(Some("1"), &dir), ["1"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gpu_labels_name_the_visible_devices() {
    let pool = ResourcePool::new(None, 2.0, &BTreeMap::new(), vec!["5".into(), "7".into()]);
    let a = pool.reserve(&ask(0.0, 1.0)).unwrap();
    let b = pool.reserve(&ask(0.0, 1.0)).unwrap();
    assert_eq!(a.assignment().cuda_visible_devices, "5");
    assert_eq!(b.assignment().cuda_visible_devices, "7");
}
