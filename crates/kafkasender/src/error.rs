//! The one error type of kafkasender. Every binding maps [`ErrorKind`] exhaustively, so adding a
//! kind breaks each binding's build until it is mapped there too.

use std::fmt;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A configuration key or value is invalid, unknown, or conflicts with another.
    Config,
    /// The record itself is unusable (bad topic name, bad partition, …); nothing was enqueued.
    InvalidRecord,
    /// The record exceeds `message.max.bytes` (locally or at the broker).
    MessageTooLarge,
    /// The local queue stayed full for longer than `enqueue.timeout.ms`.
    QueueFull,
    /// The message was not acknowledged within its timeout (`message.timeout.ms`) or a wait ran out.
    Timeout,
    /// The producer is closed, or was closed before the message could be delivered.
    Closed,
    /// Brokers could not be reached or the connection failed.
    BrokerTransport,
    /// SASL or TLS authentication failed.
    Authentication,
    /// The principal may not write to the topic or cluster.
    Authorization,
    /// The topic or partition does not exist.
    UnknownTopicOrPartition,
    /// The producer hit an unrecoverable error (fenced, idempotence state lost).
    Fatal,
    /// Any other error reported by a broker; [`Error::is_retriable`] tells whether it may pass.
    Broker,
    /// A bug or an unexpected state inside kafkasender or librdkafka.
    Internal,
    /// The rate limit had no token for the send within `enqueue.timeout.ms`; nothing was enqueued.
    RateLimited,
    /// The circuit breaker is open (the brokers keep failing) and no spool is configured;
    /// nothing was enqueued.
    CircuitOpen,
    /// The local spool could not take the message: it is full (`spool.max.bytes`) or the disk failed.
    Spool,
    /// A transaction call out of turn (a send outside a transaction on a transactional producer,
    /// a commit without a begin), not retriable; or a message whose transaction was aborted,
    /// retriable: send it again in a new transaction.
    Transaction,
}

impl ErrorKind {
    /// Every kind, in declaration order (bindings use it to check their mappings are complete).
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::Config,
        ErrorKind::InvalidRecord,
        ErrorKind::MessageTooLarge,
        ErrorKind::QueueFull,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::BrokerTransport,
        ErrorKind::Authentication,
        ErrorKind::Authorization,
        ErrorKind::UnknownTopicOrPartition,
        ErrorKind::Fatal,
        ErrorKind::Broker,
        ErrorKind::Internal,
        ErrorKind::RateLimited,
        ErrorKind::CircuitOpen,
        ErrorKind::Spool,
        ErrorKind::Transaction,
    ];

    /// A stable number from 1, the kind's place in [`ErrorKind::ALL`] (so new kinds go at the
    /// end): the C face's status code for it.
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// A stable snake_case name, used in logs, metrics labels and binding error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::InvalidRecord => "invalid_record",
            ErrorKind::MessageTooLarge => "message_too_large",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::BrokerTransport => "broker_transport",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Authorization => "authorization",
            ErrorKind::UnknownTopicOrPartition => "unknown_topic_or_partition",
            ErrorKind::Fatal => "fatal",
            ErrorKind::Broker => "broker",
            ErrorKind::Internal => "internal",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Spool => "spool",
            ErrorKind::Transaction => "transaction",
        }
    }

    /// The kind named `name` by [`ErrorKind::as_str`].
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found while validating a configuration; [`Error::problems`] lists them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key as the user wrote it (`linger.ms`, or `KAFKA_PRODUCER_TIMEOUT` for the environment).
    pub key: String,
    /// What is wrong with it. Never contains a secret value.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The error of every fallible kafkasender call and of every failed delivery.
///
/// One pointer wide: errors are rare, while every `Result` and every delivery report carries
/// room for one, and a smaller report is cheaper to move on the delivery thread.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    kind: ErrorKind,
    message: String,
    code: Option<i32>,
    retriable: bool,
    problems: Vec<ConfigProblem>,
}

