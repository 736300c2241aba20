//! `kafkasender mock-cluster`: serves an in-process mock cluster to other processes (benchmarks
//! and tests in other languages) until stdin closes or the process is stopped.

use std::io::{Read, Write};

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
    for topic in &args.topics {
        let (name, partitions) = topic.split_once(':').unwrap_or((topic, "4"));
        cluster.create_topic(name, partitions.parse()?, i32::from(args.brokers))?;
    }
    // The first line of stdout is the bootstrap address, for scripts to read.
    println!("{}", cluster.bootstrap_servers());
    std::io::stdout().flush()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(true)
}
