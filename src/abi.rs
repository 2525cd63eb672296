//! The C boundary: Fluent Bit's Go-plugin ABI, as `../shared/fluent-bit-go-abi.md` and
//! `include/flb_out_cloudwatch.h` describe it. The only module with `unsafe` and C types.
//!
//! Each export checks its pointers, catches any unwind and maps it to a return code, and
//! calls one safe function. The flush runs on Fluent Bit's coroutine stack (24 KiB on
//! v1.9.10, no guard page), so [`FLBPluginFlushCtx`] only hands the chunk to a thread of
//! ours and waits: see [`offload`]. Nothing borrowed from the host outlives the call that
//! lent it: the thread gets a copy of the chunk and tag, and a counted handle on the
//! instance.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::instance::{Instance, Outcome};

/// The chunk is dropped and counted as an error.
pub const FLB_ERROR: c_int = 0;
/// The chunk is done.
pub const FLB_OK: c_int = 1;
/// Fluent Bit sends the same chunk again later (up to `Retry_Limit`).
pub const FLB_RETRY: c_int = 2;

const FLB_PROXY_OUTPUT_PLUGIN: c_int = 2;
const FLB_PROXY_GOLANG: c_int = 11;

/// The `[OUTPUT]` `Name` this plugin answers to.
pub const PLUGIN_NAME: &CStr = c"cloudwatch";
const PLUGIN_DESCRIPTION: &CStr = c"Amazon CloudWatch Logs (Rust; cross-account through role_arn)";

/// `struct flb_plugin_proxy_def` up to `description`: the v1.9.10 layout. Later versions
/// append `event_type`, which we never write (the host's zero means logs).
#[repr(C)]
pub struct FlbPluginProxyDef {
    pub type_: c_int,
    pub proxy: c_int,
    pub flags: c_int,
    pub name: *const c_char,
    pub description: *const c_char,
}

/// `struct flb_api`, first field only: all there is on v1.9.10.
#[repr(C)]
pub struct FlbApi {
    pub output_get_property:
        Option<unsafe extern "C" fn(key: *const c_char, o_ins: *mut c_void) -> *const c_char>,
}

/// `struct flbgo_output_plugin`, what `FLBPluginInit` receives.
#[repr(C)]
pub struct FlbGoOutputPlugin {
    pub name: *mut c_void,
    pub api: *const FlbApi,
    pub o_ins: *mut c_void,
    pub context: *mut FlbPluginProxyContext,
}

/// `struct flb_plugin_proxy_context`.
#[repr(C)]
pub struct FlbPluginProxyContext {
    pub remote_context: *mut c_void,
}

// The layouts the host uses on x86-64 and aarch64.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(FlbPluginProxyDef, name) == 16);
    assert!(offset_of!(FlbPluginProxyDef, description) == 24);
    assert!(size_of::<FlbPluginProxyDef>() == 32);
    assert!(size_of::<FlbApi>() == 8);
    assert!(offset_of!(FlbGoOutputPlugin, context) == 24);
    assert!(size_of::<FlbPluginProxyContext>() == 8);
};

/// Runs `f`, turning a panic into `fallback`: no unwind may cross into C.
fn guard(fallback: c_int, f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Runs `work` on a flush thread of ours ([`crate::runtime::on_flush_thread`]: an idle one,
/// else a new one with a 2 MiB stack) and waits for its result. `None` if it panicked, or
/// if no thread was idle and none could be started (a pids limit, `EAGAIN`): then nothing
/// runs later either.
///
/// `work` owns everything it uses (`'static`): whatever happens to this call, the thread
/// never reads memory the host lent. Only a boxed closure and a channel live on the
/// calling stack, which may be Fluent Bit's small coroutine stack.
fn offload<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    crate::runtime::on_flush_thread(work)
}

fn flush_code(outcome: Option<Outcome>) -> c_int {
    match outcome {
        Some(Outcome::Ok) => FLB_OK,
        // A panic on our thread is a bug of ours, not of the chunk: retrying keeps the data
        // (bounded by Fluent Bit's Retry_Limit).
        Some(Outcome::Retry) | None => FLB_RETRY,
    }
}

/// Called once when Fluent Bit loads the library: fills in the plugin's definition.
///
/// # Safety
/// `def` is NULL or points to a zero-filled `struct flb_plugin_proxy_def` of at least the
/// v1.9.10 size, writable for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginRegister(def: *mut FlbPluginProxyDef) -> c_int {
    guard(-1, || {
        // SAFETY: per the contract above.
        let Some(def) = (unsafe { def.as_mut() }) else {
            return -1;
        };
        def.type_ = FLB_PROXY_OUTPUT_PLUGIN;
        def.proxy = FLB_PROXY_GOLANG;
        def.flags = 0;
        def.name = PLUGIN_NAME.as_ptr();
        def.description = PLUGIN_DESCRIPTION.as_ptr();
        0
    })
}

