//! The resilience layer against librdkafka's mock cluster: wire retries, client re-sends, the
//! circuit breaker, the dead-letter topic and the spool (including a producer killed mid-spool).
//! Every claim about where a message went is checked by reading the topics back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kafkasender::testing::{read_topic, ConsumedRecord, MockApi, MockCluster};
use kafkasender::{
    spool, BreakerState, ConfigBuilder, DeliveryReport, ErrorKind, HealthStatus, Outcome, Producer,
    Record,
};

mod common;
use common::{value_of, Reports};

const LONG: Duration = Duration::from_secs(60);

fn values(records: &[ConsumedRecord]) -> Vec<String> {
    records.iter().map(value_of).collect()
}

fn last_offsets(records: &[ConsumedRecord]) -> BTreeMap<i32, i64> {
    let mut last = BTreeMap::new();
    for record in records {
        let offset = last.entry(record.partition).or_insert(record.offset);
        *offset = (*offset).max(record.offset);
    }
    last
}

fn header<'a>(record: &'a ConsumedRecord, name: &str) -> &'a str {
    let (_, value) = record
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .unwrap_or_else(|| panic!("no header {name} in {record:?}"));
    std::str::from_utf8(value.as_deref().unwrap()).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "kafkasender-test-{name}-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A mock cluster with `topic`, and a producer configured by `configure` that has delivered one
