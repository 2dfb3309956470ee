use serve_core::prelude::*;

#[deployment]
#[derive(Default)]
pub struct Words;

#[deployment]
impl Words {
    pub fn words(&self, text: String) -> impl Stream<Item = String> + Send + use<> {
        let words: Vec<String> = text.split(' ').map(str::to_owned).collect();
        futures::stream::iter(words)
    }
    pub async fn sum(&self, numbers: ArgStream<u64>) -> u64 {
        numbers.map(|n| n.unwrap_or(0)).fold(0, |a, b| async move { a + b }).await
    }
}

fn main() {
    let handle = serve_core::run(Words::bind()).unwrap();
    let words = handle.words.remote("a b c");
    let _ = handle.sum.remote(words);
}
