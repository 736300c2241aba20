//! The producer against librdkafka's mock cluster (real Kafka protocol, in process). Every delivery
//! claim is checked by reading the topic back with an independent consumer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kafkasender::testing::{read_topic, ConsumedRecord, MockApi, MockCluster};
use kafkasender::{Config, DeliveryReport, ErrorKind, Producer, Record, MESSAGE_ID_HEADER};

mod common;
use common::{value_of, Reports};

const READ_TIMEOUT: Duration = Duration::from_secs(60);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

fn cluster_with_topic(topic: &str, partitions: i32) -> MockCluster {
    let cluster = MockCluster::new(3).expect("mock cluster");
    cluster.create_topic(topic, partitions, 3).expect("topic");
    cluster
}

/// Makes sure nothing gets acknowledged: the brokers refuse new connections, and a connection that
/// is still open (the mock does not always cut it at once) answers only after a minute.
fn stall(cluster: &MockCluster) {
    for broker in cluster.broker_ids() {
        cluster
            .set_round_trip_time(broker, Duration::from_secs(60))
            .unwrap();
        cluster.broker_down(broker).unwrap();
    }
}

/// A producer that has connected and delivered once (so its idempotent producer id and metadata
/// are in place), on a cluster that then acknowledges nothing more.
fn stalled_producer(
    cluster: &MockCluster,
    topic: &str,
    config: kafkasender::ConfigBuilder,
) -> Producer {
    let producer = Producer::new(config.build().unwrap()).unwrap();
    producer
        .send_and_wait(&Record::new(topic).value("warm-up"), FLUSH_TIMEOUT)
        .unwrap();
    stall(cluster);
    producer
}

fn producer(cluster: &MockCluster) -> Producer {
    Producer::new(cluster.config().build().unwrap()).unwrap()
}

/// Sends `records` with `send_batch` and waits for the batch's one callback.
fn send_batch_and_wait(producer: &Producer, records: &[Record<'_>]) -> Vec<DeliveryReport> {
    let (sender, receiver) = mpsc::channel();
    producer
        .send_batch(
            records,
            Box::new(move |reports| sender.send(reports).unwrap()),
        )
        .unwrap();
    receiver.recv_timeout(FLUSH_TIMEOUT).unwrap()
}

#[test]
fn every_report_matches_what_a_consumer_reads_back() {
    let _outages = common::beside_others();
    let topic = "orders";
    let cluster = cluster_with_topic(topic, 6);
    // Message ids on (without a spool, `auto` leaves them out).
    let config = cluster.config().set("message.id.header", MESSAGE_ID_HEADER);
    let producer = Producer::new(config.build().unwrap()).unwrap();
    let reports = Reports::default();
    let n = 2_000;
    for i in 0..n {
        let key = format!("customer-{}", i % 37);
        let value = format!("order-{i}");
        let seq = i.to_string();
        let record = Record::new(topic)
            .key(&key)
            .value(&value)
            .header("seq", &seq)
            .header("source", "test");
        producer.send(&record, reports.callback()).unwrap();
    }
    producer.flush(FLUSH_TIMEOUT).unwrap();
    let reports = reports.take();
    assert_eq!(reports.len(), n);
    assert!(reports
        .iter()
        .all(|r| r.is_delivered() && r.topic == topic && r.attempts == 1));

    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(read.len(), n, "count read back");
    let by_position: HashMap<(i32, i64), &ConsumedRecord> =
        read.iter().map(|r| ((r.partition, r.offset), r)).collect();
    let mut key_partitions: HashMap<Vec<u8>, HashSet<i32>> = HashMap::new();
    for report in &reports {
        let landed = by_position
            .get(&(report.partition, report.offset))
            .unwrap_or_else(|| {
                panic!(
                    "nothing at the reported {}/{}",
                    report.partition, report.offset
                )
            });
        assert_eq!(
            landed.key.as_deref(),
            report.key.as_deref(),
            "the reported key is the one stored at the reported offset"
        );
        key_partitions
            .entry(report.key.clone().unwrap().to_vec())
            .or_default()
            .insert(report.partition);
    }
    assert!(
        key_partitions.values().all(|p| p.len() == 1),
        "one partition per key"
    );

    // Payloads, keys and headers, and per-key order: sequence numbers rise within each key.
    let mut last_seq_per_key: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut seen = HashSet::new();
    let mut ids = HashSet::new();
    for record in &read {
        let mut headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref().unwrap()))
            .collect();
        // The id header comes last, after the caller's own, and is unique per message.
        let (id_key, id) = headers.pop().unwrap();
        assert_eq!(id_key, MESSAGE_ID_HEADER);
        assert!(ids.insert(id.to_vec()), "message ids are unique");
        let seq: usize = std::str::from_utf8(headers[0].1).unwrap().parse().unwrap();
        assert_eq!(
            headers,
            vec![
                ("seq", seq.to_string().as_bytes()),
                ("source", b"test".as_slice())
            ]
        );
        assert_eq!(value_of(record), format!("order-{seq}"));
        assert_eq!(
            record.key.as_deref(),
            Some(format!("customer-{}", seq % 37).as_bytes())
        );
        let key = record.key.clone().unwrap();
        if let Some(previous) = last_seq_per_key.insert(key, seq) {
            assert!(
                previous < seq,
                "per-key order broken: {previous} before {seq}"
            );
        }
        assert!(seen.insert(seq), "duplicate {seq}");
    }
}