/// `Result` with kafkasender's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Details {
            kind,
            message: message.into(),
            code: None,
            retriable: matches!(
                kind,
                ErrorKind::QueueFull
                    | ErrorKind::Timeout
                    | ErrorKind::BrokerTransport
                    | ErrorKind::RateLimited
                    | ErrorKind::CircuitOpen
            ),
            problems: Vec::new(),
        }))
    }

    /// A configuration error listing every problem found.
    pub fn config(problems: Vec<ConfigProblem>) -> Error {
        let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let noun = if problems.len() == 1 {
            "problem"
        } else {
            "problems"
        };
        let message = format!(
            "invalid configuration ({} {noun}): {}",
            problems.len(),
            listed.join("; ")
        );
        let mut error = Error::new(ErrorKind::Config, message);
        error.0.problems = problems;
        error
    }

    /// An error from a librdkafka error code, classified into a kind.
    pub fn from_code(code: RDKafkaErrorCode, context: &str) -> Error {
        let kind = kind_of(code);
        let message = if context.is_empty() {
            code.to_string()
        } else {
            format!("{context}: {code}")
        };
        let mut error = Error::new(kind, message);
        error.0.code = Some(code as i32);
        error.0.retriable = is_retriable_code(code, kind);
        error
    }

    /// The client's fatal error, whatever kind its code would be on its own.
    pub(crate) fn fatal(code: RDKafkaErrorCode, message: String) -> Error {
        let mut error = Error::new(ErrorKind::Fatal, message);
        error.0.code = Some(code as i32);
        error
    }

    /// The same error, marked retriable.
    pub(crate) fn retriable(mut self) -> Error {
        self.0.retriable = true;
        self
    }

    /// The same error, for a message the brokers may have written: not retriable, since sending
    /// it again could duplicate it, and saying so.
    pub(crate) fn possibly_written(mut self) -> Error {
        self.0.message.push_str(
            "; the brokers may have written it (no answer came), so it is not re-sent: a copy \
             would be a duplicate",
        );
        self.0.retriable = false;
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The librdkafka error code (`rd_kafka_resp_err_t`; Kafka protocol codes are positive), if any.
    pub fn code(&self) -> Option<i32> {
        self.0.code
    }

    /// Whether the same send may succeed if tried again later.
    pub fn is_retriable(&self) -> bool {
        self.0.retriable
    }

    /// For [`ErrorKind::Config`]: every problem found; empty otherwise.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.0.problems
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Details {
            kind,
            message,
            code,
            retriable,
            problems,
        } = &*self.0;
        f.debug_struct("Error")
            .field("kind", kind)
            .field("message", message)
            .field("code", code)
            .field("retriable", retriable)
            .field("problems", problems)
            .finish()
    }
}

impl std::error::Error for Error {}

impl From<KafkaError> for Error {
    fn from(error: KafkaError) -> Error {
        match error.rdkafka_error_code() {
            Some(code) => Error::from_code(code, ""),
            None => match error {
                KafkaError::ClientConfig(_, description, key, _) => {
                    Error::config(vec![ConfigProblem {
                        key,
                        message: description,
                    }])
                }
                other => Error::new(ErrorKind::Internal, other.to_string()),
            },
        }
    }
}

