//! The C ABI of kafkasender (`libkafkasender.so`, `libkafkasender.a`, `include/kafkasender.h`).
//!
//! Thin by design: each function checks its arguments, converts them, calls the core, and maps
//! the result to a `ks_status`. Behaviour lives in the `kafkasender` crate.

#![allow(non_camel_case_types)]
// The exported functions take raw pointers from C by design; their contract (NULL or valid) is
// written in the header and checked by the helpers in `boundary`, not by Rust's `unsafe fn`.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![deny(unsafe_op_in_unsafe_fn)]

mod boundary;
mod config;
mod events;
mod logs;
mod mock;
mod observe;
mod producer;
mod rows;

use std::ffi::c_char;

pub use boundary::ks_status;
pub use config::*;
pub use events::*;
pub use logs::*;
pub use mock::*;
pub use observe::*;
pub use producer::*;
pub use rows::*;

use boundary::{boundary, last_error_ptr};

/// The kafkasender version, e.g. "0.1.0". Static; do not free.
#[no_mangle]
pub extern "C" fn ks_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A short static name for a status ("ok", "queue_full", …); "unknown" for any other number.
/// Takes an int, not the enum, so that any value C passes is defined behaviour. Do not free.
#[no_mangle]
pub extern "C" fn ks_status_str(status: i32) -> *const c_char {
    boundary(|| {
        Ok(ks_status::from_code(status)
            .map_or(c"unknown", ks_status::name)
            .as_ptr())
    })
}

/// A short static name for an outcome ("delivered", "failed", "dead_lettered", "spooled", the
/// names every face uses); "unknown" for any other number. Do not free.
#[no_mangle]
pub extern "C" fn ks_outcome_str(outcome: i32) -> *const c_char {
    boundary(|| {
        Ok(match outcome {
            0 => c"delivered",
            1 => c"failed",
            2 => c"dead_lettered",
            3 => c"spooled",
            _ => c"unknown",
        }
        .as_ptr())
    })
}

/// The message of the last failure on the calling thread: never NULL, "" on a thread that has had
/// none, so it is always safe to print. Like `errno`, a successful call leaves it unchanged: read
/// it right after a call that failed. Owned by kafkasender; valid until the next kafkasender call
/// on this thread. Do not free.
#[no_mangle]
pub extern "C" fn ks_last_error() -> *const c_char {
    last_error_ptr()
}