#[test]
fn a_message_whose_id_is_its_only_header_lands_with_its_own_id() {
    // Such a message's header list is reused from a delivered one, its value written over: sent
    // in rounds, each after the previous one's reports, every round but the first reuses lists.
    let topic = "ids";
    let cluster = cluster_with_topic(topic, 3);
    let config = cluster.config().set("message.id.header", MESSAGE_ID_HEADER);
    let producer = Producer::new(config.build().unwrap()).unwrap();
    let (rounds, per_round) = (5, 400);
    for round in 0..rounds {
        for i in 0..per_round {
            let value = format!("{}", round * per_round + i);
            producer
                .send(&Record::new(topic).value(&value), |_| {})
                .unwrap();
        }
        producer.flush(FLUSH_TIMEOUT).unwrap();
    }
    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(read.len(), rounds * per_round);
    let mut sequences = HashSet::new();
    for record in &read {
        let [(name, Some(id))] = record.headers.as_slice() else {
            panic!("one id header: {:?}", record.headers);
        };
        assert_eq!(name, MESSAGE_ID_HEADER);
        // Ids are the producer's prefix, `-`, and a sequence number in hex drawn in send order.
        let (_, sequence) = std::str::from_utf8(id).unwrap().split_once('-').unwrap();
        let sequence = u64::from_str_radix(sequence, 16).unwrap();
        let sent: u64 = value_of(record).parse().unwrap();
        assert_eq!(sequence, sent, "the id drawn for this very message");
        assert!(sequences.insert(sequence));
    }
}

#[test]
fn oversized_records_and_invalid_topics_are_rejected_and_nothing_is_enqueued() {
    let _outages = common::beside_others();
    let cluster = cluster_with_topic("valid", 1);
    let producer = Producer::new(
        cluster
            .config()
            .set("message.max.bytes", "10000")
            .build()
            .unwrap(),
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counting = || {
        let calls = calls.clone();
        move |_: kafkasender::DeliveryReport| {
            calls.fetch_add(1, Ordering::SeqCst);
        }
    };

    let big = vec![b'x'; 10_001];
    let error = producer
        .send(&Record::new("valid").value(&big), counting())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MessageTooLarge);
    assert!(!error.is_retriable());
    for topic in ["", "bad topic", "a/b", ".."] {
        let error = producer
            .send(&Record::new(topic).value("v"), counting())
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRecord, "{topic:?}");
    }
    let error = producer
        .send(&Record::new("valid").value("v").partition(-3), counting())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRecord);

    assert_eq!(producer.in_flight(), 0);
    producer
        .send_and_wait(&Record::new("valid").value("fits"), FLUSH_TIMEOUT)
        .unwrap();
    producer.close(FLUSH_TIMEOUT);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "rejected sends never call back"
    );
    let read = read_topic(cluster.bootstrap_servers(), "valid", READ_TIMEOUT).unwrap();
    assert_eq!(read.len(), 1, "only the valid record landed");
}

#[test]
fn broker_down_and_up_mid_stream_loses_and_duplicates_nothing() {
    let _outages = common::alone();
    let topic = "resilient";
    let cluster = cluster_with_topic(topic, 6);
    let producer = producer(&cluster);
    let reports = Reports::default();
    let n = 10_000;
    for i in 0..n {
        if i == n / 3 {
            cluster.broker_down(2).unwrap();
        }
        if i == 2 * n / 3 {
            thread::sleep(Duration::from_millis(500));
            cluster.broker_up(2).unwrap();
        }
        let key = format!("k{}", i % 50);
        let value = i.to_string();
        producer
            .send(
                &Record::new(topic).key(&key).value(&value),
                reports.callback(),
            )
            .unwrap();
    }
    producer.flush(FLUSH_TIMEOUT).unwrap();
    let reports = reports.take();
    assert_eq!(reports.len(), n);
    let failed: Vec<_> = reports.iter().filter_map(DeliveryReport::error).collect();
    assert!(failed.is_empty(), "failed: {:?}", failed.first());

    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    let values: Vec<usize> = read.iter().map(|r| value_of(r).parse().unwrap()).collect();
    let unique: HashSet<usize> = values.iter().copied().collect();
    assert_eq!(unique.len(), n, "lost {}", n - unique.len());
    assert_eq!(
        values.len(),
        n,
        "duplicates: {}",
        values.len() - unique.len()
    );
}

