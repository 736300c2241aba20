//! `kafkasender mock-cluster`: serves an in-process mock cluster to other processes (benchmarks
//! and tests in other languages) until stdin closes or the process is stopped.
//!
//! The first line it prints is the bootstrap address. The mock has no CreateTopics API, so topics
//! are made through stdin: each line `topic NAME PARTITIONS` is answered with `ok` or
//! `error MESSAGE` on stdout.

use std::io::{BufRead, Write};

use anyhow::Context as _;
use kafkasender::testing::MockCluster;

#[derive(clap::Args)]
pub struct Args {
    /// Number of brokers.
    #[arg(long, default_value_t = 3)]
    brokers: u16,
    /// Topics to create, as NAME:PARTITIONS; repeatable.
    #[arg(long = "topic", value_name = "NAME:PARTITIONS")]
    topics: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<bool> {
    let cluster = MockCluster::new(args.brokers)?;
    let replication = i32::from(args.brokers).min(3);
    for topic in &args.topics {
        let (name, partitions) = topic.split_once(':').unwrap_or((topic, "4"));
        cluster.create_topic(name, partitions.parse()?, replication)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", cluster.bootstrap_servers())?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match create_topic_command(&cluster, &line, replication) {
            Ok(()) => "ok".to_string(),
            Err(error) => format!("error {error:#}"),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(true)
}

fn create_topic_command(cluster: &MockCluster, line: &str, replication: i32) -> anyhow::Result<()> {
    let mut words = line.split_whitespace();
    let (Some("topic"), Some(name), Some(partitions), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        anyhow::bail!("expected `topic NAME PARTITIONS`, got {line:?}");
    };
    let partitions = partitions.parse().context("PARTITIONS")?;
    cluster.create_topic(name, partitions, replication)?;
    Ok(())
}
