//! `ks_config`: key/value pairs collected from C, validated when a producer is made.

use std::ffi::c_char;

use core::{Config, ConfigBuilder, Producers};

use crate::boundary::{arg_ref, arg_str, boundary, free_handle, registry, write_out, Failure};
use crate::ks_status;

/// A configuration being assembled: kafkasender settings and librdkafka properties. Opaque.
pub struct ks_config {
    builder: ConfigBuilder,
}

impl ks_config {
    /// Validates everything set so far (every problem at once, in ks_last_error()).
    pub(crate) fn build(&self) -> Result<Config, Failure> {
        Ok(self.builder.clone().build()?)
    }
}

/// Creates an empty configuration.
///
/// Ownership: the caller owns the result and frees it with ks_config_free().
/// Returns NULL only if kafkasender panicked. Does not block.
#[no_mangle]
pub extern "C" fn ks_config_new() -> *mut ks_config {
    boundary(|| {
        Ok(registry::add(Box::into_raw(Box::new(ks_config {
            builder: Config::builder(),
        }))))
    })
}

/// Creates a configuration from the process environment (`KAFKA_BROKERS`, `KAFKA_PRODUCER_*`,
/// `KAFKA_RDKAFKA_<PROPERTY>`, …). Invalid values are reported by ks_producer_new().
///
/// Ownership: the caller owns the result and frees it with ks_config_free().
/// Returns NULL only if kafkasender panicked. Does not block.
#[no_mangle]
pub extern "C" fn ks_config_from_env() -> *mut ks_config {
    boundary(|| {
        Ok(registry::add(Box::into_raw(Box::new(ks_config {
            builder: Config::builder().with_env(),
        }))))
    })
}

/// Reads a file of named producers (TOML: `[defaults]` and `[producers.NAME]` tables) and checks
/// every producer it names: KS_STATUS_CONFIG with every problem of every producer in
/// ks_last_error() otherwise. With a `name`, writes to `*config_out` a configuration of that
/// producer (the file's settings, then the `KAFKA_*` variables; ks_config_set() may override
/// more); with `name` NULL it only checks the file and `config_out` may be NULL.
///
/// Ownership: the caller owns `*config_out` and frees it with ks_config_free(). Blocking: reads
/// the file. Thread safety: any thread.
#[no_mangle]
pub extern "C" fn ks_config_from_file(
    path: *const c_char,
    name: *const c_char,
    config_out: *mut *mut ks_config,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes NUL-terminated strings or NULL.
        let path = unsafe { arg_str(path, "path") }?;
        let producers = Producers::from_file(path)?;
        if name.is_null() {
            return Ok(ks_status::Ok);
        }
        // SAFETY: as above.
        let name = unsafe { arg_str(name, "name") }?;
        let config = ks_config {
            builder: producers.builder(name)?,
        };
        // SAFETY: C passes a writable pointer or NULL.
        unsafe {
            write_out(
                config_out,
                registry::add(Box::into_raw(Box::new(config))),
                "config_out",
            )
        }?;
        Ok(ks_status::Ok)
    })
}

/// Sets a key (a kafkasender setting such as `enqueue.timeout.ms`, or any librdkafka property such
/// as `bootstrap.servers`) to a value; a later call for the same key wins. Values are checked by
/// ks_producer_new(), which reports every problem at once.
///
/// Ownership: `key` and `value` are copied; the caller keeps them. `config` must not be used by
/// another thread during the call. Does not block.
#[no_mangle]
pub extern "C" fn ks_config_set(
    config: *mut ks_config,
    key: *const c_char,
    value: *const c_char,
) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live config from ks_config_new and NUL-terminated strings, or NULL.
        let (config, key, value) = unsafe {
            (
                config.as_mut(),
                arg_str(key, "key")?,
                arg_str(value, "value")?,
            )
        };
        let config =
            config.ok_or_else(|| Failure::new(ks_status::NullArgument, "config is NULL"))?;
        config.builder = std::mem::take(&mut config.builder).set(key, value);
        Ok(ks_status::Ok)
    })
}

/// Checks the configuration without making a producer. KS_STATUS_CONFIG with every problem in
/// ks_last_error() when it is invalid. Does not block.
#[no_mangle]
pub extern "C" fn ks_config_validate(config: *const ks_config) -> ks_status {
    boundary(|| {
        // SAFETY: C passes a live config or NULL.
        unsafe { arg_ref(config, "config") }?.build()?;
        Ok(ks_status::Ok)
    })
}

/// Frees a configuration. NULL does nothing; a second free is detected, reported in
/// ks_last_error() and otherwise ignored. Producers made from it are not affected.
#[no_mangle]
pub extern "C" fn ks_config_free(config: *mut ks_config) {
    free_handle(config, "ks_config");
}