#[test]
fn close_with_messages_in_flight_reports_each_exactly_once() {
    let _outages = common::beside_others();
    let topic = "stalled";
    let cluster = cluster_with_topic(topic, 3);
    let producer = stalled_producer(&cluster, topic, cluster.config());
    let calls: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let n = 500;
    for i in 0..n {
        let calls = calls.clone();
        producer
            .send(&Record::new(topic).value("never"), move |report| {
                assert_eq!(report.error().unwrap().kind(), ErrorKind::Closed);
                *calls.lock().unwrap().entry(i).or_default() += 1;
            })
            .unwrap();
    }
    let report = producer.close(Duration::from_millis(300));
    assert_eq!(report.in_flight_at_close, n);
    assert_eq!(report.purged, n as u64);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), n, "every message reported when close returns");
    assert!(calls.values().all(|&c| c == 1), "each exactly once");

    let error = producer
        .send(&Record::new(topic).value("late"), |_| {})
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Closed);
    assert!(producer.close(Duration::ZERO).already_closed);
}

#[test]
fn a_batch_send_goes_in_whole_when_the_brokers_take_nothing() {
    // A batch send waits while `batch.run.ahead.messages` (20,000) are queued and the brokers keep
    // taking them; brokers that take none must not hold it: every record goes into librdkafka's
    // queue, after one wait of 100 ms (one per stretch of 1,024 records past the first 20,000
    // would be 4 s).
    let _outages = common::beside_others();
    let topic = "stalled-batch";
    let cluster = cluster_with_topic(topic, 3);
    let producer = stalled_producer(&cluster, topic, cluster.config());
    let records: Vec<Record<'_>> = (0..60_000)
        .map(|_| Record::new(topic).value("never"))
        .collect();
    let (sender, receiver) = mpsc::channel();
    let started = Instant::now();
    producer
        .send_batch(
            &records,
            Box::new(move |reports| sender.send(reports).unwrap()),
        )
        .unwrap();
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(2500), "held for {waited:?}");
    assert!(
        producer.metrics().queue_depth >= 60_000,
        "every record queued"
    );
    producer.close(Duration::from_millis(300));
    let reports = receiver.recv_timeout(FLUSH_TIMEOUT).unwrap();
    assert_eq!(reports.len(), 60_000);
    assert!(reports
        .iter()
        .all(|r| r.error().map(|e| e.kind()) == Some(ErrorKind::Closed)));
}

#[test]
fn dropping_an_open_producer_reports_every_message_once() {
    let _outages = common::beside_others();
    let topic = "dropped";
    let cluster = cluster_with_topic(topic, 3);
    let config = cluster.config().close_timeout(Duration::from_millis(200));
    let producer = stalled_producer(&cluster, topic, config);
    let reports = Reports::default();
    for _ in 0..300 {
        producer
            .send(&Record::new(topic).value("in flight"), reports.callback())
            .unwrap();
    }
    drop(producer);
    let reports = reports.take();
    assert_eq!(reports.len(), 300);
    assert!(reports
        .iter()
        .all(|r| r.error().map(|e| e.kind()) == Some(ErrorKind::Closed)));
}

#[test]
fn dropping_the_last_handle_inside_a_callback_neither_deadlocks_nor_loses_reports() {
    let _outages = common::beside_others();
    let topic = "self-drop";
    let cluster = cluster_with_topic(topic, 1);
    let producer = Arc::new(producer(&cluster));
    let (done, finished) = mpsc::channel();
    let handle = Mutex::new(Some(producer.clone()));
    producer
        .send(&Record::new(topic).value("v"), move |report| {
            drop(handle.lock().unwrap().take()); // the last strong reference goes away on the delivery thread
            done.send(report.is_delivered()).unwrap();
        })
        .unwrap();
    drop(producer);
    assert!(finished.recv_timeout(Duration::from_secs(30)).unwrap());
}

#[test]
fn a_full_queue_applies_backpressure_and_delivers_everything() {
    let _outages = common::beside_others();
    let topic = "tiny-queue";
    let cluster = cluster_with_topic(topic, 2);
    let config = cluster
        .config()
        .set("queue.buffering.max.messages", "10")
        .build()
        .unwrap();
    let producer = Producer::new(config).unwrap();
    let reports = Reports::default();
    let n = 3_000;
    for i in 0..n {
        let value = i.to_string();
        producer
            .send(&Record::new(topic).value(&value), reports.callback())
            .expect("backpressure waits");
    }
    producer.flush(FLUSH_TIMEOUT).unwrap();
    assert!(reports.take().iter().all(DeliveryReport::is_delivered));
    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(read.len(), n);
}

