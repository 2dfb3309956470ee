//! The macros' expansions name everything by absolute path (`::serve_core::__private::..`,
//! `::core::..`, `::std::..`): they compile with no prelude and with nothing else imported.
#![no_implicit_prelude]

mod app {
    #[::serve_core::deployment(num_replicas = 2, max_ongoing_requests = 3)]
    pub struct Greeter {
        greeting: ::std::string::String,
    }

    #[::serve_core::deployment]
    impl Greeter {
        pub fn new(greeting: ::std::string::String) -> Self {
            Self { greeting }
        }
        pub fn call(&self, name: ::std::string::String) -> ::std::string::String {
            ::std::format!("{} {}", self.greeting, name)
        }
        pub async fn fallible(&self, n: u8) -> ::core::result::Result<u8, ::std::io::Error> {
            ::core::result::Result::Ok(n)
        }
        pub fn count(
            &self,
            n: u8,
        ) -> impl ::serve_core::futures::Stream<Item = u8> + ::core::marker::Send + use<> {
            ::serve_core::futures::stream::iter(0..n)
        }
        /// A stream argument.
        pub async fn total(&self, items: ::serve_core::ArgStream<u8>) -> usize {
            ::serve_core::futures::StreamExt::count(items).await
        }
        #[::serve_core::batch(max_batch_size = 2, batch_wait_timeout_s = 0)]
        pub fn lengths(
            &self,
            words: ::std::vec::Vec<::std::string::String>,
        ) -> ::std::vec::Vec<usize> {
            ::std::iter::Iterator::collect(::std::iter::Iterator::map(
                ::std::iter::IntoIterator::into_iter(words),
                |w| w.len(),
            ))
        }
        // Bare: `#[deployment]` consumes it, no import needed.
        #[batch]
        pub async fn doubled(
            &self,
            xs: ::std::vec::Vec<u8>,
        ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::io::Error> {
            ::core::result::Result::Ok(::std::iter::Iterator::collect(::std::iter::Iterator::map(
                ::std::iter::IntoIterator::into_iter(xs),
                |x| 2 * x,
            )))
        }
        /// A sync multiplexed loader, the attribute written bare (`#[deployment]` consumes it).
        #[multiplexed]
        fn voice(&self, id: ::std::string::String) -> ::std::string::String {
            ::std::format!("{}:{id}", self.greeting)
        }
        pub fn voiced(
            &self,
        ) -> ::core::result::Result<::std::string::String, ::serve_core::ServeError> {
            let id =
                ::core::option::Option::unwrap_or_default(::serve_core::get_multiplexed_model_id());
            ::core::result::Result::Ok(::std::string::ToString::to_string(&*self.voice(id)?))
        }
    }

    #[::serve_core::deployment]
    pub struct Front {
        greeter: ::serve_core::DeploymentHandle<Greeter>,
    }

    #[::serve_core::deployment]
    impl Front {
        pub fn new(greeter: ::serve_core::DeploymentHandle<Greeter>) -> Self {
            Self { greeter }
        }
        pub async fn call(
            &self,
            name: ::std::string::String,
        ) -> ::core::result::Result<::std::string::String, ::serve_core::ServeError> {
            self.greeter.remote(name).await
        }
    }

    #[::serve_core::deployment]
    pub struct Api {
        greeter: ::serve_core::DeploymentHandle<Greeter>,
    }