/// Called once per `[OUTPUT]` instance: reads its options and starts it. Returns 1 on
/// success, 0 on failure (with one log line saying why).
///
/// # Safety
/// `plugin` is NULL or points to a `struct flbgo_output_plugin` whose `api`, `o_ins` and
/// `context` are the host's, valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginInit(plugin: *mut c_void) -> c_int {
    guard(0, || {
        // SAFETY: per the contract above; every pointer is checked for NULL.
        let Some(plugin) = (unsafe { plugin.cast::<FlbGoOutputPlugin>().as_mut() }) else {
            return 0;
        };
        let Some(api) = (unsafe { plugin.api.as_ref() }) else {
            return 0;
        };
        let Some(get_property) = api.output_get_property else {
            return 0;
        };
        let Some(context) = (unsafe { plugin.context.as_mut() }) else {
            return 0;
        };
        let o_ins = plugin.o_ins;
        let get = |key: &str| -> Option<String> {
            let key = CString::new(key).ok()?;
            // SAFETY: the host's callback, called during Init as the ABI requires, with a
            // NUL-terminated key; it returns NULL or a NUL-terminated string it owns.
            let value = unsafe { get_property(key.as_ptr(), o_ins) };
            if value.is_null() {
                return None;
            }
            // SAFETY: non-NULL and NUL-terminated, valid during Init; copied at once.
            Some(
                unsafe { CStr::from_ptr(value) }
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        match Instance::start(get) {
            Some(instance) => {
                context.remote_context = Arc::into_raw(Arc::new(instance)).cast_mut().cast();
                1
            }
            None => 0,
        }
    })
}

/// Called per chunk, possibly from several threads at once with the same context
/// (`workers N`). Returns `FLB_OK`, `FLB_RETRY`, or `FLB_ERROR` for a call that makes no
/// sense (no context, negative length).
///
/// # Safety
/// `remote_ctx` is NULL or what `FLBPluginInit` stored, not yet passed to
/// `FLBPluginExitCtx`; `data` points to `length` readable bytes and `tag` is NULL or
/// NUL-terminated, both valid until this function returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginFlushCtx(
    remote_ctx: *mut c_void,
    data: *const c_void,
    length: c_int,
    tag: *const c_char,
) -> c_int {
    guard(FLB_RETRY, || {
        if remote_ctx.is_null() {
            return FLB_ERROR;
        }
        // SAFETY: per the contract above, `remote_ctx` came from Arc::into_raw in Init and
        // that reference is still held (ExitCtx has not run): we take one more for the
        // flush's thread.
        let instance = unsafe {
            Arc::increment_strong_count(remote_ctx.cast::<Instance>().cast_const());
            Arc::from_raw(remote_ctx.cast::<Instance>().cast_const())
        };
        let Ok(length) = usize::try_from(length) else {
            return FLB_ERROR;
        };
        let chunk: &[u8] = if data.is_null() || length == 0 {
            &[]
        } else {
            // SAFETY: `data` points to `length` bytes valid until we return.
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), length) }
        };
        let tag: &[u8] = if tag.is_null() {
            b""
        } else {
            // SAFETY: NUL-terminated and valid until we return.
            unsafe { CStr::from_ptr(tag) }.to_bytes()
        };
        // Owned copies: a chunk is copied in microseconds, next to the request it becomes.
        let (tag, chunk) = (tag.to_vec(), chunk.to_vec());
        flush_code(offload(move || instance.flush(&tag, &chunk)))
    })
}

/// Called once per instance at shutdown: logs its totals and frees it; the last instance
/// stops the plugin's threads (after any flush thread let go of the instance).
///
/// # Safety
/// `remote_ctx` is NULL or what `FLBPluginInit` stored; no flush of it runs or follows.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginExitCtx(remote_ctx: *mut c_void) -> c_int {
    guard(FLB_ERROR, || {
        if remote_ctx.is_null() {
            return FLB_OK;
        }
        // SAFETY: made by Arc::into_raw in Init; the host passes it to ExitCtx once.
        let instance = unsafe { Arc::from_raw(remote_ctx.cast::<Instance>().cast_const()) };
        instance.exit();
        drop(instance);
        crate::runtime::release();
        FLB_OK
    })
}

/// Called after the last exit. Register allocated nothing, so there is nothing to free.
///
/// # Safety
/// Any pointer; it is not read.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginUnregister(_def: *mut FlbPluginProxyDef) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_the_fallback() {
        assert_eq!(guard(FLB_RETRY, || panic!("boom")), FLB_RETRY);
        assert_eq!(guard(FLB_RETRY, || FLB_OK), FLB_OK);
    }

    #[test]
    fn offload_returns_the_result_or_none_after_a_panic() {
        let owned = [1u8, 2, 3];
        let sum = offload(move || owned.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert_eq!(sum, Some(6));
        let none: Option<u32> = offload(|| panic!("boom"));
        assert_eq!(none, None);
        assert_eq!(flush_code(none.map(|_| Outcome::Ok)), FLB_RETRY);
    }
}