#[test]
fn a_queue_that_stays_full_fails_with_queue_full_after_the_enqueue_timeout() {
    let _outages = common::beside_others();
    let topic = "blocked";
    let cluster = cluster_with_topic(topic, 1);
    let config = cluster
        .config()
        .set("queue.buffering.max.messages", "5")
        .enqueue_timeout(Duration::from_millis(400))
        .close_timeout(Duration::from_millis(100));
    let producer = stalled_producer(&cluster, topic, config);
    let reports = Reports::default();
    let mut accepted = 0;
    let (error, waited) = loop {
        let started = Instant::now();
        match producer.send(&Record::new(topic).value("queued"), reports.callback()) {
            Ok(()) => accepted += 1,
            Err(error) => break (error, started.elapsed()),
        }
        assert!(
            accepted <= 100,
            "a queue of 5 messages never filled: {:?}",
            reports.take().first()
        );
    };
    assert!(accepted >= 5, "only {accepted} accepted");
    assert_eq!(error.kind(), ErrorKind::QueueFull);
    assert!(error.is_retriable());
    assert!(
        waited >= Duration::from_millis(400),
        "waited only {waited:?}"
    );
    // try_send never waits: on the full queue it gives the callback back at once, unused.
    let started = Instant::now();
    let unused = Arc::new(AtomicUsize::new(0));
    let counter = unused.clone();
    match producer
        .try_send(&Record::new(topic).value("would wait"), move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
    {
        kafkasender::TrySend::WouldBlock(callback) => drop(callback),
        kafkasender::TrySend::Sent => panic!("the queue is full"),
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    producer.close(Duration::from_millis(100));
    assert_eq!(unused.load(Ordering::SeqCst), 0);
    assert_eq!(
        reports.len(),
        accepted,
        "the rejected send never calls back; the queued ones all do"
    );
}

#[test]
fn token_sends_report_to_the_sink_once_each_with_their_token() {
    let _outages = common::beside_others();
    let topic = "tokened";
    let cluster = cluster_with_topic(topic, 3);
    let producer = producer(&cluster);
    let record = |i: u64| format!("message {i}");
    let refused = producer.send_token(&Record::new(topic).value("no sink yet"), 0);
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::Config);
    let seen: Arc<Mutex<Vec<(u64, DeliveryReport)>>> = Arc::default();
    let sink = seen.clone();
    producer
        .set_report_sink(Box::new(move |token, report| {
            sink.lock().unwrap().push((token, report))
        }))
        .unwrap();
    let again = producer.set_report_sink(Box::new(|_, _| ()));
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Config);
    for i in 0..100u64 {
        let value = record(i);
        producer
            .send_token(&Record::new(topic).key(&value).value(&value), i)
            .unwrap();
    }
    for i in 100..110u64 {
        let value = record(i);
        let sent = producer.try_send_token(&Record::new(topic).key(&value).value(&value), i);
        assert!(matches!(sent.unwrap(), kafkasender::TrySend::Sent));
    }
    // Callback sends and token sends share the producer.
    producer
        .send_and_wait(&Record::new(topic).value("with a callback"), FLUSH_TIMEOUT)
        .unwrap();
    producer.flush(FLUSH_TIMEOUT).unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let tokens: HashSet<u64> = seen.iter().map(|(token, _)| *token).collect();
    assert_eq!((seen.len(), tokens.len()), (110, 110), "each token once");
    producer.close(FLUSH_TIMEOUT);
    let read = read_topic(cluster.bootstrap_servers(), topic, FLUSH_TIMEOUT).unwrap();
    assert_eq!(read.len(), 111);
    let by_position: HashMap<(i32, i64), &ConsumedRecord> =
        read.iter().map(|r| ((r.partition, r.offset), r)).collect();
    for (token, report) in &seen {
        assert!(report.is_delivered(), "{report:?}");
        // The binding that sent by token knows the topic and key: the report leaves them out.
        assert_eq!((report.topic.as_str(), report.key.as_deref()), ("", None));
        let landed = by_position[&(report.partition, report.offset)];
        assert_eq!(value_of(landed), record(*token), "the token's own message");
    }
}

