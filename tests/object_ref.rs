//! Object refs and `#[remote]` tasks (issue point 7), and user errors kept reachable (point 9).

use serve_core::prelude::*;

#[remote]
fn say_hi_task(inp: String) -> String {
    format!("Ray task got message: '{inp}'")
}

#[deployment]
#[derive(Default)]
pub struct SayHi;

#[deployment]
impl SayHi {
    pub fn call(&self) -> String {
        "Hi from Serve deployment".to_string()
    }
}

#[deployment]
pub struct Ingress {
    say_hi: DeploymentHandle<SayHi>,
}

#[deployment]
impl Ingress {
    pub fn new(say_hi: DeploymentHandle<SayHi>) -> Self {
        Self { say_hi }
    }
    pub async fn call(&self) -> Result<String, ServeError> {
        let response = self.say_hi.remote();
        let response_obj_ref: ObjectRef<String> = response.to_object_ref().await?;
        let final_obj_ref: ObjectRef<String> = say_hi_task.remote(response_obj_ref);
        final_obj_ref.await
    }
}

#[test]
fn seed_object_ref_program() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Ingress::bind(SayHi::bind())).unwrap();
    assert_eq!(
        handle.remote().result().unwrap(),
        "Ray task got message: 'Hi from Serve deployment'"
    );
}

#[tokio::test]
async fn an_object_ref_is_awaitable_many_times_and_accepted_as_an_argument() {
    let serve = Serve::start().unwrap();
    let say_hi = serve.run_async(SayHi::bind()).await.unwrap();
    let obj = say_hi.remote().to_object_ref().await.unwrap();
    assert_eq!((&obj).await.unwrap(), "Hi from Serve deployment");
    assert_eq!((&obj).await.unwrap(), "Hi from Serve deployment");
    let copy = obj.clone();
    // Passed to a task twice (by reference and by value) and still awaitable.
    let a = say_hi_task.remote(&obj);
    let b = say_hi_task.remote(copy);
    assert_eq!(a.await.unwrap(), b.await.unwrap());
    assert_eq!(obj.await.unwrap(), "Hi from Serve deployment");
    // The function itself stays callable directly.
    assert_eq!(say_hi_task::call("x".into()), "Ray task got message: 'x'");
}

#[test]
fn blocking_object_ref_and_tasks_from_sync_code() {
    let serve = Serve::start().unwrap();
    let say_hi = serve.run(SayHi::bind()).unwrap();
    let obj = say_hi.remote().to_object_ref_blocking().unwrap();
    assert_eq!(
        say_hi_task.remote(obj).result().unwrap(),
        "Ray task got message: 'Hi from Serve deployment'"
    );
    assert_eq!(
        say_hi_task.remote("plain").result().unwrap(),
        "Ray task got message: 'plain'"
    );
}

#[derive(Debug)]
pub struct TooLong(usize);
impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input of {} bytes is too long", self.0)
    }
}
impl std::error::Error for TooLong {}

#[remote]
async fn shout(text: String) -> Result<String, TooLong> {
    tokio::task::yield_now().await;
    if text.len() > 8 {
        return Err(TooLong(text.len()));
    }
    Ok(text.to_uppercase())
}

#[test]
fn async_fallible_tasks_keep_their_error_reachable() {
    assert_eq!(shout.remote("hey").result().unwrap(), "HEY");
    let err = shout.remote("far too long").result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert_eq!(err.method(), Some("shout"));
    assert_eq!(err.downcast_ref::<TooLong>().map(|e| e.0), Some(12));
}

#[remote]
fn divide(a: i64, b: i64) -> i64 {
    a / b
}

#[test]
fn a_panicking_task_fails_its_ref() {
    assert_eq!(divide.remote(6, 3).result().unwrap(), 2);
    let err = divide.remote(1, 0).result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(err.to_string().contains("divide by zero"), "{err}");
}

// --- user errors through a composition -----------------------------------------------------------

#[deployment]
#[derive(Default)]
pub struct Validator;

#[deployment]
impl Validator {
    pub fn call(&self, text: String) -> Result<String, TooLong> {
        if text.len() > 4 {
            Err(TooLong(text.len()))
        } else {
            Ok(text)
        }
    }
}

#[deployment]
pub struct Front {
    validator: DeploymentHandle<Validator>,
}

#[deployment]
impl Front {
    pub fn new(validator: DeploymentHandle<Validator>) -> Self {
        Self { validator }
    }
    pub async fn call(&self, text: String) -> Result<String, ServeError> {
        let valid = self.validator.remote(text).await?;
        Ok(format!("ok: {valid}"))
    }
}

#[test]
fn a_user_error_is_downcastable_through_another_deployment() {
    let serve = Serve::start().unwrap();
    let front = serve.run(Front::bind(Validator::bind())).unwrap();
    assert_eq!(front.remote("abc").result().unwrap(), "ok: abc");
    let err = front.remote("abcdefg").result().unwrap_err();
    assert_eq!(err.deployment(), Some("Front"));
    assert_eq!(err.method(), Some("call"));
    let text = err.to_string();
    assert!(
        text.contains("Front.call failed") && text.contains("Validator.call failed"),
        "{text}"
    );
    assert_eq!(err.downcast_ref::<TooLong>().map(|e| e.0), Some(7));
    assert_eq!(
        err.root_cause().unwrap().to_string(),
        "input of 7 bytes is too long"
    );
}
