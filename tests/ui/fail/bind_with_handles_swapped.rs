use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Adder;

#[deployment]
impl Adder {
    pub fn call(&self, val: i32) -> i32 {
        val + 1
    }
}

#[deployment]
#[derive(Default)]
pub struct Multiplier;

#[deployment]
impl Multiplier {
    pub fn call(&self, val: i32) -> i32 {
        val * 2
    }
}

#[deployment]
pub struct Ingress {
    adder: DeploymentHandle<Adder>,
    multiplier: DeploymentHandle<Multiplier>,
}

#[deployment]
impl Ingress {
    pub fn new(adder: DeploymentHandle<Adder>, multiplier: DeploymentHandle<Multiplier>) -> Self {
        Self { adder, multiplier }
    }
    pub async fn call(&self, input: i32) -> Result<i32, ServeError> {
        self.multiplier.remote(self.adder.remote(input)).await
    }
}

fn main() {
    let _ = Ingress::bind(Multiplier::bind(), Adder::bind());
}