#[test]
fn send_async_and_send_and_wait_report_delivery_and_errors() {
    let _outages = common::beside_others();
    let topic = "futures";
    let cluster = cluster_with_topic(topic, 2);
    let producer = producer(&cluster);
    let report = futures_executor::block_on(
        producer.send_async(&Record::new(topic).key("k").value("async")),
    )
    .unwrap();
    assert!(report.is_delivered());
    assert_eq!(report.key.as_deref(), Some(b"k".as_slice()));
    assert!(report.offset >= 0);
    let waited = producer
        .send_and_wait(&Record::new(topic).value("sync"), FLUSH_TIMEOUT)
        .unwrap();
    assert!(waited.offset >= 0);
    let error =
        futures_executor::block_on(producer.send_async(&Record::new("no such/topic"))).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRecord);

    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    let values: HashSet<String> = read.iter().map(value_of).collect();
    assert_eq!(
        values,
        HashSet::from(["async".to_string(), "sync".to_string()])
    );
}

#[test]
fn send_batch_reports_every_record_in_order_including_rejected_ones() {
    let _outages = common::beside_others();
    let topic = "batch";
    let cluster = cluster_with_topic(topic, 4);
    let producer = producer(&cluster);
    let values: Vec<String> = (0..1_000).map(|i| format!("b{i}")).collect();
    let mut records: Vec<Record<'_>> = values.iter().map(|v| Record::new(topic).value(v)).collect();
    records.insert(500, Record::new("bad topic").value("x"));
    let reports = send_batch_and_wait(&producer, &records);
    assert_eq!(reports.len(), 1_001);
    assert_eq!(
        reports[500].error().unwrap().kind(),
        ErrorKind::InvalidRecord
    );
    assert_eq!(reports.iter().filter(|r| r.is_delivered()).count(), 1_000);

    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(read.len(), 1_000);
    assert!(
        send_batch_and_wait(&producer, &[]).is_empty(),
        "an empty batch still calls back once"
    );
}

/// A batch mixes plain records (handed to librdkafka together) with ones that go the whole path
/// one by one (a header, an explicit partition, one too large); a small queue makes the plain runs
/// wait for room again and again. Every record is reported in place, and each key's records land
/// in batch order.
#[test]
fn send_batch_keeps_each_keys_order_through_a_full_queue_and_mixed_records() {
    let _outages = common::beside_others();
    let topic = "mixed";
    let cluster = cluster_with_topic(topic, 3);
    let config = cluster.config().set("queue.buffering.max.messages", "200");
    let producer = Producer::new(config.build().unwrap()).unwrap();
    let values: Vec<String> = (0..5_000).map(|i| i.to_string()).collect();
    let keys: Vec<String> = (0..5_000).map(|i| format!("k{}", i % 10)).collect();
    let mut records: Vec<Record<'_>> = (0..5_000)
        .map(|i| Record::new(topic).key(&keys[i]).value(&values[i]))
        .collect();
    let too_large = vec![b'x'; 2 << 20];
    records[1_000] = Record::new(topic).key("k0").value(&too_large);
    records[2_000] = records[2_000].clone().header("h", "v");
    records[3_000] = records[3_000].clone().partition(2);
    let reports = send_batch_and_wait(&producer, &records);
    assert_eq!(reports.len(), 5_000);
    assert_eq!(
        reports[1_000].error().unwrap().kind(),
        ErrorKind::MessageTooLarge
    );
    assert_eq!(reports.iter().filter(|r| r.is_delivered()).count(), 4_999);
    assert_eq!(reports[3_000].partition, 2);
    for (report, record) in reports.iter().zip(&records) {
        assert_eq!(report.key.as_deref(), record.key, "reports in record order");
    }

    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(read.len(), 4_999);
    let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
    for record in read
        .iter()
        .filter(|r| r.partition != 2 || value_of(r) != "3000")
    {
        let n: i64 = value_of(record).parse().unwrap();
        let previous = last.insert(record.key.clone().unwrap(), n);
        assert!(
            previous.is_none_or(|p| p < n),
            "key order: {previous:?} then {n}"
        );
    }
    let with_header = read.iter().find(|r| value_of(r) == "2000").unwrap();
    assert_eq!(
        with_header.headers,
        [("h".to_string(), Some(b"v".to_vec()))]
    );
}

#[test]
fn a_panicking_callback_is_contained_and_later_reports_still_arrive() {
    let _outages = common::beside_others();
    let topic = "panics";
    let cluster = cluster_with_topic(topic, 1);
    let producer = producer(&cluster);
    producer
        .send(&Record::new(topic).value("boom"), |_| panic!("user bug"))
        .unwrap();
    let report = producer
        .send_and_wait(&Record::new(topic).value("fine"), FLUSH_TIMEOUT)
        .unwrap();
    assert!(report.is_delivered());
    assert_eq!(producer.metrics().callback_panics, 1);
}