fn kind_of(code: RDKafkaErrorCode) -> ErrorKind {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge => {
            ErrorKind::MessageTooLarge
        }
        C::QueueFull => ErrorKind::QueueFull,
        C::MessageTimedOut | C::RequestTimedOut | C::OperationTimedOut | C::TimedOutQueue => {
            ErrorKind::Timeout
        }
        C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::NetworkException
        | C::Resolve
        | C::BrokerNotAvailable
        | C::BrokerDestroy => ErrorKind::BrokerTransport,
        C::Authentication | C::SaslAuthenticationFailed | C::SSL | C::UnsupportedSASLMechanism => {
            ErrorKind::Authentication
        }
        C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::GroupAuthorizationFailed => ErrorKind::Authorization,
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition => {
            ErrorKind::UnknownTopicOrPartition
        }
        C::Fatal | C::ProducerFenced | C::InvalidProducerEpoch | C::Fenced => ErrorKind::Fatal,
        C::State | C::InvalidTransactionalState | C::InvalidProducerIdMapping => {
            ErrorKind::Transaction
        }
        // Purges only happen when the producer closes with messages still queued or in flight.
        C::PurgeQueue | C::PurgeInflight => ErrorKind::Closed,
        C::InvalidTopic | C::InvalidArgument | C::InvalidRecord | C::InvalidPartitions => {
            ErrorKind::InvalidRecord
        }
        C::InvalidConfig | C::InvalidReplicationFactor | C::InvalidTransactionTimeout => {
            ErrorKind::Config
        }
        C::Fail | C::BadMessage | C::BadCompression | C::Unknown => ErrorKind::Internal,
        _ => ErrorKind::Broker,
    }
}

fn is_retriable_code(code: RDKafkaErrorCode, kind: ErrorKind) -> bool {
    use RDKafkaErrorCode as C;
    match kind {
        ErrorKind::QueueFull | ErrorKind::Timeout | ErrorKind::BrokerTransport => true,
        // The topic may be being created, or metadata may be stale.
        ErrorKind::UnknownTopicOrPartition => true,
        ErrorKind::Broker => matches!(
            code,
            C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::KafkaStorageError
                | C::FencedLeaderEpoch
                | C::UnknownLeaderEpoch
                | C::PreferredLeaderNotAvailable
                | C::ThrottlingQuotaExceeded
                | C::InvalidMessage
                | C::NotController
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::ConcurrentTransactions
                | C::OutOfOrderSequenceNumber
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tests/parity/error_kinds.txt ("CODE NAME" per line) is the list every face's tests check
    /// theirs against (`KS_BLESS=1 cargo test` rewrites it after a kind is added).
    #[test]
    fn tests_parity_error_kinds_txt_is_the_core_list() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "ALL is in declaration order");
        }
        let lines: Vec<String> = ErrorKind::ALL
            .iter()
            .map(|kind| format!("{} {kind}", kind.code()))
            .collect();
        crate::testing::check_parity_list("error_kinds.txt", &lines.join("\n"));
    }

    #[test]
    fn broker_codes_are_classified_with_retriability() {
        let not_leader = Error::from_code(RDKafkaErrorCode::NotLeaderForPartition, "produce");
        assert_eq!(not_leader.kind(), ErrorKind::Broker);
        assert!(not_leader.is_retriable());
        assert_eq!(not_leader.code(), Some(6));

        let too_large = Error::from_code(RDKafkaErrorCode::MessageSizeTooLarge, "");
        assert_eq!(too_large.kind(), ErrorKind::MessageTooLarge);
        assert!(!too_large.is_retriable());

        let denied = Error::from_code(RDKafkaErrorCode::TopicAuthorizationFailed, "");
        assert_eq!(denied.kind(), ErrorKind::Authorization);
        assert!(!denied.is_retriable());

        let timed_out = Error::from_code(RDKafkaErrorCode::MessageTimedOut, "");
        assert_eq!(timed_out.kind(), ErrorKind::Timeout);
        assert!(timed_out.is_retriable());
    }

    #[test]
    fn config_error_lists_every_problem_in_its_message() {
        let error = Error::config(vec![
            ConfigProblem {
                key: "a".into(),
                message: "bad".into(),
            },
            ConfigProblem {
                key: "b".into(),
                message: "worse".into(),
            },
        ]);
        assert_eq!(error.kind(), ErrorKind::Config);
        assert_eq!(error.problems().len(), 2);
        assert!(error.to_string().contains("a: bad"));
        assert!(error.to_string().contains("b: worse"));
    }

    #[test]
    fn kind_names_are_unique() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }
}
