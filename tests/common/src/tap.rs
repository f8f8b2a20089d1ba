//! Every result the app publishes, collected in the background with the
//! moment it arrived: read in order (`next`), by job id (`of`), or as a tally
//! against the jobs sent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authrelay::job::Phase;
use futures_util::StreamExt as _;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::broker::TestBroker;
use crate::contracts::Message;
use crate::{eventually, lazy};

/// The body of the marker [`ResultTap::flush`] sends through the tap's queue.
const FLUSH_MARKER: &[u8] = b"authrelay-testkit: flush";

/// A private queue bound to every result (`#` on the results exchange),
/// consumed in the background from the moment it is opened.
pub struct ResultTap {
    seen: Arc<Mutex<Vec<(Instant, Value)>>>,
    /// How many results have arrived; changes wake waiters.
    arrived: watch::Receiver<usize>,
    /// How many flush markers have come back.
    flushed: watch::Receiver<usize>,
    /// Results handed out by `next`/`take`, in arrival order.
    read: Mutex<usize>,
    channel: Channel,
    queue: String,
    /// Results that do not validate against the result schema, or answer a
    /// job the job schema refuses without refusing it; checked by every read.
    invalid: Arc<Mutex<Vec<String>>>,
}

impl ResultTap {
    pub async fn open(broker: &TestBroker) -> Self {
        let channel = broker.conn.create_channel().await.unwrap();
        let queue = TestBroker::private_queue(&channel, Some((&broker.names.results_exchange(), "#"))).await;
        let mut consumer = TestBroker::consume(&channel, queue.as_str()).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (arrived_tx, arrived) = watch::channel(0);
        let (flushed_tx, flushed) = watch::channel(0);
        let sink = seen.clone();
        let invalid = Arc::new(Mutex::new(Vec::new()));
        let (bad, refused_jobs) = (invalid.clone(), broker.refused_jobs.clone());
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                if delivery.data == FLUSH_MARKER {
                    flushed_tx.send_modify(|n| *n += 1);
                    continue;
                }
                let result: Value = serde_json::from_slice(&delivery.data).expect("a result is JSON");
                let errors = Message::Result.errors(&result);
                if !errors.is_empty() {
                    bad.lock().unwrap().push(format!("{result} does not validate: {}", errors.join("; ")));
                }
                bad.lock().unwrap().extend(refused_jobs.disagreement(&result));
                let count = {
                    let mut seen = sink.lock().unwrap();
                    seen.push((Instant::now(), result));
                    seen.len()
                };
                arrived_tx.send_replace(count);
            }
        });
        Self { seen, arrived, flushed, read: Mutex::new(0), channel, queue: queue.as_str().to_owned(), invalid }
    }

    /// How many results have arrived.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Panics with every result that broke the contracts (see `invalid`).
    pub fn assert_contracts_kept(&self) {
        let invalid = self.invalid.lock().unwrap();
        assert!(
            invalid.is_empty(),
            "results break schemas/result.schema.json or the job schema:\n{}",
            invalid.join("\n")
        );
    }

    /// Takes the breaches found so far (so a test that provokes one on
    /// purpose can see it, and the tap does not fail the test for it).
    pub fn take_contract_breaches(&self) -> Vec<String> {
        std::mem::take(&mut *self.invalid.lock().unwrap())
    }

    /// Every result so far, in arrival order.
    pub fn results(&self) -> Vec<Value> {
        self.assert_contracts_kept();
        self.seen.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
    }

    /// The next result not yet handed out, in arrival order; panics after `wait`.
    pub async fn next(&self, wait: Duration) -> Value {
        self.take(1, wait).await.remove(0)
    }

    /// The next `n` results not yet handed out, in arrival order; panics after `wait`.
    pub async fn take(&self, n: usize, wait: Duration) -> Vec<Value> {
        let from = *self.read.lock().unwrap();
        let mut arrived = self.arrived.clone();
        let enough = tokio::time::timeout(wait, arrived.wait_for(|count| *count >= from + n)).await;
        assert!(enough.is_ok(), "{} results of {n} expected within {wait:?}", self.len() - from);
        *self.read.lock().unwrap() = from + n;
        self.assert_contracts_kept();
        self.seen.lock().unwrap()[from..from + n].iter().map(|(_, r)| r.clone()).collect()
    }

    /// Asserts that no result beyond those handed out arrives within `wait`.
    pub async fn no_more(&self, wait: Duration) {
        let read = *self.read.lock().unwrap();
        let mut arrived = self.arrived.clone();
        if tokio::time::timeout(wait, arrived.wait_for(|count| *count > read)).await.is_ok() {
            let unexpected = self.seen.lock().unwrap()[read].1.clone();
            panic!("unexpected result: {unexpected}");
        }
    }

    /// Waits until at least `n` results have arrived.
    pub async fn count_reaches(&self, n: usize, within: Duration) {
        let what = lazy(|| format!("{n} results arrived (there are {})", self.len()));
        eventually(within, what, async || (self.len() >= n).then_some(())).await;
    }

    /// The first result of job `id`, and how long after `since` it arrived.
    pub async fn of(&self, id: &str, since: Instant, within: Duration) -> (Value, Duration) {
        let within = within.saturating_sub(since.elapsed());
        let found = eventually(within, format!("a result for {id}"), async || {
            self.seen.lock().unwrap().iter().find(|(_, r)| r["job_id"] == id).cloned()
        })
        .await;
        self.assert_contracts_kept();
        (found.1, found.0.saturating_duration_since(since))
    }

    /// Waits until every id has a result, then tallies.
    pub async fn all_answered(&self, ids: &BTreeSet<String>, within: Duration) -> Tally {
        let what = lazy(|| format!("every job has a result ({})", Tally::of(ids, &self.results())));
        eventually(within, what, async || {
            let tally = Tally::of(ids, &self.results());
            (tally.lost == 0).then_some(tally)
        })
        .await
    }

    /// How long after `since` the first result of `phase` arrived.
    pub async fn first_of_phase_after(&self, phase: Phase, since: Instant, within: Duration) -> Duration {
        let within = within.saturating_sub(since.elapsed());
        eventually(within, format!("the {phase} lane publishes a result"), async || {
            let seen = self.seen.lock().unwrap();
            seen.iter().find(|(at, r)| *at >= since && r["phase"] == phase.as_str()).map(|(at, _)| *at - since)
        })
        .await
    }

    /// Waits until every result published before this call has arrived: a
    /// marker sent now to the tap's own queue comes back after them.
    pub async fn flush(&self, within: Duration) {
        let before = *self.flushed.borrow();
        self.channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                FLUSH_MARKER,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        let mut flushed = self.flushed.clone();
        let back = tokio::time::timeout(within, flushed.wait_for(|n| *n > before)).await;
        assert!(back.is_ok(), "the tap's flush marker did not come back within {within:?}");
    }
}

