//! The boundary every export goes through (rustls-ffi's manner): a panic
//! never unwinds into C, and a NULL where a pointer is required returns at
//! once. Both return the export's documented default, which its return
//! type gives ([`PanicOrDefault`], [`NullOrDefault`]), so an export reads
//!
//! ```text
//! ffi_boundary! { try_task!(t).cancel() }
//! ```

use std::ffi::c_char;

use super::{wsrt_state, wsrt_status};

/// What an export returns when a Rust panic was caught inside it.
pub(crate) trait PanicOrDefault {
    fn value() -> Self;
}

/// What an export returns when a pointer it requires is NULL.
pub(crate) trait NullOrDefault {
    fn value() -> Self;
}

/// `$panic` on a caught panic, `$null` on a NULL pointer.
macro_rules! defaults {
    ($($t:ty => $panic:expr, $null:expr;)*) => {$(
        impl PanicOrDefault for $t {
            fn value() -> Self {
                $panic
            }
        }
        impl NullOrDefault for $t {
            fn value() -> Self {
                $null
            }
        }
    )*};
}

defaults! {
    wsrt_status => wsrt_status::WSRT_ERR_PANIC, wsrt_status::WSRT_ERR_NULL;
    wsrt_state => wsrt_state::WSRT_STATE_PENDING, wsrt_state::WSRT_STATE_PENDING;
    bool => false, false;
    usize => 0, 0;
    u64 => 0, 0;
    () => (), ();
    *const c_char => std::ptr::null(), std::ptr::null();
}

impl<T> PanicOrDefault for *mut T {
    fn value() -> Self {
        std::ptr::null_mut()
    }
}

impl<T> NullOrDefault for *mut T {
    fn value() -> Self {
        std::ptr::null_mut()
    }
}

/// Runs the body, turning a panic into the return type's
/// [`PanicOrDefault`]; `default: X;` first names another value (for the
/// exports that return a task code, whose meaning depends on the call).
macro_rules! ffi_boundary {
    (default: $default:expr; $($body:tt)*) => {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(_) => $default,
        }
    };
    ($($body:tt)*) => {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(_) => $crate::ffi::boundary::PanicOrDefault::value(),
        }
    };
}
pub(crate) use ffi_boundary;

/// `&T` from a pointer the header says is required, or return the export's
/// [`NullOrDefault`] if it is NULL.
macro_rules! try_ref {
    ($ptr:expr) => {
        // SAFETY: the caller promises a non-NULL pointer is valid (header docs).
        match unsafe { $ptr.as_ref() } {
            Some(r) => r,
            None => return $crate::ffi::boundary::NullOrDefault::value(),
        }
    };
}
pub(crate) use try_ref;

/// An [`Out`] for an output pointer the header says is required, or return
/// the export's [`NullOrDefault`] if it is NULL.
macro_rules! try_out {
    ($ptr:expr) => {
        match std::ptr::NonNull::new($ptr) {
            Some(p) => $crate::ffi::boundary::Out(p),
            None => return $crate::ffi::boundary::NullOrDefault::value(),
        }
    };
}
pub(crate) use try_out;

/// An output pointer checked non-NULL; written once, on success only.
pub(crate) struct Out<T>(pub(crate) std::ptr::NonNull<T>);

impl<T> Out<T> {
    pub(crate) fn write(self, value: T) {
        // SAFETY: non-NULL (checked by `try_out!`), and the caller promises
        // that an output pointer is valid for a write (header docs).
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// A borrowed task handle (`TaskRef`, not to be dropped) for a C handle,
/// or return the export's [`NullOrDefault`] if it is NULL.
macro_rules! try_task {
    ($t:expr) => {
        match $crate::ffi::handles::borrow_task($t) {
            Some(task) => task,
            None => return $crate::ffi::boundary::NullOrDefault::value(),
        }
    };
}
pub(crate) use try_task;

/// A C string as UTF-8.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn utf8<'a>(s: *const c_char) -> Result<Option<&'a str>, wsrt_status> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: caller's duty.
    let bytes = unsafe { std::ffi::CStr::from_ptr(s) };
    bytes
        .to_str()
        .map(Some)
        .map_err(|_| wsrt_status::WSRT_ERR_INVALID_ARG)
}