#[test]
fn many_threads_can_share_one_producer() {
    let _outages = common::beside_others();
    let topic = "threads";
    let cluster = cluster_with_topic(topic, 4);
    let producer = Arc::new(producer(&cluster));
    let reports = Reports::default();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let producer = producer.clone();
            let reports = reports.clone();
            thread::spawn(move || {
                for i in 0..500 {
                    let value = format!("{t}-{i}");
                    producer
                        .send(
                            &Record::new(topic).key(&t.to_string()).value(&value),
                            reports.callback(),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    producer.flush(FLUSH_TIMEOUT).unwrap();
    assert_eq!(reports.len(), 4_000);
    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(
        read.iter().map(value_of).collect::<HashSet<_>>().len(),
        4_000
    );
}

#[test]
fn conflicts_found_only_by_librdkafka_are_config_errors() {
    let _outages = common::beside_others();
    let config = Config::from_map([
        ("bootstrap.servers", "127.0.0.1:1"),
        ("message.timeout.ms", "1000"),
        ("linger.ms", "2000"),
    ])
    .unwrap();
    let error = Producer::new(config).err().unwrap();
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
}

#[test]
fn prometheus_output_parses_and_its_counters_match_the_reports() {
    let _outages = common::beside_others();
    let topic = "metrics";
    let cluster = cluster_with_topic(topic, 2);
    let config = cluster.config().client_id("metrics-test");
    let producer = stalled_producer(&cluster, topic, config);
    // The warm-up delivered one; now 20 stall and are purged at close.
    let reports = Reports::default();
    for _ in 0..20 {
        producer
            .send(
                &Record::new(topic).key("k").value("0123456789"),
                reports.callback(),
            )
            .unwrap();
    }
    producer.close(Duration::from_millis(100));
    let reports = reports.take();
    let delivered = 1 + reports.iter().filter(|r| r.is_delivered()).count() as u64;
    let closed = reports
        .iter()
        .filter(|r| r.error().map(|e| e.kind()) == Some(ErrorKind::Closed))
        .count() as u64;
    assert_eq!(delivered + closed, 21);

    let snapshot = producer.metrics();
    assert_eq!(
        (snapshot.sent, snapshot.delivered, snapshot.failed),
        (21, delivered, closed)
    );
    assert_eq!(snapshot.purged, closed);
    assert_eq!(snapshot.in_flight, 0);
    assert_eq!(snapshot.bytes_sent, "warm-up".len() as u64 + 20 * 11);
    assert_eq!(snapshot.latency.count, delivered);

    let text = producer.metrics_prometheus();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let value = |name: &str, kind: Option<&str>| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && kind.is_none_or(|k| s.labels.get("kind") == Some(k)))
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"));
        assert_eq!(sample.labels.get("client_id"), Some("metrics-test"));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: unexpected {other:?}"),
        }
    };
    assert_eq!(value("kafkasender_messages_sent_total", None), 21.0);
    assert_eq!(
        value("kafkasender_messages_delivered_total", None),
        delivered as f64
    );
    assert_eq!(
        value("kafkasender_messages_failed_total", Some("closed")),
        closed as f64
    );
    assert_eq!(
        value("kafkasender_messages_failed_total", Some("timeout")),
        0.0
    );
    assert_eq!(value("kafkasender_messages_in_flight", None), 0.0);
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "kafkasender_delivery_latency_seconds")
        .expect("latency histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(
                buckets.len(),
                kafkasender::metrics::LATENCY_BUCKETS.len() + 1
            );
            assert!(
                buckets.windows(2).all(|b| b[0].count <= b[1].count),
                "cumulative"
            );
            assert_eq!(
                buckets.last().unwrap().count,
                delivered as f64,
                "+Inf counts all"
            );
        }
        other => panic!("latency is not a histogram: {other:?}"),
    }
    let states: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "kafkasender_breaker_state")
        .map(|s| (s.labels.get("state").unwrap().to_string(), s.value.clone()))
        .collect();
    assert_eq!(states.len(), 3, "{states:?}");
    assert!(
        states.contains(&("closed".into(), prometheus_parse::Value::Gauge(1.0))),
        "{states:?}"
    );
}