/// message to it (so its idempotent start-up is over).
fn warm_producer(
    topic: &str,
    partitions: i32,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (MockCluster, Producer) {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic(topic, partitions, 3).unwrap();
    let producer = Producer::new(configure(cluster.config()).build().unwrap()).unwrap();
    producer
        .send_and_wait(&Record::new(topic).value("warm-up"), LONG)
        .unwrap();
    (cluster, producer)
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn retriable_produce_errors_are_retried_and_nothing_is_lost_or_duplicated() {
    let _outages = common::beside_others();
    let topic = "flaky";
    // One request in flight per broker, as `push_request_errors` says: with a failed request of
    // 1–4 messages and one sent behind it, the mock lost a message in CI that was reported
    // delivered.
    let (cluster, producer) = warm_producer(topic, 4, |config| {
        config
            .set("statistics.interval.ms", "100")
            .set("max.in.flight", "1")
    });
    // NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS, LEADER_NOT_AVAILABLE,
    // three times each, for the next 12 produce requests.
    let codes: Vec<i32> = [6, 7, 19, 5].repeat(3);
    cluster
        .push_request_errors(MockApi::Produce, &codes)
        .unwrap();

    let reports = Reports::default();
    let n = 2_000;
    for i in 0..n {
        let value = format!("m-{i}");
        producer
            .send(
                &Record::new(topic).key(&value).value(&value),
                reports.callback(),
            )
            .unwrap();
    }
    producer.flush(LONG).unwrap();
    let reports = reports.wait_for(n, LONG);
    assert!(
        reports.iter().all(DeliveryReport::is_delivered),
        "{:?}",
        reports.iter().find(|r| !r.is_delivered())
    );

    let read = read_topic(cluster.bootstrap_servers(), topic, LONG).unwrap();
    let read_values = values(&read);
    let distinct: HashSet<&String> = read_values.iter().collect();
    let lost: Vec<String> = (0..n)
        .map(|i| format!("m-{i}"))
        .filter(|value| !distinct.contains(value))
        .collect();
    // Where each lost message was reported delivered, to tell a lost write from a short read.
    let reported: Vec<(i32, i64)> = reports
        .iter()
        .filter(|r| lost.iter().any(|v| r.key.as_deref() == Some(v.as_bytes())))
        .map(|r| (r.partition, r.offset))
        .collect();
    assert!(
        lost.is_empty(),
        "nothing lost: {lost:?} reported delivered at (partition, offset) {reported:?}; read {} records, last offset per partition {:?}",
        read.len(),
        last_offsets(&read)
    );
    assert_eq!(distinct.len(), n + 1, "nothing lost, the warm-up included");
    assert_eq!(read.len(), n + 1, "no duplicates");
    assert!(
        wait_until(Duration::from_secs(5), || producer.metrics().wire_retries
            > 0),
        "the wire retries are counted: {:?}",
        producer.metrics()
    );
}

/// Brokers that are down before the producer ever connects: nothing reaches the wire, so a
/// message that times out was certainly not written, and re-sending it cannot duplicate it.
fn cluster_down_from_the_start(topic: &str) -> MockCluster {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(topic, 2, 1).unwrap();
    cluster.broker_down(1).unwrap();
    cluster
}

#[test]
fn messages_that_time_out_are_re_sent_with_backoff_and_delivered() {
    let _outages = common::alone();
    let topic = "resent";
    let cluster = cluster_down_from_the_start(topic);
    let producer = Producer::new(
        cluster
            .config()
            .set("message.timeout.ms", "400ms")
            .set("retry.max", "20")
            .set("retry.backoff.base.ms", "100ms")
            .set("retry.backoff.cap.ms", "300ms")
            .build()
            .unwrap(),
    )
    .unwrap();
    let reports = Reports::default();
    for i in 0..20 {
        let value = format!("r-{i}");
        producer
            .send(&Record::new(topic).value(&value), reports.callback())
            .unwrap();
    }
    assert!(
        wait_until(LONG, || producer.metrics().retried >= 20),
        "every message timed out and was re-sent at least once"
    );
    cluster.broker_up(1).unwrap();
    let reports = reports.wait_for(20, LONG);
    assert_eq!(reports.len(), 20);
    for report in &reports {
        assert!(report.is_delivered(), "{report:?}");
        assert!(report.attempts >= 2, "{report:?}");
    }
    let read = read_topic(cluster.bootstrap_servers(), topic, LONG).unwrap();
    let mut read_values = values(&read);
    read_values.sort();
    let mut sent: Vec<String> = (0..20).map(|i| format!("r-{i}")).collect();
    sent.sort();
    assert_eq!(read_values, sent, "each message exactly once");
    let metrics = producer.metrics();
    assert_eq!((metrics.delivered, metrics.failed), (20, 0));
}

#[test]
fn all_brokers_down_opens_the_breaker_and_spools_then_it_closes_and_the_spool_replays() {
    let _outages = common::alone();
    let topic = "outage";
    let cluster = cluster_down_from_the_start(topic);
    let dir = temp_dir("breaker");
    let producer = Producer::new(
        cluster
            .config()
            .set("message.timeout.ms", "300ms")
            .set("retry.max", "0")
            .set("breaker.enabled", "true")
            .set("breaker.consecutive.failures", "3")
            // Long enough that no probe goes out before the spool is inspected below.
            .set("breaker.timeout.ms", "2s")
            .set("spool.dir", dir.to_str().unwrap())
            .build()
            .unwrap(),
    )
    .unwrap();

    // Before the breaker opens, messages wait for their timeout and are then spooled.
    let reports = Reports::default();
    let mut sent = Vec::new();
    for i in 0..5 {
        let value = format!("early-{i}");
        producer
            .send(&Record::new(topic).value(&value), reports.callback())
            .unwrap();
        sent.push(value);
    }
    assert!(
        wait_until(LONG, || producer.breaker_state() == BreakerState::Open),
        "the breaker opens"
    );
    assert_eq!(producer.health().status, HealthStatus::Unhealthy);
    // While it is open, sends are spooled at once.
    for i in 0..20 {
        let value = format!("open-{i}");
        producer
            .send(&Record::new(topic).value(&value), reports.callback())
            .unwrap();
        sent.push(value);
    }
    let spooled = reports.wait_for(25, LONG);
    assert_eq!(spooled.len(), 25);
    for report in &spooled {
        let Outcome::Spooled { path, reason } = &report.outcome else {
            panic!("not spooled: {report:?}");
        };
        assert!(path.starts_with(&dir));
        assert!(
            matches!(
                reason.kind(),
                ErrorKind::CircuitOpen | ErrorKind::Timeout | ErrorKind::BrokerTransport
            ),
            "{reason}"
        );
    }
    let summary = spool::inspect(&dir).unwrap();
    assert_eq!(summary.iter().map(|f| f.records).sum::<u64>(), 25);
    // Spooled with their ids, timed-out and refused ones alike: a replay interrupted and run again
    // can send a record twice, and both copies must carry the same id.
    let spooled_ids: HashMap<String, Vec<u8>> = summary
        .iter()
        .flat_map(|file| spool::SpoolReader::open(&file.path).unwrap())
        .map(|spooled| {
            let record = spooled.unwrap().record;
            let (_, id) = (record.headers.iter())
                .find(|(key, _)| key == kafkasender::MESSAGE_ID_HEADER)
                .unwrap_or_else(|| panic!("spooled without an id: {record:?}"));
            let value = String::from_utf8(record.value.unwrap()).unwrap();
            (value, id.clone().unwrap())
        })
        .collect();
    assert_eq!(spooled_ids.len(), 25);

    // The brokers come back. After the open timeout the worker replays the spool, its first record
    // the half-open probe; sends made meanwhile queue behind the spool, keeping their order.
    cluster.broker_up(1).unwrap();
    let mut probes = 0;
    assert!(
        wait_until(LONG, || {
            if producer.breaker_state() != BreakerState::Closed {
                let value = format!("probe-{probes}");
                probes += 1;
                producer
                    .send(&Record::new(topic).value(&value), reports.callback())
                    .unwrap();
                sent.push(value);
                thread::sleep(Duration::from_millis(100));
            }
            producer.breaker_state() == BreakerState::Closed
        }),
        "the breaker closes once a probe is delivered"
    );
    // Probes sent while the half-open breaker had no probe slot left were spooled too.
    assert!(
        wait_until(LONG, || {
            let m = producer.metrics();
            m.replayed >= 25 && m.replayed == m.spooled
        }),
        "closing the breaker replays the spool: {:?}",
        producer.metrics()
    );
    producer.flush(LONG).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || spool::inspect(&dir)
            .unwrap()
            .is_empty()),
        "replayed files are deleted"
    );

    let read = read_topic(cluster.bootstrap_servers(), topic, LONG).unwrap();
    let mut read_values = values(&read);
    read_values.sort();
    sent.sort();
    assert_eq!(
        read_values, sent,
        "every message delivered exactly once, none lost"
    );
    for record in &read {
        if let Some(id) = spooled_ids.get(&value_of(record)) {
            let sent_id = header(record, kafkasender::MESSAGE_ID_HEADER);
            assert_eq!(
                sent_id.as_bytes(),
                id,
                "replayed with the id it was spooled with"
            );
        }
    }
    let metrics = producer.metrics();
    assert!(metrics.breaker_trips >= 1);
    assert_eq!(metrics.failed, 0, "{metrics:?}");
    assert_eq!(metrics.spooled, metrics.replayed);
    drop(producer);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn messages_the_broker_refuses_go_to_the_dead_letter_topic_with_their_headers() {
    let _outages = common::beside_others();
    let (topic, dlq) = ("payments", "payments.dlq");
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic(topic, 2, 3).unwrap();
    cluster.create_topic(dlq, 2, 3).unwrap();
    let producer = Producer::new(cluster.config().set("dlq.topic", dlq).build().unwrap()).unwrap();
    producer
        .send_and_wait(&Record::new(topic).value("warm-up"), LONG)
        .unwrap();

    let before_ms = kafkasender_now_ms();
    // TOPIC_AUTHORIZATION_FAILED, then MESSAGE_TOO_LARGE, each for one produce request.
    let mut reports = Vec::new();
    for (code, value) in [(29, "denied"), (10, "too-large")] {
        cluster
            .push_request_errors(MockApi::Produce, &[code])
            .unwrap();
        reports.push(
            producer
                .send_and_wait(
                    &Record::new(topic)
                        .key("k-1")
                        .value(value)
                        .header("trace", "t-1"),
                    LONG,
                )
                .unwrap(),
        );
    }
    let kinds: Vec<ErrorKind> = reports
        .iter()
        .map(|report| match &report.outcome {
            Outcome::DeadLettered { topic: to, reason } => {
                assert_eq!(to, dlq);
                assert_eq!(report.topic, topic);
                assert!(report.offset >= 0);
                reason.kind()
            }
            other => panic!("not dead-lettered: {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [ErrorKind::Authorization, ErrorKind::MessageTooLarge]
    );

    let letters = read_topic(cluster.bootstrap_servers(), dlq, LONG).unwrap();
    assert_eq!(values(&letters).len(), 2);
    for (letter, expected) in letters.iter().zip(["denied", "too-large"]) {
        let value = String::from_utf8(letter.value.clone().unwrap()).unwrap();
        assert_eq!(value, expected);
        assert_eq!(letter.key.as_deref(), Some(&b"k-1"[..]));
        assert_eq!(header(letter, "trace"), "t-1");
        assert_eq!(header(letter, "x-ks-original-topic"), topic);
        assert_eq!(header(letter, "x-ks-attempts"), "1");
        let first: i64 = header(letter, "x-ks-first-attempt-ms").parse().unwrap();
        let last: i64 = header(letter, "x-ks-last-attempt-ms").parse().unwrap();
        assert!(
            before_ms - 1_000 <= first && first <= last,
            "{first} {last}"
        );
    }
    assert!(header(&letters[0], "x-ks-error").starts_with("authorization:"));
    assert!(header(&letters[1], "x-ks-error").starts_with("message_too_large:"));
    assert_eq!(
        values(&read_topic(cluster.bootstrap_servers(), topic, LONG).unwrap()),
        ["warm-up"],
        "nothing refused reached the topic"
    );
    let metrics = producer.metrics();
    assert_eq!((metrics.dead_lettered, metrics.failed), (2, 0));
    assert!(producer
        .metrics_prometheus()
        .contains("kafkasender_messages_dead_lettered_total{client_id=\"kafkasender\"} 2"));
}

/// The lookup's other half, the record found in its topic and not sent, needs a broker that finds
/// offsets by time (the mock does not): tests/e2e and the cluster scenarios cover it on real Kafka.
#[test]
fn a_message_that_may_have_been_written_is_spooled_and_a_replay_sends_it_once_when_its_topic_lacks_it(
) {
    let _outages = common::beside_others();
    let topic = "ledger";
    let dir = temp_dir("possibly-written");
    let (cluster, producer) = warm_producer(topic, 1, |config| {
        (config.set("retries", "1")).set("spool.dir", dir.to_str().unwrap())
    });

    // NOT_ENOUGH_REPLICAS_AFTER_APPEND, for the request and its one retry: the leader wrote it
    // (says the code), the mock did not (it answers injected errors before appending).
    cluster
        .push_request_errors(MockApi::Produce, &[20, 20])
        .unwrap();
    let report = producer
        .send_and_wait(&Record::new(topic).key("k").value("maybe"), LONG)
        .unwrap();
    match &report.outcome {
        Outcome::Spooled { reason, .. } => {
            assert!(reason.message().contains("may have written it"), "{reason}");
        }
        other => panic!("not spooled: {other:?}"),
    }
    // The producer replays its spool by itself (no breaker to wait for), looking the record up
    // first: the topic does not hold it, so it is sent.
    assert!(
        wait_until(LONG, || producer.metrics().replayed == 1),
        "{:?}",
        producer.metrics()
    );
    producer.flush(LONG).unwrap();
    assert_eq!(
        values(&read_topic(cluster.bootstrap_servers(), topic, LONG).unwrap()),
        ["warm-up", "maybe"],
        "sent once by the replay"
    );
    let metrics = producer.metrics();
    assert_eq!(
        (metrics.replayed, metrics.already_written, metrics.failed),
        (1, 0, 0)
    );
    drop(producer);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn kafkasender_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const CHILD_SPOOL_DIR: &str = "KS_TEST_CHILD_SPOOL_DIR";

/// Runs the test `name` again in a child process with `env` set (which makes it play the child),
/// reads the counts it prints after `prefix`, and kills it (SIGKILL: no close, no flush, no
/// destructor) once one reaches `at_least`; returns that count.
fn kill_child_once_it_counts(name: &str, env: (&str, &Path), prefix: &str, at_least: u64) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut count = 0;
    for line in stdout.lines() {
        if let Some(n) = line.unwrap().strip_prefix(prefix) {
            count = n.parse().unwrap();
            if count >= at_least {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(count >= at_least, "the child counted {count}");
    count
}

/// The child process of the kill test: spools forever (nothing listens on its bootstrap port)
/// and prints how many reports said `Spooled`, until it is killed.
fn spool_forever(dir: &Path) -> ! {
    let producer = Producer::new(
        ConfigBuilder::default()
            .brokers("127.0.0.1:1")
            .set("message.timeout.ms", "200ms")
            .set("retry.max", "0")
            .set("breaker.enabled", "true")
            .set("breaker.consecutive.failures", "1")
            .set("breaker.timeout.ms", "1h")
            .set("spool.dir", dir.to_str().unwrap())
            .set("spool.fsync", "never")
            .build()
            .unwrap(),
    )
    .unwrap();
    let spooled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for i in 0.. {
        let counter = spooled.clone();
        producer
            .send(
                &Record::new("killed")
                    .key(format!("k-{}", i % 7).as_bytes())
                    .value(format!("m-{i}").as_bytes()),
                move |report| {
                    if matches!(report.outcome, Outcome::Spooled { .. }) {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                },
            )
            .unwrap();
        if i % 50 == 0 {
            let mut out = std::io::stdout();
            let count = spooled.load(std::sync::atomic::Ordering::Relaxed);
            if writeln!(out, "spooled {count}")
                .and_then(|()| out.flush())
                .is_err()
            {
                std::process::exit(0); // the parent stopped listening: it is about to kill us
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    unreachable!()
}

#[test]
fn a_producer_killed_while_spooling_loses_nothing_and_a_torn_record_is_skipped() {
    let _outages = common::beside_others();
    if let Ok(dir) = std::env::var(CHILD_SPOOL_DIR) {
        spool_forever(Path::new(&dir));
    }
    let dir = temp_dir("killed");
    let reported = kill_child_once_it_counts(
        "a_producer_killed_while_spooling_loses_nothing_and_a_torn_record_is_skipped",
        (CHILD_SPOOL_DIR, &dir),
        "spooled ",
        500,
    );

    // What a crash in the middle of a write leaves: the start of one more record.
    let files = spool::inspect(&dir).unwrap();
    let mut spooled_values = HashSet::new();
    for file in &files {
        assert!(file.torn.is_none(), "{file:?}");
        for message in spool::SpoolReader::open(&file.path).unwrap() {
            let value = message.unwrap().record.value.unwrap();
            assert!(spooled_values.insert(String::from_utf8(value).unwrap()));
        }
    }
    let on_disk = spooled_values.len() as u64;
    assert!(
        on_disk >= reported,
        "{on_disk} records on disk, {reported} reported spooled"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&files.last().unwrap().path)
        .unwrap()
        .write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'p', b'a', b'r', b't'])
        .unwrap();
    let inspected = spool::inspect(&dir).unwrap();
    assert!(
        inspected.last().unwrap().torn.is_some(),
        "inspect reports the torn record"
    );

    // A new producer on the same directory replays everything by itself.
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("killed", 8, 1).unwrap();
    let producer = Producer::new(
        cluster
            .config()
            .set("spool.dir", dir.to_str().unwrap())
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(
        wait_until(LONG, || producer.metrics().replayed == on_disk),
        "replayed {:?} of {on_disk}",
        producer.metrics()
    );
    producer.flush(LONG).unwrap();
    let metrics = producer.metrics();
    assert_eq!(metrics.delivered, on_disk);
    assert_eq!(metrics.spool_torn_records, 1);
    let read = read_topic(cluster.bootstrap_servers(), "killed", LONG).unwrap();
    let read_values: HashSet<String> = values(&read).into_iter().collect();
    assert_eq!(read.len() as u64, on_disk, "no duplicates");
    assert_eq!(read_values, spooled_values, "every spooled message");
    assert!(
        wait_until(Duration::from_secs(5), || spool::inspect(&dir)
            .unwrap()
            .is_empty()),
        "the replayed file is deleted"
    );
    drop(producer);
    std::fs::remove_dir_all(&dir).unwrap();
}

const CHILD_JOURNAL_DIR: &str = "KS_TEST_CHILD_JOURNAL_DIR";

/// The child process of the journal kill test: accepts messages for brokers that never answer
/// (so librdkafka holds every one of them in memory) and prints how many `send` accepted.
fn journal_forever(dir: &Path) -> ! {
    let producer = Producer::new(
        ConfigBuilder::default()
            .brokers("127.0.0.1:1")
            .set("spool.dir", dir.to_str().unwrap())
            .set("spool.mode", "journal")
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut out = std::io::stdout();
    for i in 0.. {
        let value = format!("j-{i}");
        producer
            .send(&Record::new("journaled").key(b"k").value(&value), |_| {})
            .unwrap();
        if writeln!(out, "accepted {}", i + 1)
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(0); // the parent stopped listening: it is about to kill us
        }
        if i % 100 == 0 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    unreachable!()
}

#[test]
fn a_producer_killed_in_journal_mode_loses_no_accepted_message_and_the_next_one_sends_them_in_order(
) {
    let _outages = common::beside_others();
    if let Ok(dir) = std::env::var(CHILD_JOURNAL_DIR) {
        journal_forever(Path::new(&dir));
    }
    let dir = temp_dir("journal-killed");
    // SIGKILL: librdkafka's queue, with every message, is gone.
    let accepted = kill_child_once_it_counts(
        "a_producer_killed_in_journal_mode_loses_no_accepted_message_and_the_next_one_sends_them_in_order",
        (CHILD_JOURNAL_DIR, &dir),
        "accepted ",
        2_000,
    );

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("journaled", 1, 1).unwrap();
    let producer = Producer::new(
        cluster
            .config()
            .set("spool.dir", dir.to_str().unwrap())
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(
        wait_until(LONG, || producer.metrics().replayed >= accepted),
        "replayed {:?}, {accepted} accepted",
        producer.metrics()
    );
    producer.flush(LONG).unwrap();
    let read = read_topic(cluster.bootstrap_servers(), "journaled", LONG).unwrap();
    let numbers: Vec<u64> = values(&read)
        .iter()
        .map(|v| v.strip_prefix("j-").unwrap().parse().unwrap())
        .collect();
    assert!(
        numbers.len() as u64 >= accepted,
        "{} read back, {accepted} accepted",
        numbers.len()
    );
    assert_eq!(
        numbers,
        (0..numbers.len() as u64).collect::<Vec<_>>(),
        "every accepted message once, in order"
    );
    let ids: HashSet<_> = read
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == kafkasender::MESSAGE_ID_HEADER)
                .cloned()
        })
        .collect();
    assert_eq!(ids.len(), read.len(), "each with an id of its own");
    assert!(!ids.contains(&None));
    drop(producer);
    assert!(
        spool::inspect(&dir).unwrap().is_empty(),
        "the journal is gone once sent"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_needs_a_spool_and_a_second_producer_cannot_share_one_until_the_first_closes() {
    let _outages = common::beside_others();
    let cluster = MockCluster::new(1).unwrap();
    let producer = Producer::new(cluster.config().build().unwrap()).unwrap();
    assert_eq!(
        producer.replay_spool().unwrap_err().kind(),
        ErrorKind::Config
    );

    let dir = temp_dir("shared");
    let config = cluster.config().set("spool.dir", dir.to_str().unwrap());
    let first = Producer::new(config.clone().build().unwrap()).unwrap();
    let error = Producer::new(config.clone().build().unwrap())
        .err()
        .unwrap();
    assert!(error.message().contains("in use"), "{error}");
    assert_eq!(first.replay_spool().unwrap().records, 0);
    first.close(Duration::from_secs(1));
    let next =
        Producer::new(config.build().unwrap()).expect("a closed producer lets go of its spool");
    drop((first, next));
    std::fs::remove_dir_all(&dir).unwrap();
}
