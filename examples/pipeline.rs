//! A model pipeline: customer reviews in, a triage decision out.
//!
//! ```text
//!                           ┌─▶ SentimentModel  (3 replicas: the hot model) ─┐
//! text ─▶ Preprocessor ─────┤                                                ├─▶ ReviewTriage ─▶ Analysis
//!         (tokenise,        └─▶ TopicClassifier (1 replica) ─────────────────┘   (combine both)
//!          normalise)
//! ```
//!
//! `ReviewTriage` is the ingress. For each review it calls the preprocessor and passes the
//! *un-awaited* response to both models: both model calls are dispatched at once, each waits for
//! the preprocessor's result on its own, and the two models run in parallel. The ingress then
//! awaits both and combines them into one decision (thank the customer, escalate to support, ...).
//! In Ray Serve this is the same pattern as the guide's `chain.py`, fanned out to two deployments:
//!
//! ```python
//! features = self._preprocessor.remote(text)
//! sentiment = self._sentiment.remote(features)   # both start now
//! topic = self._topics.remote(features)
//! return combine(await sentiment, await topic)
//! ```
//!
//! The models are small but real: a lexicon-and-rules sentiment scorer in the style of VADER
//! (valence lexicon, negation, boosters, exclamation emphasis, the same normalisation), and a
//! linear topic classifier with a softmax over hand-set weights. Each `SentimentModel` replica
//! takes an id from a counter passed to `bind`, and returns it, so `main` can show that all
//! three replicas served.
//!
//! Run it with `cargo run --example pipeline`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use serve_core::prelude::*;

// --- messages between the deployments -----------------------------------------------------------

