//! `kafkasender produce`: one message per line from files or stdin.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kafkasender::{ErrorKind, Producer, Record};

use crate::tally::{delivery_rows, table, FirstErrors, PROGRESS};
use crate::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// The topic to produce to.
    #[arg(long)]
    topic: String,
    /// Parse each line as JSON and use this field as the message key.
    #[arg(long)]
    key_field: Option<String>,
    /// A header added to every message; repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = crate::parse_key_value)]
    headers: Vec<(String, String)>,
    /// How long to wait at the end for messages still in flight.
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    flush_timeout: Duration,
    /// Files to read, one message per line; stdin when none.
    files: Vec<PathBuf>,
}

pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    kafkasender::config::parse_duration(s)
        .ok_or_else(|| format!("expected a duration like 30s, got {s:?}"))
}

pub fn run(args: &Args, overrides: &[(String, String)]) -> anyhow::Result<Exit> {
    // Once, before reading: not once per line.
    kafkasender::record::validate_topic(&args.topic)?;
    let producer = Producer::new(crate::config(overrides, None).build()?)?;
    let errors = FirstErrors::new();
    let progress = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        .with_style(ProgressStyle::with_template(PROGRESS)?);
    let mut inputs: Vec<(String, Box<dyn BufRead>)> = Vec::new();
    for path in &args.files {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        inputs.push((path.display().to_string(), Box::new(BufReader::new(file))));
    }
    if inputs.is_empty() {
        inputs.push(("stdin".into(), Box::new(BufReader::new(io::stdin().lock()))));
    }

    let started = Instant::now();
    let (mut sent, mut rejected) = (0u64, 0u64);
    let mut line = Vec::new();
    for (name, mut input) in inputs {
        let mut number = 0u64;
        loop {
            line.clear();
            if input
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {name}"))?
                == 0
            {
                break;
            }
            number += 1;
            let value = strip_newline(&line);
            let outcome = key_of(value, args.key_field.as_deref()).and_then(|key| {
                let mut record = Record::new(&args.topic).value(value);
                record.key = key.as_deref().map(str::as_bytes);
                for (k, v) in &args.headers {
                    record = record.header(k, v);
                }
                producer
                    .send(&record, errors.callback(&progress))
                    .map_err(|e| {
                        errors.refused(&e);
                        e.to_string()
                    })
            });
            match outcome {
                Ok(()) => sent += 1,
                Err(why) => {
                    rejected += 1;
                    progress.suspend(|| eprintln!("{name}:{number}: {why}"));
                }
            }
        }
    }
    let flushed = producer.flush(args.flush_timeout);
    let elapsed = started.elapsed();
    let close = producer.close(Duration::ZERO);
    progress.finish_and_clear();
    if let Err(error) = flushed {
        eprintln!("flush: {error} ({} purged)", close.purged);
    }

    let metrics = producer.metrics();
    let rows = delivery_rows(&metrics, rejected, elapsed);
    eprint!(
        "{}",
        table(&format!("kafkasender produce → {}", args.topic), &rows)
    );
    for line in errors.lines(&metrics) {
        eprintln!("  {line}");
    }
    Ok(if errors.saw(ErrorKind::Authentication) {
        Exit::Authentication
    } else if rejected == 0 && metrics.failed == 0 && metrics.delivered == sent {
        Exit::Success
    } else {
        Exit::NotAllDelivered
    })
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The key from `field` of the line parsed as JSON: strings as they are, other values as JSON text.
fn key_of(line: &[u8], field: Option<&str>) -> Result<Option<String>, String> {
    let Some(field) = field else { return Ok(None) };
    let json: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| format!("not JSON ({e}), needed for --key-field"))?;
    match json.get(field) {
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Null) | None => Err(format!("no field {field:?} for the key")),
        Some(other) => Ok(Some(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_of_both_styles_are_stripped_and_nothing_else() {
        assert_eq!(strip_newline(b"a b\r\n"), b"a b");
        assert_eq!(strip_newline(b"x\n"), b"x");
        assert_eq!(strip_newline(b"last"), b"last");
        assert_eq!(strip_newline(b"\0bin\n"), b"\0bin");
    }

    #[test]
    fn keys_come_from_the_json_field_as_text() {
        assert_eq!(
            key_of(br#"{"user":"ann"}"#, Some("user")),
            Ok(Some("ann".into()))
        );
        assert_eq!(
            key_of(br#"{"user":42}"#, Some("user")),
            Ok(Some("42".into()))
        );
        assert_eq!(key_of(b"anything", None), Ok(None));
        assert!(key_of(b"not json", Some("user"))
            .unwrap_err()
            .starts_with("not JSON"));
        assert_eq!(
            key_of(br#"{"other":1}"#, Some("user")),
            Err("no field \"user\" for the key".into())
        );
        assert!(key_of(br#"{"user":null}"#, Some("user")).is_err());
    }
}