/// Polls `health` until it has `status`, for at most `limit`.
fn wait_for_health(
    producer: &Producer,
    status: kafkasender::HealthStatus,
    limit: Duration,
) -> kafkasender::Health {
    let deadline = Instant::now() + limit;
    loop {
        let health = producer.health();
        if health.status == status || Instant::now() > deadline {
            return health;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Takes every broker down. A connection that was open may survive broker_down in the mock; a
/// transport error on the next requests of `apis` drops it, and the downed broker then refuses
/// the reconnect.
fn all_brokers_down(cluster: &MockCluster, apis: &[MockApi]) {
    for broker in cluster.broker_ids() {
        cluster.broker_down(broker).unwrap();
    }
    for &api in apis {
        cluster.push_request_errors(api, &[-195; 8]).unwrap();
    }
}

/// Undoes [`all_brokers_down`].
fn all_brokers_up(cluster: &MockCluster, apis: &[MockApi]) {
    for &api in apis {
        cluster.clear_request_errors(api);
    }
    for broker in cluster.broker_ids() {
        cluster.broker_up(broker).unwrap();
    }
}

#[test]
fn an_idle_producer_whose_brokers_all_go_down_turns_unhealthy_by_asking_and_healthy_after() {
    let _outages = common::alone();
    use kafkasender::HealthStatus;
    let topic = "idle-health";
    let cluster = cluster_with_topic(topic, 3);
    let config = cluster
        .config()
        .set("statistics.interval.ms", "100")
        .set("health.check.interval.ms", "500");
    let producer = Producer::new(config.build().unwrap()).unwrap();
    producer
        .send_and_wait(&Record::new(topic).value("before"), FLUSH_TIMEOUT)
        .unwrap();
    let health = wait_for_health(&producer, HealthStatus::Healthy, Duration::from_secs(10));
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");

    // No traffic from here on: only the active check can notice.
    all_brokers_down(&cluster, &[MockApi::Metadata]);
    let went_down = Instant::now();
    let health = wait_for_health(&producer, HealthStatus::Unhealthy, Duration::from_secs(10));
    assert_eq!(health.status, HealthStatus::Unhealthy, "{health:?}");
    // The active check, or (when its statistics saw every broker down first) the passive one.
    let reason = health
        .reasons
        .iter()
        .find(|r| r.starts_with("no broker reachable: "))
        .unwrap_or_else(|| panic!("{health:?}"));
    // It names the brokers librdkafka knows, each with its state.
    assert!(
        cluster
            .bootstrap_servers()
            .split(',')
            .any(|address| reason.contains(&format!("{address}/"))),
        "{reason}"
    );
    assert!(
        went_down.elapsed() < Duration::from_secs(5),
        "took {:?}",
        went_down.elapsed()
    );

    all_brokers_up(&cluster, &[MockApi::Metadata]);
    let health = wait_for_health(&producer, HealthStatus::Healthy, Duration::from_secs(15));
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
}

#[test]
fn health_of_a_producer_that_never_reached_a_broker_names_the_bootstrap_servers() {
    use kafkasender::HealthStatus;
    let unreachable = || {
        let config = Config::builder()
            .brokers("127.0.0.1:1")
            .set("health.check.interval.ms", "300")
            .set("log.level", "off");
        Producer::new(config.build().unwrap()).unwrap()
    };
    let producer = unreachable();
    let checked = producer.check_health(Duration::from_millis(500));
    assert_eq!(checked.status, HealthStatus::Unhealthy, "{checked:?}");
    assert!(
        checked
            .reasons
            .iter()
            .any(|r| r.starts_with("no broker reachable")
                && r.ends_with("Bootstrap servers: 127.0.0.1:1")),
        "{checked:?}"
    );
    drop(producer);

    // The same through health() alone: the first call starts the check.
    let producer = unreachable();
    let health = wait_for_health(&producer, HealthStatus::Unhealthy, Duration::from_secs(5));
    assert_eq!(health.status, HealthStatus::Unhealthy, "{health:?}");
    producer.close(Duration::ZERO);
    assert_eq!(producer.health().reasons[0], "the producer is closed");
}

#[test]
fn health_goes_unhealthy_with_all_brokers_down_and_healthy_again_after() {
    let _outages = common::alone();
    use kafkasender::HealthStatus;
    let topic = "health";
    let cluster = cluster_with_topic(topic, 3);
    let config = cluster.config().set("statistics.interval.ms", "100");
    let producer = Producer::new(config.build().unwrap()).unwrap();
    producer
        .send_and_wait(&Record::new(topic).value("before"), FLUSH_TIMEOUT)
        .unwrap();
    let health = wait_for_health(&producer, HealthStatus::Healthy, Duration::from_secs(10));
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");

    all_brokers_down(&cluster, &[MockApi::Produce, MockApi::Metadata]);
    let (sender, outcome) = mpsc::channel();
    producer
        .send(
            &Record::new(topic).value("during"),
            Box::new(move |r| drop(sender.send(r))),
        )
        .unwrap();
    let health = wait_for_health(&producer, HealthStatus::Unhealthy, Duration::from_secs(20));
    assert_eq!(health.status, HealthStatus::Unhealthy, "{health:?}");
    assert!(
        health
            .reasons
            .iter()
            .any(|r| r.starts_with("no broker reachable")),
        "{health:?}"
    );

    all_brokers_up(&cluster, &[MockApi::Produce, MockApi::Metadata]);
    let health = wait_for_health(&producer, HealthStatus::Healthy, Duration::from_secs(30));
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    assert!(
        outcome.recv_timeout(FLUSH_TIMEOUT).unwrap().is_delivered(),
        "the message sent while down is delivered"
    );
    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    let values: HashSet<String> = read.iter().map(value_of).collect();
    assert_eq!(
        values,
        HashSet::from(["before".to_string(), "during".to_string()])
    );
    assert_eq!(read.len(), 2);
}

#[test]
fn a_rate_limit_of_1000_per_second_with_burst_100_paces_3000_messages_and_loses_none() {
    let _outages = common::beside_others();
    let topic = "paced";
    let cluster = cluster_with_topic(topic, 4);
    let config = cluster
        .config()
        .set("ratelimit.messages.per.second", "1000")
        .set("ratelimit.burst", "100");
    let producer = Producer::new(config.build().unwrap()).unwrap();
    let reports = Reports::default();
    let started = Instant::now();
    for i in 0..3_000 {
        let value = i.to_string();
        producer
            .send(&Record::new(topic).value(&value), reports.callback())
            .unwrap();
    }
    let elapsed = started.elapsed();
    // 100 at once, then 2,900 at 1,000 per second.
    assert!(
        elapsed >= Duration::from_millis(2_850),
        "3,000 sends took only {elapsed:?}"
    );
    producer.flush(FLUSH_TIMEOUT).unwrap();
    assert!(reports.take().iter().all(DeliveryReport::is_delivered));
    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(
        read.iter().map(value_of).collect::<HashSet<_>>().len(),
        3_000
    );
}

#[test]
fn a_send_the_rate_limit_would_hold_past_the_enqueue_timeout_fails_fast_as_rate_limited() {
    let _outages = common::beside_others();
    let topic = "limited";
    let cluster = cluster_with_topic(topic, 1);
    let config = cluster
        .config()
        .set("ratelimit.messages.per.second", "1")
        .set("ratelimit.burst", "1")
        .set("ratelimit.bytes.per.second", "1000")
        .enqueue_timeout(Duration::from_millis(100));
    let producer = Producer::new(config.build().unwrap()).unwrap();
    // Back to back: waiting for the first's delivery could outlast the second a new token takes.
    producer
        .send(&Record::new(topic).value("first"), |_| {})
        .unwrap();
    let started = Instant::now();
    let error = producer
        .send(&Record::new(topic).value("second"), |_| {
            panic!("never sent")
        })
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert!(error.is_retriable());
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "a hopeless wait is not waited out"
    );

    thread::sleep(Duration::from_millis(1_100));
    let big = vec![b'x'; 1_001];
    let error = producer
        .send(&Record::new(topic).value(&big), |_| panic!("never sent"))
        .unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::RateLimited,
        "larger than the byte bucket: {error}"
    );
    producer.close(FLUSH_TIMEOUT);
    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(read.len(), 1, "only the first message was sent");
}

#[test]
fn librdkafka_statistics_reach_a_statistics_callback_as_json() {
    let _outages = common::beside_others();
    let cluster = MockCluster::new(1).unwrap();
    let (sender, received) = mpsc::sync_channel::<String>(16);
    let producer = Producer::with_statistics(
        cluster
            .config()
            .set("statistics.interval.ms", "100")
            .build()
            .unwrap(),
        Some(Box::new(move |json| {
            let _ = sender.try_send(json.to_string());
        })),
    )
    .unwrap();
    producer
        .send_and_wait(&Record::new("stats").value("v"), FLUSH_TIMEOUT)
        .unwrap();
    let json = received.recv_timeout(Duration::from_secs(10)).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["type"], "producer");
    assert!(parsed["brokers"].is_object(), "{json}");
}

/// A message for a partition the topic does not have fails there; a client re-send must not let
/// the partitioner put it somewhere else (it did: the re-send lost the partition asked for).
#[test]
fn a_message_for_a_missing_partition_fails_and_is_never_moved_to_another() {
    let _outages = common::beside_others();
    let topic = "two-partitions";
    let cluster = cluster_with_topic(topic, 2);
    let producer = producer(&cluster);
    let error = producer
        .send_and_wait(
            &Record::new(topic).value("placed").partition(7),
            FLUSH_TIMEOUT,
        )
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnknownTopicOrPartition, "{error}");
    producer
        .send_and_wait(&Record::new(topic).value("after"), FLUSH_TIMEOUT)
        .unwrap();
    let read = read_topic(cluster.bootstrap_servers(), topic, READ_TIMEOUT).unwrap();
    assert_eq!(read.len(), 1, "only the second message landed: {read:?}");
}
