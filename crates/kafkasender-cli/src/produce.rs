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
    /// How long to wait at the end for messages still in flight (and for each commit).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    flush_timeout: Duration,
    /// Produce in transactions with this `transactional.id`: a `read_committed` consumer sees a
    /// group of lines all at once or, if its transaction aborts, not at all.
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// Lines per transaction (with --transactional-id).
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "transactional_id",
          value_parser = clap::value_parser!(u64).range(1..))]
    transaction_size: u64,
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
    let mut config = crate::config(overrides, None);
    if let Some(id) = &args.transactional_id {
        config = config.set("transactional.id", id);
    }
    let producer = Producer::new(config.build()?)?;
    let mut transaction = Transaction {
        producer: &producer,
        size: args
            .transactional_id
            .as_ref()
            .map(|_| args.transaction_size),
        timeout: args.flush_timeout,
        open: 0,
        aborted: 0,
    };
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
                transaction
                    .begin()
                    .and_then(|()| producer.send(&record, errors.callback(&progress)))
                    .map_err(|e| {
                        errors.refused(&e);
                        e.to_string()
                    })
            });
            match outcome {
                Ok(()) => {
                    sent += 1;
                    transaction.sent_one(&progress);
                }
                Err(why) => {
                    rejected += 1;
                    progress.suspend(|| eprintln!("{name}:{number}: {why}"));
                }
            }
        }
    }
    transaction.commit(&progress);
    let aborted = transaction.aborted;
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
    if aborted > 0 {
        eprintln!("  {aborted} transactions aborted: their lines are not visible to read_committed consumers");
    }
    Ok(if errors.saw(ErrorKind::Authentication) {
        Exit::Authentication
    } else if rejected == 0 && metrics.failed == 0 && metrics.delivered == sent {
        Exit::Success
    } else {
        Exit::Failed
    })
}

/// With --transactional-id: a transaction opened before the first line of each group and
/// committed after its last; without, nothing.
struct Transaction<'p> {
    producer: &'p Producer,
    /// Lines per transaction; `None` without transactions.
    size: Option<u64>,
    timeout: Duration,
    /// Lines sent in the open transaction.
    open: u64,
    aborted: u64,
}

impl Transaction<'_> {
    fn begin(&mut self) -> kafkasender::Result<()> {
        if self.size.is_some() && self.open == 0 {
            self.producer.begin_transaction()?;
        }
        Ok(())
    }

    fn sent_one(&mut self, progress: &ProgressBar) {
        self.open += 1;
        if Some(self.open) == self.size {
            self.commit(progress);
        }
    }

    /// Commits the open transaction; one that cannot commit is aborted (its lines are reported
    /// failed), so the next can begin.
    fn commit(&mut self, progress: &ProgressBar) {
        if self.size.is_none() || self.open == 0 {
            return;
        }
        self.open = 0;
        if let Err(error) = self.producer.commit_transaction(self.timeout) {
            self.aborted += 1;
            progress.suspend(|| eprintln!("commit: {error}"));
            if let Err(error) = self.producer.abort_transaction(self.timeout) {
                if error.kind() != ErrorKind::Transaction {
                    progress.suspend(|| eprintln!("abort: {error}"));
                }
            }
        }
    }
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
