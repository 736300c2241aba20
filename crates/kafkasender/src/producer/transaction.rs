//! Transactions (`transactional.id`): every send belongs to the open transaction, and its report
//! waits until the transaction ends, so `delivered` means committed. A commit releases the reports
//! as they are; an abort turns each into a `transaction` failure (retriable: send it again in a
//! new transaction). librdkafka acknowledges a transaction's messages long before the commit, so
//! reporting them on acknowledgement would call messages `delivered` that an abort later hides.

use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::context::Finished;
use super::engine::{CallFailure, Engine, TransactionCall};
use crate::error::{Error, ErrorKind, Result};
use crate::lock;

/// How long an ended transaction waits for librdkafka's last reports of its messages, which are
/// on their way to the delivery thread once commit or abort returns.
const LAST_REPORTS: Duration = Duration::from_secs(10);

/// Where the producer stands in its transactions; numbered from 1 per producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No transaction is open; `last` was the latest.
    Idle { last: u64 },
    /// Sends join transaction `n`.
    Open(u64),
    /// Transaction `n` is being committed or aborted (or a commit or abort of it did not finish
    /// and must be called again): sends are refused.
    Ending(u64),
    /// Transaction `n` was lost to a fatal error (the client was replaced, see `recovery`): its
    /// commit or abort says so, and a new one may begin.
    Lost(u64),
}

/// How a transaction ended, for its messages' reports.
enum Verdict {
    Committed,
    /// Aborted: each message fails with this error (unless it failed for a reason of its own).
    Aborted(Error),
}

pub(crate) struct Transactions {
    /// Sends hold it for reading from their check to their enqueue; state changes take it for
    /// writing, so no message slips into a transaction that is ending.
    state: RwLock<State>,
    /// One begin, commit or abort at a time.
    calls: Mutex<()>,
    /// Why the `Lost` transaction was lost.
    lost: Mutex<Option<Error>>,
}

impl Transactions {
    pub(crate) fn new() -> Transactions {
        Transactions {
            state: RwLock::new(State::Idle { last: 0 }),
            calls: Mutex::new(()),
            lost: Mutex::new(None),
        }
    }

