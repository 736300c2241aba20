//! Named producers from one TOML file: shared `[defaults]` and `[producers.NAME]` tables that
//! override them, every key a kafkasender setting or librdkafka property. TOML because it is the
//! configuration format of Cargo and pyproject: comments, typed values, and tables for exactly
//! this shape. `KAFKA_*` variables still override what the file says.
//!
//! ```toml
//! [defaults]
//! "bootstrap.servers" = "127.0.0.1:9092"
//! linger.ms = 5                      # a dotted key: the same as "linger.ms"
//!
//! [producers.fast]
//! acks = "1"
//! enable.idempotence = false
//! compression.type = "lz4"
//!
//! [producers.reliable]
//! acks = "all"
//! spool.dir = "/var/lib/app/spool"
//! spool.mode = "journal"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, ConfigBuilder};
use crate::error::{ConfigProblem, Error, ErrorKind, Result};

/// The producers a file names, each with its settings (defaults first, then its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producers {
    by_name: BTreeMap<String, Vec<(String, String)>>,
}

impl Producers {
    /// Reads and checks `path`: every producer's configuration (with the `KAFKA_*` variables)
    /// must build; otherwise one [`ErrorKind::Config`] error lists every problem of every
    /// producer, each under `[producers.NAME]`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Producers> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Producers::from_toml(&text)
    }

    /// Like [`Producers::from_file`], from the file's text.
    pub fn from_toml(text: &str) -> Result<Producers> {
        let problem = |key: &str, message: String| ConfigProblem {
            key: key.to_string(),
            message,
        };
        let document: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::config(vec![problem("(file)", e.to_string())]))?;
        let mut problems = Vec::new();
        let mut defaults = Vec::new();
        let mut named = BTreeMap::new();
        for (key, value) in &document {
            match (key.as_str(), value) {
                ("defaults", toml::Value::Table(table)) => {
                    flatten("defaults", "", table, &mut defaults, &mut problems)
                }
                ("producers", toml::Value::Table(producers)) => {
                    for (name, value) in producers {
                        let place = format!("producers.{name}");
                        let mut pairs = Vec::new();
                        match value {
                            toml::Value::Table(table) => {
                                flatten(&place, "", table, &mut pairs, &mut problems)
                            }
                            _ => {
                                problems.push(problem(&place, "must be a table of settings".into()))
                            }
                        }
                        named.insert(name.clone(), pairs);
                    }
                }
                _ => problems.push(problem(
                    key,
                    "unknown: the file has [defaults] and [producers.NAME] tables".into(),
                )),
            }
        }
        if named.is_empty() && problems.is_empty() {
            problems.push(problem("producers", "no [producers.NAME] table".into()));
        }
        let by_name: BTreeMap<String, Vec<(String, String)>> = named
            .into_iter()
            .map(|(name, own)| (name, [defaults.clone(), own].concat()))
            .collect();
        let producers = Producers { by_name };
        for name in producers.by_name.keys() {
            if let Err(error) = producers.config(name) {
                problems.extend(error.problems().iter().map(|p| ConfigProblem {
                    key: format!("[producers.{name}] {}", p.key),
                    message: p.message.clone(),
                }));
            }
        }
        if problems.is_empty() {
            Ok(producers)
        } else {
            Err(Error::config(problems))
        }
    }

    /// The producers' names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// What the file sets for `name`, `[defaults]` first: for a builder of one's own (the CLI
    /// puts its own defaults before and `-X` options after). [`ErrorKind::Config`] for a name
    /// the file does not have.
    pub fn settings_of(&self, name: &str) -> Result<&[(String, String)]> {
        self.by_name.get(name).map(Vec::as_slice).ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "no producer named {name:?} (the file has: {})",
                    self.names().join(", ")
                ),
            )
        })
    }

    /// The builder of `name`: its settings, then the `KAFKA_*` variables.
    pub fn builder(&self, name: &str) -> Result<ConfigBuilder> {
        let builder = self
            .settings_of(name)?
            .iter()
            .fold(Config::builder(), |builder, (key, value)| {
                builder.set(key, value)
            });
        Ok(builder.with_env())
    }

    /// The configuration of `name` (see [`Producers::builder`]).
    pub fn config(&self, name: &str) -> Result<Config> {
        self.builder(name)?.build()
    }
}

/// Turns a table into `key = value` pairs, nested tables (dotted keys) joined with `.`.
fn flatten(
    place: &str,
    prefix: &str,
    table: &toml::Table,
    pairs: &mut Vec<(String, String)>,
    problems: &mut Vec<ConfigProblem>,
) {
    for (key, value) in table {
        let key = format!("{prefix}{key}");
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Table(inner) => {
                flatten(place, &format!("{key}."), inner, pairs, problems);
                continue;
            }
            other => {
                problems.push(ConfigProblem {
                    key: format!("[{place}] {key}"),
                    message: format!(
                        "expected a string, number or boolean, got {}",
                        other.type_str()
                    ),
                });
                continue;
            }
        };
        pairs.push((key, text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [defaults]
        "bootstrap.servers" = "127.0.0.1:9092"
        linger.ms = 5

        [producers.fast]
        acks = "1"
        enable.idempotence = false
        compression.type = "lz4"

        [producers.reliable]
        acks = "all"
        linger.ms = 20
    "#;

    #[test]
    fn named_producers_override_the_defaults() {
        let producers = Producers::from_toml(FILE).unwrap();
        assert_eq!(producers.names(), ["fast", "reliable"]);
        let fast = producers.config("fast").unwrap();
        assert_eq!(fast.get("acks"), Some("1"));
        assert_eq!(fast.get("compression.type"), Some("lz4"));
        assert_eq!(fast.get("linger.ms"), Some("5"));
        let reliable = producers.config("reliable").unwrap();
        assert_eq!(reliable.get("linger.ms"), Some("20"));
        assert_eq!(reliable.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        let error = producers.config("slow").unwrap_err();
        assert!(error.message().contains("fast, reliable"), "{error}");
    }

    #[test]
    fn environment_variables_override_the_file() {
        let producers = Producers::from_toml(FILE).unwrap();
        let config = producers
            .settings_of("fast")
            .unwrap()
            .iter()
            .fold(Config::builder(), |b, (k, v)| b.set(k, v))
            .with_env_vars([(
                "KAFKA_PRODUCER_FLUSH_FREQUENCY".to_string(),
                "7".to_string(),
            )])
            .build()
            .unwrap();
        assert_eq!(config.get("linger.ms"), Some("7"));
    }

    #[test]
    fn an_invalid_file_lists_every_problem_of_every_producer() {
        let error = Producers::from_toml(
            r#"
            colour = "blue"
            [defaults]
            "bootstrap.servers" = "127.0.0.1:9092"
            [producers.a]
            acks = "sometimes"
            servers = ["x", "y"]
            [producers.b]
            linger.ms = "soon"
            "#,
        )
        .unwrap_err();
        let keys: Vec<&str> = error.problems().iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"colour"), "{keys:?}");
        assert!(keys.contains(&"[producers.a] servers"), "{keys:?}");
        assert!(keys.contains(&"[producers.a] acks"), "{keys:?}");
        assert!(keys.contains(&"[producers.b] linger.ms"), "{keys:?}");
        let broken = Producers::from_toml("[producers.a\nacks = 1").unwrap_err();
        assert_eq!(broken.kind(), ErrorKind::Config);
        assert!(Producers::from_toml("").is_err());
    }
}