    /// Route attributes are consumed by `#[ingress]`: written bare or by path, they need no import.
    #[::serve_core::ingress]
    impl Api {
        pub fn new(greeter: ::serve_core::DeploymentHandle<Greeter>) -> Self {
            Self { greeter }
        }
        #[get("/greet/{name}")]
        pub async fn greet(
            &self,
            name: ::std::string::String,
            times: ::core::option::Option<u8>,
        ) -> ::core::result::Result<::std::string::String, ::serve_core::ServeError> {
            let greeting = self.greeter.remote(name).await?;
            ::core::result::Result::Ok(greeting.repeat(::core::convert::From::from(
                ::core::option::Option::unwrap_or(times, 1),
            )))
        }
        #[::serve_core::post("/echo")]
        pub fn echo(
            &self,
            body: ::serve_core::http::Json<::std::vec::Vec<u8>>,
            request: ::serve_core::http::Request,
        ) -> ::serve_core::http::Json<(usize, ::std::string::String)> {
            ::serve_core::http::Json((
                body.0.len(),
                ::std::borrow::ToOwned::to_owned(request.path()),
            ))
        }
        #[serve_core::delete("/fail")]
        pub fn fail(&self) -> ::core::result::Result<(), ::std::io::Error> {
            ::core::result::Result::Err(::std::io::Error::other("no"))
        }
        pub fn ping(&self) -> u8 {
            1
        }
        /// An async multiplexed loader under `#[ingress]`, the attribute written by path.
        #[::serve_core::multiplexed(max_num_models_per_replica = 2)]
        async fn model(
            &self,
            model_id: ::std::string::String,
        ) -> ::core::result::Result<usize, ::std::io::Error> {
            ::core::result::Result::Ok(model_id.len())
        }
        pub async fn model_size(
            &self,
            id: ::std::string::String,
        ) -> ::core::result::Result<usize, ::serve_core::ServeError> {
            ::core::result::Result::Ok(*self.model(id).await?)
        }
    }

    /// Every struct option: the generated config names the autoscaling config by absolute path too.
    #[::serve_core::deployment(
        name = "TunedGreeter",
        max_ongoing_requests = 3,
        max_queued_requests = 7,
        autoscaling(
            min_replicas = 0,
            max_replicas = 4,
            initial_replicas = 1,
            target_ongoing_requests = 2,
            upscale_delay_s = 1,
            downscale_delay_s = 2.5,
            downscale_to_zero_delay_s = 60,
            look_back_period_s = 3,
            metrics_interval_s = 0.5,
            upscaling_factor = 1.5,
            downscaling_factor = 0.5,
        ),
        health_check_period_s = 1,
        health_check_timeout_s = 2,
        graceful_shutdown_timeout_s = 3,
        num_cpus = 0.5,
        num_gpus = 0,
        resources(a100 = 1, "accelerator_type:A100" = 0.25),
    )]
    pub struct Tuned;

    #[::serve_core::deployment]
    impl Tuned {
        pub fn new() -> Self {
            Self
        }
    }

    #[::serve_core::remote]
    pub fn shout(text: ::std::string::String) -> ::std::string::String {
        text.to_uppercase()
    }
}

#[test]
fn expansion_needs_no_prelude() {
    let serve = ::serve_core::Serve::start().unwrap();
    let front = serve
        .run(app::Front::bind(app::Greeter::bind(
            ::std::borrow::ToOwned::to_owned("Hola"),
        )))
        .unwrap();
    let greeting = front.remote("Dora").result().unwrap();
    let greeter = serve
        .run(app::Greeter::bind(::std::borrow::ToOwned::to_owned("Hi")))
        .unwrap();
    ::std::assert_eq!(greeter.fallible.remote(7).result().unwrap(), 7);
    ::std::assert_eq!(greeter.lengths.remote("four").result().unwrap(), 4);
    ::std::assert_eq!(greeter.doubled.remote(21).result().unwrap(), 42);
    ::std::assert_eq!(
        ::std::iter::Iterator::count(::std::iter::IntoIterator::into_iter(
            greeter.count.remote(3)
        )),
        3
    );
    ::std::assert_eq!(
        greeter
            .total
            .remote(greeter.count.remote(4))
            .result()
            .unwrap(),
        4
    );
    ::std::assert_eq!(app::shout.remote(greeting).result().unwrap(), "HOLA DORA");

    let api = serve
        .run(app::Api::bind(app::Greeter::bind(
            ::std::borrow::ToOwned::to_owned("Hi"),
        )))
        .unwrap();
    let request = |method: &str, uri: &str| ::serve_core::http::Request::new(method, uri);
    let response = api
        .remote(request("GET", "/greet/Bo?times=2"))
        .result()
        .unwrap();
    ::std::assert_eq!(response.body(), b"Hi BoHi Bo");
    let echo = request("POST", "/echo").with_body("[1, 2, 3]");
    let response = api.call.remote(echo).result().unwrap();
    ::std::assert_eq!(response.body(), b"[3,\"/echo\"]");
    let response = api.remote(request("DELETE", "/fail")).result().unwrap();
    ::std::assert_eq!(response.status().as_u16(), 500);
    ::std::assert_eq!(api.ping.remote().result().unwrap(), 1);
    ::std::assert_eq!(api.model_size.remote("abc").result().unwrap(), 3);
    let voiced = greeter.options().multiplexed_model_id("v").voiced.remote();
    ::std::assert_eq!(voiced.result().unwrap(), "Hi:v");
}