    /// Holds the open transaction for one send; a typed error outside a transaction.
    pub(crate) fn hold_open(&self) -> Result<RwLockReadGuard<'_, State>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Open(_) => Ok(state),
            State::Idle { .. } => Err(misuse(
                "a transactional producer sends only inside a transaction: call begin_transaction first",
            )),
            State::Ending(n) => Err(misuse(format!(
                "transaction {n} is ending: sends wait for the next begin_transaction"
            ))),
            State::Lost(n) => Err(misuse(format!(
                "transaction {n} was lost to a fatal error: begin a new one"
            ))),
        }
    }

    /// The client failed fatally and was replaced: the open (or ending) transaction is lost. The
    /// error its messages are reported with, if there was one.
    pub(crate) fn lose_open(&self, fatal: &Error) -> Option<Error> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let (State::Open(n) | State::Ending(n)) = *state else {
            return None;
        };
        let error = Error::new(
            ErrorKind::Transaction,
            format!(
                "transaction {n} was lost: {}; the producer recovered, send its messages again in a new transaction",
                fatal.message()
            ),
        )
        .retriable();
        *lock(&self.lost) = Some(error.clone());
        *state = State::Lost(n);
        Some(error)
    }

    fn set(&self, state: State) {
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = state;
    }

    fn get(&self) -> State {
        *self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.get(), State::Open(_) | State::Ending(_))
    }

    pub(crate) fn begin(&self, engine: &Engine) -> Result<()> {
        let _call = lock(&self.calls);
        let next = match self.get() {
            State::Idle { last } | State::Lost(last) => last + 1,
            State::Open(n) => return Err(misuse(format!("transaction {n} is open already"))),
            State::Ending(n) => {
                return Err(misuse(format!(
                    "transaction {n} did not finish ending: call commit_transaction or abort_transaction again"
                )))
            }
        };
        engine
            .transaction_call(TransactionCall::Begin)
            .map_err(|failure| failure.error)?;
        self.set(State::Open(next));
        Ok(())
    }

    /// Commits the open transaction: `Ok` once every one of its messages is committed and
    /// reported `delivered`. A commit librdkafka cannot finish is aborted here, every message
    /// reported failed, and the error names the transaction. A retriable error (a timeout) leaves
    /// it ending: call commit again, or abort.
    pub(crate) fn commit(
        &self,
        engine: &Engine,
        end: &dyn Fn(Vec<Finished>),
        timeout: Duration,
    ) -> Result<()> {
        let _call = lock(&self.calls);
        let n = self.start_ending("commit")?;
        let deadline = Instant::now() + timeout;
        match engine.transaction_call(TransactionCall::Commit(timeout)) {
            Ok(()) => {
                self.finish(n, engine, end, Verdict::Committed);
                Ok(())
            }
            Err(failure) if failure.requires_abort => {
                let cause = failure.error;
                let remaining = deadline.saturating_duration_since(Instant::now());
                match engine.transaction_call(TransactionCall::Abort(
                    remaining.max(Duration::from_secs(1)),
                )) {
                    Ok(()) => {
                        let aborted = aborted(n, &format!("the commit failed: {cause}"));
                        self.finish(n, engine, end, Verdict::Aborted(aborted.clone()));
                        Err(aborted)
                    }
                    Err(abort) => Err(self.after_failed_end(n, engine, end, abort, "commit")),
                }
            }
            Err(failure) => Err(self.after_failed_end(n, engine, end, failure, "commit")),
        }
    }

    /// Aborts the open transaction: each of its messages is reported failed with
    /// [`ErrorKind::Transaction`] (retriable), `why` saying why.
    pub(crate) fn abort(
        &self,
        engine: &Engine,
        end: &dyn Fn(Vec<Finished>),
        timeout: Duration,
        why: &str,
    ) -> Result<()> {
        let _call = lock(&self.calls);
        let n = self.start_ending("abort")?;
        match engine.transaction_call(TransactionCall::Abort(timeout)) {
            Ok(()) => {
                self.finish(n, engine, end, Verdict::Aborted(aborted(n, why)));
                Ok(())
            }
            Err(failure) => Err(self.after_failed_end(n, engine, end, failure, "abort")),
        }
    }

    /// Moves the open (or unfinished) transaction to ending; its number.
    fn start_ending(&self, call: &str) -> Result<u64> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Open(n) | State::Ending(n) => {
                *state = State::Ending(n);
                Ok(n)
            }
            State::Idle { .. } => Err(misuse(format!(
                "no transaction to {call}: call begin_transaction first"
            ))),
            State::Lost(n) => {
                *state = State::Idle { last: n };
                Err(lock(&self.lost)
                    .take()
                    .unwrap_or_else(|| misuse(format!("transaction {n} was lost"))))
            }
        }
    }

    /// A commit or abort failed. Retriable: the transaction stays ending for another call. Fatal:
    /// the transaction is lost; its messages are reported failed with the fatal error.
    fn after_failed_end(
        &self,
        n: u64,
        engine: &Engine,
        end: &dyn Fn(Vec<Finished>),
        failure: CallFailure,
        call: &str,
    ) -> Error {
        let error = failure.error;
        if failure.retriable && !failure.fatal {
            return Error::new(
                error.kind(),
                format!("the {call} of transaction {n} did not finish ({}): call commit_transaction or abort_transaction again", error.message()),
            );
        }
        let lost = Error::new(
            if failure.fatal {
                ErrorKind::Fatal
            } else {
                ErrorKind::Transaction
            },
            format!(
                "transaction {n} was lost: the {call} failed: {}",
                error.message()
            ),
        );
        self.finish(n, engine, end, Verdict::Aborted(lost.clone()));
        lost
    }

    /// Transaction `n` ended: waits for the last reports of its messages, hands them all to the
    /// delivery thread with the verdict applied, and lets the next transaction begin.
    fn finish(&self, n: u64, engine: &Engine, end: &dyn Fn(Vec<Finished>), verdict: Verdict) {
        let tracker = &engine.tracker;
        if !tracker.all_answered_by(Instant::now() + LAST_REPORTS) {
            tracing::error!(target: "kafkasender", transaction = n, unanswered = tracker.unanswered(), "messages of an ended transaction were not reported by librdkafka in time; they are reported when they are");
        }
        let finished = tracker
            .take_held()
            .into_iter()
            .map(|(mut ticket, report)| {
                ticket.in_transaction = false;
                // A message that failed for a reason of its own keeps it (it is why the commit
                // failed); the others were fine but are hidden by the abort.
                let own_failure = report
                    .error()
                    .is_some_and(|e| e.kind() != ErrorKind::Closed);
                match &verdict {
                    Verdict::Aborted(error) if !own_failure => {
                        (ticket, report.failed_instead(error.clone()))
                    }
                    _ => (ticket, report),
                }
            })
            .collect();
        self.set(State::Idle { last: n });
        end(finished);
    }
}

fn misuse(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Transaction, message)
}

/// The error of each message of aborted transaction `n`: retriable, since sending it again in a
/// new transaction may succeed.
fn aborted(n: u64, why: &str) -> Error {
    Error::new(
        ErrorKind::Transaction,
        format!("transaction {n} was aborted: {why}"),
    )
    .retriable()
}
