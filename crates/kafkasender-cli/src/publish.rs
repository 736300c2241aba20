//! `kafkasender publish`: one business event (a CloudEvents envelope) to the topic its type maps
//! to (event.topic.map), waiting for its report.

use std::time::Duration;

use anyhow::Context as _;
use kafkasender::events::EventBuilder;
use kafkasender::Producer;

use crate::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// The event type, a dotted name: user.registered.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: String,
    /// The event's data, as JSON.
    #[arg(long, value_name = "JSON")]
    data: String,
    /// Who publishes it.
    #[arg(long, default_value = "kafkasender-cli")]
    source: String,
    /// The version of the event type's schema.
    #[arg(long)]
    version: Option<String>,
    /// The correlation id (default: a new one).
    #[arg(long)]
    correlation_id: Option<String>,
    /// The id of the event that caused this one.
    #[arg(long)]
    causation_id: Option<String>,
    /// How long to wait for the report.
    #[arg(long, default_value = "30s", value_parser = crate::produce::parse_timeout)]
    timeout: Duration,
}

pub fn run(args: &Args, overrides: &[(String, String)]) -> anyhow::Result<Exit> {
    let data = serde_json::from_str(&args.data).context("--data is not JSON")?;
    let mut builder = EventBuilder::new(&args.source);
    if let Some(version) = &args.version {
        builder = builder.version(version);
    }
    if let Some(correlation_id) = &args.correlation_id {
        builder = builder.correlation_id(correlation_id);
    }
    let mut event = builder.event(&args.event_type, data);
    event.causation_id = args.causation_id.clone();
    let producer = Producer::new(crate::config(overrides, None).build()?)?;
    let record = producer.event_record(&event)?;
    let report = producer.send_and_wait(&record.as_record(), args.timeout);
    producer.close(args.timeout);
    match report {
        Ok(report) => {
            println!(
                "published {} ({}) to {} [{}] at offset {}",
                event.id, event.event_type, report.topic, report.partition, report.offset
            );
            Ok(Exit::Success)
        }
        Err(error) => {
            eprintln!("kafkasender: event {} not published: {error}", event.id);
            Ok(Exit::Failed)
        }
    }
}
