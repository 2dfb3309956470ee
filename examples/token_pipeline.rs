//! A three-stage streaming text pipeline: tokenizer -> model -> detokenizer, each its own
//! deployment. Each stage after the first takes the previous stage's stream as an argument
//! (`ArgStream<T>`), so
//!
//! ```text
//! detok.detokenize.remote(model.predict.remote(tok.tokenize.remote(text)))
//! ```
//!
//! runs the three stages at once: each token flows on as soon as it is produced, and a stage
//! reads its input only as fast as the next one takes its output (back pressure, end to end).
//! Dropping the final stream stops every stage.
//!
//! The "model" is a bigram language model trained on a small corpus when its replica starts: for
//! each token it reads, it predicts the word most likely to follow it.
//!
//! ```sh
//! cargo run --example token_pipeline
//! ```

use std::collections::HashMap;
use std::time::Instant;

use serve_core::prelude::*;

/// What the model learns from.
const CORPUS: &str = "the cat sat on the mat . the dog sat on the rug . the cat saw the dog . \
                      a dog ran to the park . the park was green . the cat ran to the mat .";

/// The token of a word the vocabulary does not have.
const UNKNOWN: u32 = 0;

/// The vocabulary: `<unk>`, then every word of the corpus once, in order of first use.
fn vocabulary() -> Vec<String> {
    let mut words = vec!["<unk>".to_owned()];
    for word in CORPUS.split_whitespace() {
        if !words.iter().any(|w| w == word) {
            words.push(word.to_owned());
        }
    }
    words
}

/// Text to token ids, one word at a time.
#[deployment]
pub struct Tokenizer {
    ids: HashMap<String, u32>,
}

#[deployment]
impl Tokenizer {
    pub fn new(vocabulary: Vec<String>) -> Self {
        let ids = (0..).zip(vocabulary).map(|(id, w)| (w, id)).collect();
        Self { ids }
    }

    /// The text's tokens, as a stream.
    pub fn tokenize(&self, text: String) -> impl Stream<Item = u32> + Send + '_ {
        stream! {
            for word in text.split_whitespace() {
                yield *self.ids.get(&word.to_lowercase()).unwrap_or(&UNKNOWN);
            }
        }
    }
}

/// A bigram model: for each token, the token that most often follows it in the corpus.
#[deployment]
pub struct Model {
    next: Vec<u32>,
}

#[deployment]
impl Model {
    /// Trains on `corpus`: counts which word follows which, and keeps the most frequent
    /// follower of each (the lowest id on a tie; `<unk>` for a word never followed).
    pub fn new(vocabulary: Vec<String>, corpus: String) -> Self {
        let id = |w: &str| vocabulary.iter().position(|v| v == w).unwrap_or(0);
        let mut counts = vec![vec![0u32; vocabulary.len()]; vocabulary.len()];
        let words: Vec<usize> = corpus.split_whitespace().map(id).collect();
        for pair in words.windows(2) {
            counts[pair[0]][pair[1]] += 1;
        }
        let next = counts
            .iter()
            .map(|row| {
                let best = (0..row.len()).max_by_key(|&j| (row[j], std::cmp::Reverse(j)));
                match best {
                    Some(j) if row[j] > 0 => j as u32,
                    _ => UNKNOWN,
                }
            })
            .collect();
        Self { next }
    }

    /// For each token of the input, as it arrives, the predicted next token. An upstream error
    /// is passed on (`?`) and ends the stream.
    pub fn predict(
        &self,
        mut tokens: ArgStream<u32>,
    ) -> impl Stream<Item = Result<u32, ServeError>> + Send + '_ {
        try_stream! {
            while let Some(token) = tokens.next().await {
                let token = token?;
                yield *self.next.get(token as usize).unwrap_or(&UNKNOWN);
            }
        }
    }
}

/// Token ids back to words.
#[deployment]
pub struct Detokenizer {
    words: Vec<String>,
}

#[deployment]
impl Detokenizer {
    pub fn new(vocabulary: Vec<String>) -> Self {
        Self { words: vocabulary }
    }

    /// Each token's word, as it arrives.
    pub fn detokenize(
        &self,
        mut tokens: ArgStream<u32>,
    ) -> impl Stream<Item = Result<String, ServeError>> + Send + '_ {
        try_stream! {
            while let Some(token) = tokens.next().await {
                let word = self.words.get(token? as usize).map_or("<unk>", String::as_str);
                yield word.to_owned();
            }
        }
    }
}

/// The ingress: one call streams the whole pipeline's output.
#[deployment]
pub struct TextPipeline {
    tokenizer: DeploymentHandle<Tokenizer>,
    model: DeploymentHandle<Model>,
    detokenizer: DeploymentHandle<Detokenizer>,
}

#[deployment]
impl TextPipeline {
    pub fn new(
        tokenizer: DeploymentHandle<Tokenizer>,
        model: DeploymentHandle<Model>,
        detokenizer: DeploymentHandle<Detokenizer>,
    ) -> Self {
        Self {
            tokenizer,
            model,
            detokenizer,
        }
    }

    /// Streams into streams: each stage's generator is the next stage's argument.
    pub fn call(
        &self,
        text: String,
    ) -> impl Stream<Item = Result<String, ServeError>> + Send + use<> {
        let tokens = self.tokenizer.tokenize.remote(text);
        let predicted = self.model.predict.remote(tokens);
        self.detokenizer.detokenize.remote(predicted)
    }
}

#[tokio::main]
async fn main() -> Result<(), ServeError> {
    let vocabulary = vocabulary();
    let app = TextPipeline::bind(
        Tokenizer::bind(vocabulary.clone()),
        Model::bind(vocabulary.clone(), CORPUS.to_owned()),
        Detokenizer::bind(vocabulary),
    );
    let pipeline = serve_core::run(app)?;

    // Each word is printed as it comes out of the detokenizer.
    let text = "The cat sat on the mat";
    println!("input:     {text}");
    print!("predicted:");
    let mut words = pipeline.remote(text);
    let mut predicted = Vec::new();
    while let Some(word) = words.next().await {
        let word = word?;
        print!(" {word}");
        predicted.push(word);
    }
    println!();
    assert_eq!(predicted, ["cat", "sat", "on", "the", "cat", "."]);

    // A long text: 100,000 tokens through the three stages.
    let long = "the dog ran to the park . ".repeat(100_000 / 7 + 1);
    let started = Instant::now();
    let mut words = pipeline.remote(long);
    let mut n = 0;
    while let Some(word) = words.next().await {
        word?;
        n += 1;
    }
    println!(
        "{n} tokens through three stages in {:.0?} ({:.0} tokens/s)",
        started.elapsed(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