#[test]
fn every_struct_option_sets_its_config_value() {
    let autoscaling = <::serve_core::AutoscalingConfig as ::core::default::Default>::default()
        .min_replicas(0)
        .max_replicas(4)
        .initial_replicas(1)
        .target_ongoing_requests(2.0)
        .upscale_delay_s(1.0)
        .downscale_delay_s(2.5)
        .downscale_to_zero_delay_s(60.0)
        .look_back_period_s(3.0)
        .metrics_interval_s(0.5)
        .upscaling_factor(1.5)
        .downscaling_factor(0.5);
    let expected = ::serve_core::DeploymentConfig::new("TunedGreeter")
        .max_ongoing_requests(3)
        .max_queued_requests(7)
        .autoscaling(autoscaling)
        .health_check_period_s(1.0)
        .health_check_timeout_s(2.0)
        .graceful_shutdown_timeout_s(3.0)
        .num_cpus(0.5)
        .num_gpus(0.0)
        .resource("a100", 1.0)
        .resource("accelerator_type:A100", 0.25);
    ::std::assert_eq!(
        app::Tuned::bind().deployment_configs(),
        ::std::vec![expected]
    );
}

/// Handles nested in constructor arguments, and a `StreamingResponse`, with no prelude either.
mod nested {
    use super::app::Greeter;

    #[::serve_core::deployment]
    pub struct Choir {
        voices: ::std::vec::Vec<::serve_core::DeploymentHandle<Greeter>>,
        solo: ::core::option::Option<::serve_core::DeploymentHandle<Greeter>>,
        #[allow(dead_code)]
        sections: ::std::collections::HashMap<
            ::std::string::String,
            [::serve_core::DeploymentHandle<Greeter>; 1],
        >,
    }

    #[::serve_core::deployment]
    impl Choir {
        pub fn new(
            voices: ::std::vec::Vec<::serve_core::DeploymentHandle<Greeter>>,
            solo: ::core::option::Option<::serve_core::DeploymentHandle<Greeter>>,
            sections: ::std::collections::HashMap<
                ::std::string::String,
                [::serve_core::DeploymentHandle<Greeter>; 1],
            >,
        ) -> Self {
            Self {
                voices,
                solo,
                sections,
            }
        }
        pub fn size(&self) -> usize {
            self.voices.len()
                + <usize as ::core::convert::From<bool>>::from(::core::option::Option::is_some(
                    &self.solo,
                ))
        }
        pub fn call(
            &self,
            _req: ::serve_core::http::Request,
        ) -> ::serve_core::http::StreamingResponse<
            impl ::serve_core::futures::Stream<Item = ::std::string::String>
            + ::core::marker::Send
            + use<>,
        > {
            ::serve_core::http::StreamingResponse::new(::serve_core::futures::stream::iter(
                ::std::vec![::std::borrow::ToOwned::to_owned("la")],
            ))
            .status(::serve_core::http::StatusCode::CREATED)
        }
    }
}

#[test]
fn nested_handles_and_streaming_responses_need_no_prelude() {
    let serve = ::serve_core::Serve::start().unwrap();
    let voice = || app::Greeter::bind(::std::borrow::ToOwned::to_owned("Hi"));
    let choir = serve
        .run(nested::Choir::bind(
            ::std::vec![voice(), voice()],
            ::core::option::Option::Some(voice()),
            <::std::collections::HashMap<_, _> as ::core::convert::From<_>>::from([(
                ::std::borrow::ToOwned::to_owned("alto"),
                [voice()],
            )]),
        ))
        .unwrap();
    ::std::assert_eq!(choir.size.remote().result().unwrap(), 3);
    let parts: ::std::vec::Vec<_> =
        ::std::iter::Iterator::collect(::std::iter::IntoIterator::into_iter(
            choir.remote(::serve_core::http::Request::new("GET", "/")),
        ));
    ::std::assert_eq!(parts.len(), 2, "the head, then one item");
}
