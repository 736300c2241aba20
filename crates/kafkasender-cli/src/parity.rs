//! `kafkasender parity-run`: the Rust face's runner of the tests/parity scenarios. It reads the
//! steps of one scenario from stdin (the line protocol of tests/parity/run.py), plays them against
//! an in-process mock cluster (or, after `brokers 0`, the brokers its config names), and prints
//! one line per send, in send order:
//! `INDEX OUTCOME ERROR PARTITION` (tab-separated; OUTCOME `refused` when `send` returned an
//! error, ERROR `-` when there is none).

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use kafkasender::testing::{MockApi, MockCluster};
use kafkasender::{Config, DeliveryReport, Header, Producer, Record};

pub fn run() -> anyhow::Result<bool> {
    let mut cluster: Option<MockCluster> = None;
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut producer: Option<Producer> = None;
    let outcomes: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let field: Vec<&str> = line.split('\t').collect();
        let cluster_ = || cluster.as_ref().context("no brokers step before this one");
        let producer_ = || producer.as_ref().context("no start step before this one");
        let number = |i: usize| -> anyhow::Result<u64> {
            field
                .get(i)
                .context("a field is missing")?
                .parse()
                .context(line.clone())
        };
        match field[0] {
            "brokers" => match number(1)? {
                0 => cluster = None,
                n => cluster = Some(MockCluster::new(n as u16)?),
            },
            "topic" => cluster_()?.create_topic(field[1], number(2)? as i32, 1)?,
            "config" => settings.push((field[1].into(), field[2].into())),
            "start" => {
                let base = cluster
                    .as_ref()
                    .map_or_else(Config::builder, MockCluster::config);
                let config = settings.iter().fold(base, |b, (k, v)| b.set(k, v));
                producer = Some(Producer::new(config.build()?)?);
            }
            "send" => {
                let none = |s: &str| (s != "-").then(|| s.to_string());
                let size = number(4)? as usize;
                let value = if size > 0 {
                    Some("x".repeat(size))
                } else {
                    none(field[3])
                };
                let key = none(field[2]);
                let headers: Vec<(String, String)> = none(field[6])
                    .map(|h| {
                        h.split(',')
                            .filter_map(|kv| kv.split_once('='))
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let record = Record {
                    topic: field[1],
                    key: key.as_deref().map(str::as_bytes),
                    value: value.as_deref().map(str::as_bytes),
                    headers: headers
                        .iter()
                        .map(|(k, v)| Header {
                            key: k,
                            value: Some(v.as_bytes()),
                        })
                        .collect(),
                    partition: none(field[5]).map(|p| p.parse()).transpose()?,
                    timestamp: None,
                };
                let index = {
                    let mut outcomes = outcomes.lock().unwrap();
                    outcomes.push(None);
                    outcomes.len() - 1
                };
                let reported = outcomes.clone();
                let sent = producer_()?.send(&record, move |report: DeliveryReport| {
                    reported.lock().unwrap()[index] = Some(format!(
                        "{}\t{}\t{}",
                        report.outcome.as_str(),
                        report.error().map_or("-", |e| e.kind().as_str()),
                        report.partition
                    ));
                });
                if let Err(error) = sent {
                    outcomes.lock().unwrap()[index] =
                        Some(format!("refused\t{}\t-1", error.kind().as_str()));
                }
            }
            "flush" => drop(producer_()?.flush(Duration::from_millis(number(1)?))),
            "close" => drop(producer_()?.close(Duration::from_millis(number(1)?))),
            "down" => cluster_()?.broker_down(number(1)? as i32)?,
            "up" => cluster_()?.broker_up(number(1)? as i32)?,
            "sleep" => std::thread::sleep(Duration::from_millis(number(1)?)),
            "errors" => {
                let codes: Vec<i32> = field[2]
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
                cluster_()?.push_request_errors(MockApi::from_name(field[1])?, &codes)?;
            }
            other => bail!("unknown step {other:?}"),
        }
    }
    if let Some(producer) = &producer {
        producer.close(Duration::from_secs(10)); // every report is in once close returns
    }
    for (index, outcome) in outcomes.lock().unwrap().iter().enumerate() {
        println!(
            "{index}\t{}",
            outcome.as_deref().unwrap_or("unreported\t-\t-1")
        );
    }
    Ok(true)
}
