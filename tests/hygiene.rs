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
    ::std::assert_eq!(
        ::std::iter::Iterator::count(::std::iter::IntoIterator::into_iter(
            greeter.count.remote(3)
        )),
        3
    );
    ::std::assert_eq!(app::shout.remote(greeting).result().unwrap(), "HOLA DORA");
}
