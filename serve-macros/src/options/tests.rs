//! Tests of `#[deployment(..)]`'s options: parsing, and the errors of each rule.

use super::*;
use quote::quote;

fn messages(args: TokenStream) -> Vec<String> {
    match parse(args) {
        Ok(_) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

fn setters(list: Vec<(&'static str, Literal)>) -> Vec<(&'static str, String)> {
    list.into_iter().map(|(k, l)| (k, l.to_string())).collect()
}

const ALL_KEYS: &str = "expected one of: `name`, `num_replicas`, `max_ongoing_requests`, \
    `max_queued_requests`, `autoscaling`, `health_check_period_s`, `health_check_timeout_s`, \
    `graceful_shutdown_timeout_s`, `num_cpus`, `num_gpus`, `resources`";

const AUTOSCALING_KEYS: &str = "expected one of: `min_replicas`, `max_replicas`, \
    `initial_replicas`, `target_ongoing_requests`, `upscale_delay_s`, `downscale_delay_s`, \
    `downscale_to_zero_delay_s`, `look_back_period_s`, `metrics_interval_s`, `upscaling_factor`, `downscaling_factor`";

#[test]
fn all_options_are_read() {
    let o = parse(quote!(
        name = "Add",
        num_replicas = 2,
        max_ongoing_requests = 10,
    ))
    .unwrap();
    assert_eq!(o.name.unwrap().value(), "Add");
    assert_eq!(o.num_replicas.unwrap().value, 2);
    assert_eq!(o.max_ongoing_requests.unwrap().value, 10);
}

#[test]
fn the_scaling_and_resource_options_are_read() {
    let o = parse(quote!(
        max_queued_requests = 100,
        health_check_period_s = 5,
        health_check_timeout_s = 2.5,
        graceful_shutdown_timeout_s = 1e1,
        num_cpus = 0.5,
        num_gpus = 0,
        resources(a100 = 1, "accelerator_type:A100" = 0.25, r#type = 2),
        autoscaling(
            min_replicas = 0,
            max_replicas = 8,
            target_ongoing_requests = 3
        ),
    ))
    .unwrap();
    assert_eq!(
        setters(o.setters()),
        [
            ("max_queued_requests", "100".to_owned()),
            ("health_check_period_s", "5.0".to_owned()),
            ("health_check_timeout_s", "2.5".to_owned()),
            ("graceful_shutdown_timeout_s", "10.0".to_owned()),
            ("num_cpus", "0.5".to_owned()),
            ("num_gpus", "0.0".to_owned()),
        ]
    );
    let resources: Vec<_> = o
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.amount.value))
        .collect();
    assert_eq!(
        resources,
        [
            ("a100", 1.0),
            ("accelerator_type:A100", 0.25),
            ("type", 2.0)
        ]
    );
    assert_eq!(
        setters(o.autoscaling.unwrap().setters()),
        [
            ("min_replicas", "0".to_owned()),
            ("max_replicas", "8".to_owned()),
            ("target_ongoing_requests", "3.0".to_owned()),
        ]
    );
}

#[test]
fn every_autoscaling_key_is_read_in_the_configs_order() {
    let o = parse(quote!(autoscaling(
        downscaling_factor = 0.5,
        upscaling_factor = 2,
        metrics_interval_s = 1,
        look_back_period_s = 4,
        downscale_to_zero_delay_s = 60,
        downscale_delay_s = 0,
        upscale_delay_s = 0.5,
        target_ongoing_requests = 1.5,
        initial_replicas = 3,
        max_replicas = 4,
        min_replicas = 2,
    )))
    .unwrap();
    let keys: Vec<_> = setters(o.autoscaling.unwrap().setters())
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        keys,
        [
            "min_replicas=2",
            "max_replicas=4",
            "initial_replicas=3",
            "target_ongoing_requests=1.5",
            "upscale_delay_s=0.5",
            "downscale_delay_s=0.0",
            "downscale_to_zero_delay_s=60.0",
            "look_back_period_s=4.0",
            "metrics_interval_s=1.0",
            "upscaling_factor=2.0",
            "downscaling_factor=0.5",
        ]
    );
}

#[test]
fn empty_autoscaling_turns_it_on_with_the_defaults() {
    let o = parse(quote!(autoscaling())).unwrap();
    assert!(o.autoscaling.unwrap().setters().is_empty());
}

#[test]
fn no_options_means_all_defaults() {
    let o = parse(TokenStream::new()).unwrap();
    assert!(o.name.is_none() && o.num_replicas.is_none() && o.max_ongoing_requests.is_none());
    assert!(o.setters().is_empty() && o.autoscaling.is_none() && o.resources.is_empty());
}

#[test]
fn an_unknown_key_lists_every_valid_key() {
    assert_eq!(messages(quote!(replicas = 2)), [ALL_KEYS]);
    assert_eq!(messages(quote!(user_config = "{}")), [ALL_KEYS]);
}

#[test]
fn an_unknown_autoscaling_key_lists_every_autoscaling_key() {
    assert_eq!(
        messages(quote!(autoscaling(
            min_replicas = 1,
            target_num_replicas = 2
        ))),
        [AUTOSCALING_KEYS]
    );
    assert_eq!(
        messages(quote!(autoscaling(num_replicas = 2))),
        [AUTOSCALING_KEYS]
    );
}

#[test]
fn a_repeated_key_is_reported_once_per_repeat() {
    assert_eq!(
        messages(quote!(
            num_replicas = 1,
            num_replicas = 2,
            name = "a",
            name = "b"
        )),
        [
            "`num_replicas` may only be specified once",
            "`name` may only be specified once"
        ]
    );
    assert_eq!(
        messages(quote!(
            autoscaling(max_replicas = 2, max_replicas = 3),
            resources(a = 1, a = 2),
            resources(),
            autoscaling(),
            num_cpus = 1,
            num_cpus = 1,
        )),
        [
            "`max_replicas` may only be specified once",
            "`a` may only be specified once",
            "`resources` may only be specified once",
            "`autoscaling` may only be specified once",
            "`num_cpus` may only be specified once",
        ]
    );
}

#[test]
fn a_repeat_of_an_invalid_key_is_still_a_repeat() {
    assert_eq!(
        messages(quote!(num_replicas = 0, num_replicas = 2)),
        [
            "`num_replicas` must be at least 1, not 0",
            "`num_replicas` may only be specified once"
        ]
    );
}

#[test]
fn values_are_validated_and_all_errors_collected() {
    assert_eq!(
        messages(quote!(
            name = "",
            num_replicas = 0,
            max_ongoing_requests = 0,
            max_queued_requests = 0,
        )),
        [
            "`name` must not be empty",
            "`num_replicas` must be at least 1, not 0",
            "`max_ongoing_requests` must be at least 1, not 0",
            "`max_queued_requests` must be at least 1, not 0",
        ]
    );
    assert_eq!(
        messages(quote!(
            health_check_period_s = 0,
            health_check_timeout_s = -1,
            graceful_shutdown_timeout_s = 0.0,
            num_cpus = -0.5,
            num_gpus = -1,
            resources(a100 = -1, CPU = 1, GPU = 1, "" = 1, ok = 0),
        )),
        [
            "`health_check_period_s` must be a number greater than 0, not 0",
            "`health_check_timeout_s` must be a number greater than 0, not -1",
            "`graceful_shutdown_timeout_s` must be a number greater than 0, not 0",
            "`num_cpus` must be a number of at least 0, not -0.5",
            "`num_gpus` must be a number of at least 0, not -1",
            "`resources(a100)` must be a number of at least 0, not -1",
            "`resources`: `CPU` is not a custom resource: use `num_cpus`",
            "`resources`: `GPU` is not a custom resource: use `num_gpus`",
            "`resources`: a custom resource's name must not be empty",
        ]
    );
    assert_eq!(
        messages(quote!(num_cpus = 1e999)),
        ["`num_cpus` must be a number of at least 0, not inf"]
    );
}

#[test]
fn zero_amounts_are_allowed_and_not_negative() {
    let o = parse(quote!(num_gpus = -0, num_cpus = 0)).unwrap();
    assert_eq!(
        setters(o.setters()),
        [
            ("num_cpus", "0.0".to_owned()),
            ("num_gpus", "0.0".to_owned())
        ]
    );
}

#[test]
fn autoscaling_values_are_validated_one_by_one() {
    assert_eq!(
        messages(quote!(autoscaling(
            max_replicas = 0,
            target_ongoing_requests = 0,
            upscale_delay_s = -1,
            downscale_delay_s = -0.5,
            downscale_to_zero_delay_s = -2,
            look_back_period_s = 0,
            metrics_interval_s = 0,
            upscaling_factor = 0,
            downscaling_factor = -1,
        ))),
        [
            "`max_replicas` must be at least 1, not 0",
            "`target_ongoing_requests` must be a number greater than 0, not 0",
            "`upscale_delay_s` must be a number of at least 0, not -1",
            "`downscale_delay_s` must be a number of at least 0, not -0.5",
            "`downscale_to_zero_delay_s` must be a number of at least 0, not -2",
            "`look_back_period_s` must be a number greater than 0, not 0",
            "`metrics_interval_s` must be a number greater than 0, not 0",
            "`upscaling_factor` must be a number greater than 0, not 0",
            "`downscaling_factor` must be a number greater than 0, not -1",
        ]
    );
}

#[test]
fn autoscaling_replica_counts_are_validated_together() {
    assert_eq!(
        messages(quote!(autoscaling(min_replicas = 4, max_replicas = 2))),
        ["`max_replicas` (2) must be at least `min_replicas` (4)"]
    );
    assert_eq!(
        messages(quote!(autoscaling(min_replicas = 2))),
        ["`min_replicas` (2) is more than `max_replicas` (1 by default); set `max_replicas` too"]
    );
    assert_eq!(
        messages(quote!(autoscaling(
            min_replicas = 1,
            max_replicas = 4,
            initial_replicas = 5
        ))),
        ["`initial_replicas` (5) must be between `min_replicas` (1) and `max_replicas` (4)"]
    );
    assert_eq!(
        messages(quote!(autoscaling(max_replicas = 4, initial_replicas = 0))),
        ["`initial_replicas` (0) must be between `min_replicas` (1) and `max_replicas` (4)"]
    );
    // Scale to zero: min 0, start at 0.
    assert!(parse(quote!(autoscaling(min_replicas = 0, initial_replicas = 0))).is_ok());
    // An invalid count is not compared with the others as its default.
    assert_eq!(
        messages(quote!(autoscaling(min_replicas = 3, max_replicas = 0))),
        ["`max_replicas` must be at least 1, not 0"]
    );
}

#[test]
fn num_replicas_and_autoscaling_exclude_each_other() {
    let expected = "`num_replicas` cannot be set for a deployment that autoscales \
        (`autoscaling(..)`): its number of replicas follows the load; set the starting count with \
        `autoscaling(initial_replicas = N)`";
    assert_eq!(
        messages(quote!(num_replicas = 2, autoscaling(max_replicas = 4))),
        [expected]
    );
    assert_eq!(
        messages(quote!(autoscaling(), num_replicas = 2)),
        [expected]
    );
}

#[test]
fn a_missing_value_shows_the_expected_form() {
    for args in [
        quote!(num_replicas),
        quote!(num_replicas =),
        quote!(num_replicas, name = "a"),
        quote!(num_replicas = , name = "a"),
    ] {
        assert_eq!(
            messages(args.clone()),
            ["`num_replicas` needs a value: `num_replicas = 2`"],
            "for `{args}`"
        );
    }
    assert_eq!(
        messages(quote!(name)),
        ["`name` needs a value: `name = \"Add\"`"]
    );
    assert_eq!(messages(quote!(num_replicas: 2)), ["expected `=`"]);
    assert_eq!(
        messages(quote!(health_check_period_s)),
        ["`health_check_period_s` needs a value: `health_check_period_s = 10`"]
    );
    assert_eq!(
        messages(quote!(autoscaling(max_replicas =))),
        ["`max_replicas` needs a value: `max_replicas = 8`"]
    );
    assert_eq!(
        messages(quote!(resources(a100))),
        ["`a100` needs a value: `a100 = 1`"]
    );
}

#[test]
fn nested_options_need_their_parentheses() {
    for args in [
        quote!(autoscaling),
        quote!(autoscaling = true),
        quote!(autoscaling, num_cpus = 1),
    ] {
        assert_eq!(
            messages(args.clone()),
            [
                "`autoscaling` takes its settings in parentheses: `autoscaling(min_replicas = 1, max_replicas = 8)`"
            ],
            "for `{args}`"
        );
    }
    assert_eq!(
        messages(quote!(resources = 1)),
        ["`resources` takes its settings in parentheses: `resources(accelerator = 1)`"]
    );
    assert_eq!(
        messages(quote!(resources(1 = 2))),
        ["expected identifier or string literal"]
    );
}

#[test]
fn a_value_of_the_wrong_kind_is_a_syntax_error() {
    assert_eq!(
        messages(quote!(num_replicas = "2")),
        ["expected integer literal"]
    );
    assert_eq!(
        messages(quote!(autoscaling(min_replicas = 1.5))),
        ["expected integer literal"]
    );
    assert_eq!(
        messages(quote!(num_cpus = "1")),
        ["expected integer literal or floating point literal"]
    );
    assert_eq!(
        messages(quote!(autoscaling(upscale_delay_s = true))),
        ["expected integer literal or floating point literal"]
    );
}
