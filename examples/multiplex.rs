//! Model multiplexing: one small model per customer, many customers sharing two replicas (Ray
//! Serve's `@serve.multiplexed` and `multiplexed_model_id`).
//!
//! Each customer has its own ticket router: a naive Bayes classifier trained, when it is loaded,
//! from that customer's few labelled tickets. A replica keeps at most two of them
//! (`max_num_models_per_replica = 2`); a request names its customer with
//! `handle.options().multiplexed_model_id(..)` (over HTTP: the `serve_multiplexed_model_id`
//! header), and goes to a replica that already holds that customer's model.
//!
//! ```python
//! @serve.deployment(num_replicas=2)
//! class TicketRouter:
//!     @serve.multiplexed(max_num_models_per_replica=2)
//!     async def get_model(self, customer: str):
//!         return train(TICKETS[customer])
//!
//!     async def __call__(self, text: str):
//!         model = await self.get_model(serve.get_multiplexed_model_id())
//!         return model.classify(text)
//!
//! handle = serve.run(TicketRouter.bind())
//! handle.options(multiplexed_model_id="acme").remote("my invoice is wrong").result()
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use serve_core::prelude::*;

/// Each customer's labelled tickets: what its model is trained on.
const TICKETS: &[(&str, &[(&str, &str)])] = &[
    (
        "acme",
        &[
            ("my invoice shows the wrong amount", "billing"),
            ("I was charged twice this month", "billing"),
            ("refund my last payment please", "billing"),
            ("the app crashes when I log in", "technical"),
            ("login page shows an error", "technical"),
        ],
    ),
    (
        "globex",
        &[
            ("the reactor dashboard is down", "outage"),
            ("nothing loads since this morning", "outage"),
            ("please add a dark mode", "feature"),
            ("can you export reports to csv", "feature"),
        ],
    ),
    (
        "initech",
        &[
            ("my stapler was taken again", "facilities"),
            ("the printer on floor two is jammed", "facilities"),
            ("I need access to the tps reports", "access"),
            ("reset my password for the tps system", "access"),
        ],
    ),
];

/// How many models this process trained (a load is a training run).
static TRAINED: AtomicUsize = AtomicUsize::new(0);

/// A multinomial naive Bayes classifier over words, with add-one smoothing.
pub struct TicketModel {
    /// Per label: how many tickets, word counts, total words.
    labels: BTreeMap<String, (usize, HashMap<String, usize>, usize)>,
    vocabulary: usize,
    tickets: usize,
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

impl TicketModel {
    fn train(tickets: &[(&str, &str)]) -> Self {
        let mut labels: BTreeMap<String, (usize, HashMap<String, usize>, usize)> = BTreeMap::new();
        let mut vocabulary = std::collections::HashSet::new();
        for (text, label) in tickets {
            let entry = labels.entry(label.to_string()).or_default();
            entry.0 += 1;
            for word in words(text) {
                *entry.1.entry(word.clone()).or_default() += 1;
                entry.2 += 1;
                vocabulary.insert(word);
            }
        }
        Self {
            labels,
            vocabulary: vocabulary.len(),
            tickets: tickets.len(),
        }
    }

    /// The most likely label of `text`, and its probability.
    fn classify(&self, text: &str) -> (String, f64) {
        let scores: Vec<(&String, f64)> = self
            .labels
            .iter()
            .map(|(label, (count, counts, total))| {
                let prior = (*count as f64 / self.tickets as f64).ln();
                let likelihood: f64 = words(text)
                    .map(|w| {
                        let seen = counts.get(&w).copied().unwrap_or(0) as f64;
                        ((seen + 1.0) / (*total + self.vocabulary) as f64).ln()
                    })
                    .sum();
                (label, prior + likelihood)
            })
            .collect();
        let best = scores
            .iter()
            .fold(f64::NEG_INFINITY, |best, (_, score)| best.max(*score));
        let total: f64 = scores.iter().map(|(_, s)| (s - best).exp()).sum();
        let (label, score) = scores
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("every customer has labels");
        (label.to_string(), (score - best).exp() / total)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Routed {
    pub customer: String,
    pub label: String,
    pub probability: f64,
    pub replica: usize,
}

#[derive(Debug)]
pub struct UnknownCustomer(String);

impl std::fmt::Display for UnknownCustomer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no tickets for customer `{}`", self.0)
    }
}

impl std::error::Error for UnknownCustomer {}

#[deployment(num_replicas = 2)]
#[derive(Default)]
pub struct TicketRouter;

#[deployment]
impl TicketRouter {
    /// Trains customer `customer`'s model from its tickets.
    #[multiplexed(max_num_models_per_replica = 2)]
    pub async fn get_model(&self, customer: String) -> Result<TicketModel, UnknownCustomer> {
        let tickets = TICKETS
            .iter()
            .find(|(name, _)| *name == customer)
            .ok_or(UnknownCustomer(customer))?;
        TRAINED.fetch_add(1, Ordering::SeqCst);
        Ok(TicketModel::train(tickets.1))
    }

    /// Routes a ticket with the model of the customer the request was sent for.
    pub async fn call(&self, text: String) -> Result<Routed, ServeError> {
        let customer = serve_core::get_multiplexed_model_id().unwrap_or_default();
        let model = self.get_model(&customer).await?;
        let (label, probability) = model.classify(&text);
        Ok(Routed {
            customer,
            label,
            probability,
            replica: serve_core::replica_context().map_or(0, |ctx| ctx.replica_id()),
        })
    }
}

fn main() -> Result<(), ServeError> {
    let serve = Serve::start()?;
    let handle = serve.run(TicketRouter::bind())?;

    let tickets = [
        ("acme", "why was I charged twice", "billing"),
        ("globex", "the dashboard does not load", "outage"),
        ("initech", "someone took my stapler", "facilities"),
        (
            "acme",
            "I cannot log in, the app shows an error",
            "technical",
        ),
        ("globex", "please export to csv", "feature"),
        ("initech", "I forgot my tps password", "access"),
    ];
    let mut home = HashMap::new();
    for round in 0..3 {
        for (customer, text, want) in tickets {
            let routed = handle
                .options()
                .multiplexed_model_id(customer)
                .remote(text)
                .result()?;
            assert_eq!(routed.label, want, "{customer}: {text}");
            // Every call for a customer goes to the replica that holds its model.
            assert_eq!(
                *home.entry(customer).or_insert(routed.replica),
                routed.replica
            );
            if round == 0 {
                println!(
                    "{:<8} replica {}  {:<10} {:.2}  {text}",
                    routed.customer, routed.replica, routed.label, routed.probability
                );
            }
        }
    }
    let trained = TRAINED.load(Ordering::SeqCst);
    println!("\n{} calls, {trained} models trained", 3 * tickets.len());
    assert_eq!(trained, 3, "each customer's model was trained once");
    for replica in &serve.status()[0].deployments[0].replicas {
        println!(
            "replica {} holds {:?}",
            replica.replica_id, replica.multiplexed_model_ids
        );
    }

    let err = handle
        .options()
        .multiplexed_model_id("hooli")
        .remote("hello")
        .result()
        .unwrap_err();
    println!("{err}");
    assert!(err.downcast_ref::<UnknownCustomer>().is_some());

    serve.shutdown();
    Ok(())
}
