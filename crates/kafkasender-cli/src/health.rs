//! `kafkasender health`: one active check of the cluster a producer with this configuration would
//! use, printed, with an exit status a container probe can take (1: unhealthy).

use std::time::Duration;

use kafkasender::{HealthStatus, Producer};

use crate::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// How long a broker may take to answer.
    #[arg(long, default_value = "5s", value_parser = crate::produce::parse_timeout)]
    timeout: Duration,
    /// Print one JSON object ({"status": …, "reasons": […]}) instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, overrides: &[(String, String)]) -> anyhow::Result<Exit> {
    let config = crate::config(overrides, None).build()?;
    let producer = Producer::new(config)?;
    let health = producer.check_health(args.timeout);
    producer.close(Duration::ZERO);
    if args.json {
        let json = serde_json::json!({"status": health.status.as_str(), "reasons": health.reasons});
        println!("{json}");
    } else {
        println!("{}", health.status);
        for reason in &health.reasons {
            println!("  {reason}");
        }
    }
    Ok(if health.status == HealthStatus::Unhealthy {
        Exit::Failed
    } else {
        Exit::Success
    })
}