/// What the preprocessor extracts from a review: normalised tokens plus the emphasis marks that
/// tokenising throws away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Features {
    pub tokens: Vec<String>,
    pub exclamations: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Polarity {
    Positive,
    Neutral,
    Negative,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sentiment {
    pub polarity: Polarity,
    /// In `-1.0..=1.0`.
    pub compound: f32,
    /// Which replica of `SentimentModel` scored this review.
    pub replica: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    Shipping,
    Quality,
    Price,
    Support,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicPrediction {
    pub topic: Topic,
    /// The softmax probability of `topic`.
    pub confidence: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Happy customer: send a thank-you and ask for a public review.
    Thank,
    /// Unhappy about the product or our people: a human should call back.
    Escalate,
    /// Unhappy about something we cannot fix one-to-one (price, carrier): aggregate and watch.
    Monitor,
    /// Nothing to do.
    Archive,
}

/// The pipeline's answer for one review.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    pub sentiment: Sentiment,
    pub topic: TopicPrediction,
    pub action: Action,
}

// --- 1. preprocessing ----------------------------------------------------------------------------

#[deployment]
#[derive(Default)]
pub struct Preprocessor;

#[deployment]
impl Preprocessor {
    /// Lower-cases, splits on anything that is not a letter, digit or apostrophe, expands `n't`
    /// into a separate `not` ("wasn't" -> "was not") and drops the other apostrophes ("it's" -> "its").
    pub fn call(&self, text: String) -> Features {
        let exclamations = text.chars().filter(|&c| c == '!').count() as u32;
        let mut tokens = Vec::new();
        for raw in text
            .to_lowercase()
            .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        {
            let word = raw.trim_matches('\'');
            if word.is_empty() {
                continue;
            }
            match word.strip_suffix("n't") {
                Some(stem) => {
                    // "don't" -> "do not", "can't" -> "ca not": the stem carries no sentiment anyway.
                    if !stem.is_empty() {
                        tokens.push(stem.to_string());
                    }
                    tokens.push("not".to_string());
                }
                None => tokens.push(word.replace('\'', "")),
            }
        }
        Features {
            tokens,
            exclamations,
        }
    }
}

// --- 2a. the hot model: sentiment ---------------------------------------------------------------

/// Valence of sentiment-bearing words, on VADER's -4..4 scale (values from its lexicon where the
/// word is in it).
const VALENCE: &[(&str, f32)] = &[
    ("love", 3.2),
    ("loved", 2.9),
    ("excellent", 2.7),
    ("amazing", 2.8),
    ("great", 3.1),
    ("perfect", 2.7),
    ("happy", 2.7),
    ("good", 1.9),
    ("nice", 1.8),
    ("helpful", 1.8),
    ("recommend", 1.5),
    ("fine", 0.8),
    ("ok", 0.9),
    ("works", 0.8),
    ("fast", 0.9),
    ("quick", 1.0),
    ("worth", 0.9),
    ("cheap", -0.4),
    ("late", -1.1),
    ("slow", -1.2),
    ("expensive", -0.9),
    ("overpriced", -1.9),
    ("disappointed", -1.9),
    ("poor", -2.1),
    ("broken", -2.0),
    ("damaged", -1.9),
    ("useless", -1.8),
    ("rude", -2.0),
    ("bad", -2.5),
    ("hate", -2.7),
    ("terrible", -2.1),
    ("awful", -2.0),
    ("worst", -3.1),
    ("never", -0.4),
];

/// Words that flip the valence of the next three words.
const NEGATIONS: &[&str] = &["not", "no", "never", "nothing", "without", "hardly"];

/// Words that strengthen the next word.
const BOOSTERS: &[&str] = &["very", "really", "extremely", "so", "super", "totally"];

/// VADER's constants: the damping of a negated word, a booster's increment, one `!`'s emphasis,
/// and the normalisation's alpha.
const NEGATION_SCALAR: f32 = -0.74;
const BOOSTER_INCREMENT: f32 = 0.293;
const EXCLAMATION_INCREMENT: f32 = 0.292;
const ALPHA: f32 = 15.0;

#[deployment(num_replicas = 3)]
pub struct SentimentModel {
    replica: usize,
    lexicon: HashMap<&'static str, f32>,
}

#[deployment]
impl SentimentModel {
    /// "Loads the model": each replica builds its own lexicon and takes the next replica id.
    pub fn new(replica_ids: Arc<AtomicUsize>) -> Self {
        Self {
            replica: replica_ids.fetch_add(1, Ordering::SeqCst),
            lexicon: VALENCE.iter().copied().collect(),
        }
    }

    pub fn call(&self, features: Features) -> Sentiment {
        let tokens = &features.tokens;
        let mut sum = 0.0;
        for (i, token) in tokens.iter().enumerate() {
            let Some(&valence) = self.lexicon.get(token.as_str()) else {
                continue;
            };
            let mut v = valence;
            // A booster right before the word pushes it further from zero.
            if i > 0 && BOOSTERS.contains(&tokens[i - 1].as_str()) {
                v += BOOSTER_INCREMENT * v.signum();
            }
            // A negation within the three words before flips and damps it.
            if tokens[i.saturating_sub(3)..i]
                .iter()
                .any(|t| NEGATIONS.contains(&t.as_str()))
            {
                v *= NEGATION_SCALAR;
            }
            sum += v;
        }
        // Exclamation marks (up to four) emphasise whatever direction the text already has.
        if sum != 0.0 {
            sum += features.exclamations.min(4) as f32 * EXCLAMATION_INCREMENT * sum.signum();
        }
        let compound = sum / (sum * sum + ALPHA).sqrt();
        let polarity = if compound >= 0.05 {
            Polarity::Positive
        } else if compound <= -0.05 {
            Polarity::Negative
        } else {
            Polarity::Neutral
        };
        Sentiment {
            polarity,
            compound,
            replica: self.replica,
        }
    }
}

// --- 2b. the second model: topic -----------------------------------------------------------------

const TOPICS: [Topic; 4] = [
    Topic::Shipping,
    Topic::Quality,
    Topic::Price,
    Topic::Support,
];

/// A linear model: one weight per (word, topic), in the order of [`TOPICS`]. Words not listed
/// weigh nothing.
#[rustfmt::skip]
const TOPIC_WEIGHTS: &[(&str, [f32; 4])] = &[
    //               shipping quality price support
    ("delivery",     [2.0,  0.0,  0.0,  0.0]),
    ("delivered",    [2.0,  0.0,  0.0,  0.0]),
    ("shipping",     [2.0,  0.0,  0.3,  0.0]),
    ("arrived",      [1.6,  0.2,  0.0,  0.0]),
    ("package",      [1.4,  0.0,  0.0,  0.0]),
    ("courier",      [1.8,  0.0,  0.0,  0.2]),
    ("late",         [1.2,  0.0,  0.0,  0.0]),
    ("days",         [0.8,  0.0,  0.0,  0.2]),
    ("weeks",        [0.9,  0.0,  0.0,  0.2]),
    ("fast",         [0.8,  0.3,  0.0,  0.0]),
    ("quality",      [0.0,  2.0,  0.2,  0.0]),
    ("broken",       [0.3,  1.6,  0.0,  0.0]),
    ("damaged",      [0.8,  1.2,  0.0,  0.0]),
    ("works",        [0.0,  1.2,  0.0,  0.0]),
    ("stopped",      [0.0,  1.3,  0.0,  0.0]),
    ("battery",      [0.0,  1.5,  0.0,  0.0]),
    ("screen",       [0.0,  1.4,  0.0,  0.0]),
    ("material",     [0.0,  1.5,  0.0,  0.0]),
    ("sturdy",       [0.0,  1.5,  0.0,  0.0]),
    ("cheap",        [0.0,  0.7,  1.0,  0.0]),
    ("price",        [0.0,  0.0,  2.0,  0.0]),
    ("expensive",    [0.0,  0.0,  1.8,  0.0]),
    ("overpriced",   [0.0,  0.0,  2.0,  0.0]),
    ("money",        [0.0,  0.0,  1.5,  0.0]),
    ("worth",        [0.0,  0.2,  1.3,  0.0]),
    ("value",        [0.0,  0.2,  1.4,  0.0]),
    ("deal",         [0.0,  0.0,  1.2,  0.0]),
    ("refund",       [0.0,  0.0,  0.6,  1.4]),
    ("support",      [0.0,  0.0,  0.0,  2.0]),
    ("service",      [0.0,  0.0,  0.0,  1.6]),
    ("staff",        [0.0,  0.0,  0.0,  1.6]),
    ("rude",         [0.0,  0.0,  0.0,  1.5]),
    ("helpful",      [0.0,  0.0,  0.0,  1.4]),
    ("replied",      [0.0,  0.0,  0.0,  1.4]),
    ("email",        [0.1,  0.0,  0.0,  1.0]),
    ("agent",        [0.0,  0.0,  0.0,  1.5]),
];

#[deployment]
pub struct TopicClassifier {
    weights: HashMap<&'static str, [f32; 4]>,
}

/// No `new`: a deployment without a constructor is built with `Default` and binds with no arguments.
impl Default for TopicClassifier {
    fn default() -> Self {
        Self {
            weights: TOPIC_WEIGHTS.iter().copied().collect(),
        }
    }
}

#[deployment]
impl TopicClassifier {
    /// Sums the weights of the review's words per topic and takes the softmax.
    pub fn call(&self, features: Features) -> TopicPrediction {
        let mut logits = [0.0f32; 4];
        for token in &features.tokens {
            if let Some(w) = self.weights.get(token.as_str()) {
                for (logit, w) in logits.iter_mut().zip(w) {
                    *logit += w;
                }
            }
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f32 = exp.iter().sum();
        let (best, p) = exp
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("four topics");
        TopicPrediction {
            topic: TOPICS[best],
            confidence: p / total,
        }
    }
}

// --- 3. the ingress: fan out, then combine --------------------------------------------------------

/// Up to 32 reviews in flight on the one ingress replica: it only waits on the models.
#[deployment(max_ongoing_requests = 32)]
pub struct ReviewTriage {
    preprocessor: DeploymentHandle<Preprocessor>,
    sentiment: DeploymentHandle<SentimentModel>,
    topics: DeploymentHandle<TopicClassifier>,
}

#[deployment]
impl ReviewTriage {
    pub fn new(
        preprocessor: DeploymentHandle<Preprocessor>,
        sentiment: DeploymentHandle<SentimentModel>,
        topics: DeploymentHandle<TopicClassifier>,
    ) -> Self {
        Self {
            preprocessor,
            sentiment,
            topics,
        }
    }

    pub async fn call(&self, review: String) -> Result<Analysis, ServeError> {
        let pre: DeploymentResponse<Features> = self.preprocessor.remote(review);
        // Both model calls are dispatched now; each receives the preprocessor's output once it is
        // ready, and they run in parallel on their own deployments.
        let sentiment = self.sentiment.remote(&pre);
        let topic = self.topics.remote(&pre);
        let (sentiment, topic) = futures::future::try_join(sentiment, topic).await?;
        let action = combine(&sentiment, &topic);
        Ok(Analysis {
            sentiment,
            topic,
            action,
        })
    }
}

/// The business rule on top of the two models.
fn combine(sentiment: &Sentiment, topic: &TopicPrediction) -> Action {
    match (sentiment.polarity, topic.topic) {
        (Polarity::Positive, _) if sentiment.compound >= 0.5 => Action::Thank,
        (Polarity::Negative, Topic::Quality | Topic::Support) => Action::Escalate,
        (Polarity::Negative, Topic::Shipping | Topic::Price) => Action::Monitor,
        _ => Action::Archive,
    }
}

// --- driver ---------------------------------------------------------------------------------------

/// Sample reviews, with the polarity, topic and action the pipeline must find.
#[rustfmt::skip]
const REVIEWS: &[(&str, Polarity, Topic, Action)] = &[
    ("Arrived in two days, great packaging. Love it!", Polarity::Positive, Topic::Shipping, Action::Thank),
    ("The battery stopped working after a week. Really disappointed.", Polarity::Negative, Topic::Quality, Action::Escalate),
    ("Support agent was rude and never replied to my email", Polarity::Negative, Topic::Support, Action::Escalate),
    ("Way too expensive for what it is, not worth the money", Polarity::Negative, Topic::Price, Action::Monitor),
    ("Package was late and the courier left it in the rain", Polarity::Negative, Topic::Shipping, Action::Monitor),
    ("Sturdy material, excellent quality, would recommend", Polarity::Positive, Topic::Quality, Action::Thank),
    ("The staff were super helpful with my refund!", Polarity::Positive, Topic::Support, Action::Thank),
    ("Great value at this price!!", Polarity::Positive, Topic::Price, Action::Thank),
    ("Screen is not bad, it works", Polarity::Positive, Topic::Quality, Action::Archive),
    ("Delivery took three weeks, so slow. Never again.", Polarity::Negative, Topic::Shipping, Action::Monitor),
    ("Screen arrived broken. Worst purchase ever!!!", Polarity::Negative, Topic::Quality, Action::Escalate),
    ("It's ok I guess, the price is fine", Polarity::Positive, Topic::Price, Action::Archive),
];

/// How many times the batch is sent: enough traffic that the router spreads it over every replica.
const ROUNDS: usize = 5;

fn main() -> Result<(), ServeError> {
    let replica_ids = Arc::new(AtomicUsize::new(0));
    let app = ReviewTriage::bind(
        Preprocessor::bind(),
        SentimentModel::bind(replica_ids.clone()),
        TopicClassifier::bind(),
    );
    let handle = serve_core::run(app)?;
    assert_eq!(
        replica_ids.load(Ordering::SeqCst),
        3,
        "three replicas built"
    );

    // Send the whole batch at once: every `.remote(..)` dispatches immediately.
    let responses: Vec<DeploymentResponse<Analysis>> = (0..ROUNDS)
        .flat_map(|_| REVIEWS.iter())
        .map(|(text, ..)| handle.remote(*text))
        .collect();

    let mut served_by = [0usize; 3];
    for (i, response) in responses.into_iter().enumerate() {
        let analysis = response.result()?;
        let (text, polarity, topic, action) = REVIEWS[i % REVIEWS.len()];
        if i < REVIEWS.len() {
            println!(
                "{:<8} {:+.2}  {:<8} {:.2}  -> {:<8}  {text}",
                format!("{:?}", analysis.sentiment.polarity),
                analysis.sentiment.compound,
                format!("{:?}", analysis.topic.topic),
                analysis.topic.confidence,
                format!("{:?}", analysis.action),
            );
        }
        // Every round gives the same answer for the same review, whichever replica served it.
        assert_eq!(
            analysis.sentiment.polarity, polarity,
            "{text}: {analysis:?}"
        );
        assert_eq!(analysis.topic.topic, topic, "{text}: {analysis:?}");
        assert_eq!(analysis.action, action, "{text}: {analysis:?}");
        served_by[analysis.sentiment.replica] += 1;
    }

    println!(
        "\n{} reviews; SentimentModel requests per replica: {served_by:?}",
        ROUNDS * REVIEWS.len()
    );
    assert!(
        served_by.iter().all(|&n| n > 0),
        "every replica of the hot model served: {served_by:?}"
    );

    serve_core::shutdown();
    Ok(())
}
