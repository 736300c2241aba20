//! `kafkasender spool inspect DIR` and `kafkasender spool replay DIR`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kafkasender::Producer;

use crate::tally::{delivery_rows, table, thousands};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Show what a spool directory holds: files, records per topic and reason, torn records.
    /// Read-only: works while a producer owns the directory.
    Inspect {
        /// The spool directory (spool.dir).
        dir: PathBuf,
    },
    /// Re-send everything a spool directory holds to its topics, then report where it went.
    /// Needs the brokers (KAFKA_BROKERS or -X bootstrap.servers=…) and no producer on the directory.
    Replay {
        /// The spool directory (spool.dir).
        dir: PathBuf,
        /// How long to wait for the replayed messages to be reported.
        #[arg(long, default_value = "60s", value_parser = crate::produce::parse_timeout)]
        flush_timeout: Duration,
    },
}

pub fn run(command: &Command, overrides: &[(String, String)]) -> anyhow::Result<bool> {
    match command {
        Command::Inspect { dir } => inspect(dir),
        Command::Replay { dir, flush_timeout } => replay(dir, *flush_timeout, overrides),
    }
}

fn inspect(dir: &Path) -> anyhow::Result<bool> {
    let files = kafkasender::spool::inspect(dir)?;
    if files.is_empty() {
        println!("{}: no spool files", dir.display());
        return Ok(true);
    }
    let mut clean = true;
    for file in &files {
        println!(
            "{}  {} records  {} bytes",
            file.path.display(),
            thousands(file.records),
            thousands(file.bytes)
        );
        for (topic, n) in &file.topics {
            println!("  topic {topic}: {}", thousands(*n));
        }
        for (reason, n) in &file.reasons {
            println!("  reason {reason}: {}", thousands(*n));
        }
        if let Some(torn) = &file.torn {
            clean = false;
            println!(
                "  torn record at byte {}: {} (skipped by replays)",
                torn.offset, torn.reason
            );
        }
    }
    let total: u64 = files.iter().map(|f| f.records).sum();
    println!("{} records in {} files", thousands(total), files.len());
    Ok(clean)
}

fn replay(
    dir: &Path,
    flush_timeout: Duration,
    overrides: &[(String, String)],
) -> anyhow::Result<bool> {
    let dir_setting = [("spool.dir".to_string(), dir.display().to_string())];
    let config = crate::config(&[overrides, &dir_setting[..]].concat(), None).build()?;
    let started = Instant::now();
    // A producer replays the spool it starts on by itself; this call waits for whatever that
    // replay has not taken yet, and gives the report of what it took.
    let producer = Producer::new(config)?;
    let report = producer.replay_spool()?;
    let flushed = producer.flush(flush_timeout);
    let elapsed = started.elapsed();
    producer.close(Duration::ZERO);
    if let Err(error) = flushed {
        eprintln!("flush: {error}");
    }
    let metrics = producer.metrics();
    let mut rows = delivery_rows(&metrics, 0, elapsed);
    rows.insert(0, ("replayed from the spool", thousands(metrics.replayed)));
    rows.insert(
        1,
        (
            "found in the topic already, not sent",
            thousands(metrics.already_written),
        ),
    );
    rows.push((
        "torn records skipped",
        thousands(metrics.spool_torn_records),
    ));
    eprint!(
        "{}",
        table(
            &format!("kafkasender spool replay {}", dir.display()),
            &rows
        )
    );
    for torn in &report.torn {
        eprintln!(
            "  torn: {} at byte {}: {}",
            torn.path.display(),
            torn.offset,
            torn.reason
        );
    }
    Ok(metrics.failed == 0 && metrics.spooled == 0 && metrics.dead_lettered == 0)
}
