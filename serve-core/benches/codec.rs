//! Which wire format calls between processes use: bytes and time per value for the serde formats
//! that fit (compact, binary, no schema files), with JSON as the reference.
//!
//! ```sh
//! cargo bench -p serve-core --bench codec
//! ```
//!
//! Each value is what crosses a process boundary in cluster mode: a method's argument tuple, a
//! return value, a stream item, and an error. Timing is a plain loop (encode then decode, best of
//! five rounds of 20,000), enough to rank formats whose costs differ by multiples.

use std::hint::black_box;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Greeting {
    language: String,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Prediction {
    label: String,
    score: f32,
    top_k: Vec<(u32, f32)>,
    model_version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireError {
    kind: String,
    deployment: Option<String>,
    method: Option<String>,
    message: Option<String>,
    causes: Vec<String>,
}

trait Format {
    const NAME: &'static str;
    fn encode<T: Serialize>(value: &T) -> Vec<u8>;
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T;
}

struct Postcard;
impl Format for Postcard {
    const NAME: &'static str = "postcard";
    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        postcard::to_stdvec(value).unwrap()
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
        postcard::from_bytes(bytes).unwrap()
    }
}

struct Bincode;
impl Format for Bincode {
    const NAME: &'static str = "bincode 2";
    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .unwrap()
            .0
    }
}

struct MessagePack;
impl Format for MessagePack {
    const NAME: &'static str = "MessagePack";
    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        rmp_serde::to_vec(value).unwrap()
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
        rmp_serde::from_slice(bytes).unwrap()
    }
}

struct Json;
impl Format for Json {
    const NAME: &'static str = "JSON";
    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
        serde_json::from_slice(bytes).unwrap()
    }
}

/// Bytes and nanoseconds (encode + decode) of `value` in format `F`.
fn measure<F: Format, T>(value: &T) -> (usize, f64)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = F::encode(value);
    assert_eq!(&F::decode::<T>(&bytes), value, "{} round trip", F::NAME);
    const ROUNDS: u32 = 20_000;
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                let bytes = F::encode(black_box(value));
                black_box(F::decode::<T>(black_box(&bytes)));
            }
            start.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
        })
        .fold(f64::INFINITY, f64::min);
    (bytes.len(), best)
}

fn row<T>(what: &str, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let results = [
        (Postcard::NAME, measure::<Postcard, T>(value)),
        (Bincode::NAME, measure::<Bincode, T>(value)),
        (MessagePack::NAME, measure::<MessagePack, T>(value)),
        (Json::NAME, measure::<Json, T>(value)),
    ];
    let cells: Vec<String> = results
        .iter()
        .map(|(_, (bytes, ns))| format!("{bytes:>6} B {ns:>8.0} ns"))
        .collect();
    println!("| {what:<28} | {} |", cells.join(" | "));
}

fn main() {
    println!(
        "| {:<28} | {:^17} | {:^17} | {:^17} | {:^17} |",
        "value",
        Postcard::NAME,
        Bincode::NAME,
        MessagePack::NAME,
        Json::NAME
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(30),
        "-".repeat(19),
        "-".repeat(19),
        "-".repeat(19),
        "-".repeat(19)
    );
    row("argument tuple `(5i32,)`", &(5i32,));
    row("argument tuple `(\"Dora\",)`", &("Dora".to_owned(),));
    let greeting = Greeting {
        language: "spanish".into(),
        name: "Dora".into(),
    };
    row("struct `{language, name}`", &(greeting,));
    let prediction = Prediction {
        label: "positive".into(),
        score: 0.93,
        top_k: (0..5).map(|i| (i, 1.0 / (i as f32 + 1.0))).collect(),
        model_version: 1_700_000_000_123,
    };
    row("prediction (label, top 5)", &prediction);
    let embedding: Vec<f32> = (0..384).map(|i| i as f32 * 0.001).collect();
    row("embedding, 384 × f32", &embedding);
    let tokens: Vec<u32> = (0..512).map(|i| i * 37 % 50_000).collect();
    row("token ids, 512 × u32", &tokens);
    let error = WireError {
        kind: "User".into(),
        deployment: Some("Adder".into()),
        method: Some("call".into()),
        message: None,
        causes: vec!["increment overflowed".into()],
    };
    row("an error", &error);
}
