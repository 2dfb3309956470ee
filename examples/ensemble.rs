//! An ensemble: three small spam models vote on each message, as in Ray Serve's ensemble pattern
//! (a deployment whose constructor takes a list or dict of handles).
//!
//! ```text
//!                      ┌─▶ LogisticModel    "links": links, digit runs, money signs
//! message ─▶ Ensemble ─┼─▶ LogisticModel_1  "shape": shouting, exclamation marks
//!                      └─▶ LogisticModel_2  "words": spammy words, length
//! ```
//!
//! Each member is the same deployment type, `LogisticModel`, bound three times with its own
//! weights: three deployments, named `LogisticModel`, `LogisticModel_1` and `LogisticModel_2`
//! (a map's members are deployed in key order, so the names are the same in every run and a
//! config file can address each one). The
//! ensemble's constructor takes them as a `HashMap<String, DeploymentHandle<LogisticModel>>`, and
//! `Ensemble::bind` takes the same map of `Application`s, as in Ray Serve:
//!
//! ```python
//! app = Ensemble.bind({"words": LogisticModel.bind(words), "links": LogisticModel.bind(links), ..})
//! ```
//!
//! For each message the ensemble sends it to every member at once, then averages their
//! probabilities (soft voting) and counts their votes (hard voting).
//!
//! Run it with `cargo run --example ensemble`.

use std::collections::HashMap;

use serve_core::prelude::*;

/// A logistic regression over a few hand-made features of a message.
#[deployment]
pub struct LogisticModel {
    features: Features,
    weights: Vec<f64>,
    bias: f64,
}

/// Which features a model reads.
#[derive(Clone, Copy)]
pub enum Features {
    /// Counts of words that spam uses.
    Words,
    /// Links, long digit runs, money signs.
    Links,
    /// Capital letters, exclamation marks, length.
    Shape,
}

const SPAM_WORDS: [&str; 8] = [
    "free", "winner", "prize", "urgent", "claim", "offer", "cash", "limited",
];

impl Features {
    fn of(self, text: &str) -> Vec<f64> {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        match self {
            Features::Words => {
                let spammy = words.iter().filter(|w| SPAM_WORDS.contains(w)).count();
                vec![spammy as f64, words.len() as f64 / 10.0]
            }
            Features::Links => {
                let links = lower.matches("http").count() + lower.matches("www.").count();
                let digit_runs = words
                    .iter()
                    .filter(|w| w.len() >= 4 && w.chars().all(|c| c.is_ascii_digit()))
                    .count();
                let money = text.matches(['$', '€', '£']).count();
                vec![links as f64, digit_runs as f64, money as f64]
            }
            Features::Shape => {
                let letters = text.chars().filter(|c| c.is_alphabetic()).count().max(1);
                let capitals = text.chars().filter(|c| c.is_uppercase()).count();
                let bangs = text.matches('!').count();
                vec![capitals as f64 / letters as f64, bangs as f64]
            }
        }
    }
}

#[deployment]
impl LogisticModel {
    pub fn new(features: Features, weights: Vec<f64>, bias: f64) -> Self {
        Self {
            features,
            weights,
            bias,
        }
    }

    /// The probability that `text` is spam.
    pub fn call(&self, text: String) -> f64 {
        let x = self.features.of(&text);
        let z: f64 = self.bias + x.iter().zip(&self.weights).map(|(x, w)| x * w).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}

/// What the ensemble decides for one message.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    /// Each member's probability, by name.
    pub members: Vec<(String, f64)>,
    /// Their average (soft voting).
    pub mean: f64,
    /// How many members say spam (hard voting).
    pub votes: usize,
    /// Soft voting's answer.
    pub spam: bool,
}

/// Asks every member, then averages and counts.
#[deployment]
pub struct Ensemble {
    members: HashMap<String, DeploymentHandle<LogisticModel>>,
}

#[deployment]
impl Ensemble {
    pub fn new(members: HashMap<String, DeploymentHandle<LogisticModel>>) -> Self {
        Self { members }
    }

    pub async fn call(&self, text: String) -> Result<Verdict, ServeError> {
        let mut names: Vec<&String> = self.members.keys().collect();
        names.sort();
        // Every member's call is sent before any is awaited: they run at once.
        let calls: Vec<_> = names
            .iter()
            .map(|name| self.members[*name].remote(text.clone()))
            .collect();
        let mut members = Vec::with_capacity(calls.len());
        for (name, call) in names.into_iter().zip(calls) {
            members.push((name.clone(), call.await?));
        }
        let mean = members.iter().map(|(_, p)| p).sum::<f64>() / members.len().max(1) as f64;
        let votes = members.iter().filter(|(_, p)| *p > 0.5).count();
        Ok(Verdict {
            members,
            mean,
            votes,
            spam: mean > 0.5,
        })
    }
}

const MESSAGES: [(&str, bool); 5] = [
    ("Lunch at noon tomorrow? I booked the usual place.", false),
    (
        "URGENT!!! You are a WINNER, claim your FREE prize now at http://win.example",
        true,
    ),
    (
        "Your invoice 20231 is attached, thanks for the quick payment.",
        false,
    ),
    ("Limited offer: $500 cash, call 5550199 now!!", true),
    ("The build is green again, merging the fix now!", false),
];

fn main() -> Result<(), ServeError> {
    let members = HashMap::from([
        (
            "words".to_owned(),
            LogisticModel::bind(Features::Words, vec![1.8, -0.4], -1.5),
        ),
        (
            "links".to_owned(),
            LogisticModel::bind(Features::Links, vec![1.6, 0.9, 1.2], -1.4),
        ),
        (
            "shape".to_owned(),
            LogisticModel::bind(Features::Shape, vec![4.0, 0.7], -2.2),
        ),
    ]);
    let serve = Serve::start()?;
    let ensemble = serve.run(Ensemble::bind(members))?;

    let deployments: Vec<String> = serve.status()[0]
        .deployments
        .iter()
        .map(|d| d.name.clone())
        .collect();
    println!("deployments: {}", deployments.join(", "));
    assert_eq!(
        deployments,
        [
            "LogisticModel",
            "LogisticModel_1",
            "LogisticModel_2",
            "Ensemble"
        ]
    );

    let mut right = 0;
    for (text, spam) in MESSAGES {
        let verdict = ensemble.remote(text).result()?;
        let members: Vec<String> = verdict
            .members
            .iter()
            .map(|(name, p)| format!("{name} {p:.2}"))
            .collect();
        println!(
            "{:<4} mean {:.2}, {} of 3 votes ({})  {text}",
            if verdict.spam { "SPAM" } else { "ok" },
            verdict.mean,
            verdict.votes,
            members.join(", "),
        );
        right += usize::from(verdict.spam == spam);
    }
    println!("{right} of {} right", MESSAGES.len());
    assert_eq!(
        right,
        MESSAGES.len(),
        "the ensemble gets every message right"
    );
    serve.shutdown();
    Ok(())
}