impl Drop for ResultTap {
    /// A result that broke the contracts fails the test that saw it, even if
    /// the test never read it.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_contracts_kept();
        }
    }
}

/// Results against jobs sent.
#[derive(Debug)]
pub struct Tally {
    pub sent: usize,
    pub results: usize,
    pub duplicates: usize,
    pub lost: usize,
    pub outcomes: BTreeMap<String, usize>,
}

impl Tally {
    /// The results of the jobs `ids` among `results`.
    pub fn of(ids: &BTreeSet<String>, results: &[Value]) -> Self {
        let ours: Vec<&Value> =
            results.iter().filter(|r| r["job_id"].as_str().is_some_and(|id| ids.contains(id))).collect();
        let answered: BTreeSet<&str> = ours.iter().map(|r| r["job_id"].as_str().unwrap()).collect();
        let mut outcomes = BTreeMap::new();
        for r in &ours {
            *outcomes.entry(r["outcome"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        }
        Self {
            sent: ids.len(),
            results: ours.len(),
            duplicates: ours.len() - answered.len(),
            lost: ids.len() - answered.len(),
            outcomes,
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {}, results {}, duplicates {}, lost {}, outcomes {:?}",
            self.sent, self.results, self.duplicates, self.lost, self.outcomes
        )
    }
}
