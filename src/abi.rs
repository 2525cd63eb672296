//! The C boundary: Fluent Bit's Go-plugin ABI, as `docs/fluent-bit-abi.md` and
//! `include/flb_out_cloudwatch.h` describe it. The only module with `unsafe` and C types.
//!
//! Each export checks its pointers, catches any unwind and maps it to a return code, and
//! calls one safe function. The flush runs on Fluent Bit's coroutine stack (24 KiB on
//! v1.9.10, no guard page), so [`FLBPluginFlushCtx`] only hands the chunk to a thread of
//! ours and waits: see [`offload`]. Nothing borrowed from the host outlives the call that
//! lent it: the thread reads the chunk and tag where the host lent them ([`Lent`]) while
//! the call waits for it to finish, and holds a counted handle on the instance.
//!
//! [`allocator`], the library's global allocator, is the other side of the C boundary:
//! the libc calls that map and unmap memory for big blocks.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub mod allocator;

use crate::instance::{Host, HostThread, Instance, Outcome, Workers};
use crate::log::{HostLog, Level};
use crate::metrics::{HostCounters, SERIES};

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

/// `struct flb_plugin_proxy_def` up to `description`: all of it up to v4.1.2. v5.0 appends
/// `event_type` and v5.1 `config_map`, which we never write (v5 zeroes them: logs, and no
/// map of the plugin's to check properties against).
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

/// `struct flb_api` as Fluent Bit 2.0.0 and later have it, up to the fields this plugin uses
/// (`include/fluent-bit/flb_api.h`: these seven came in v2.0.0, `custom_*` follow in
/// v4.0.3). Read only through [`host_api`], which first proves the host is one of those.
#[repr(C)]
struct FlbApiV2 {
    output_get_property: *const c_void,
    input_get_property: *const c_void,
    output_get_cmt_instance: Option<unsafe extern "C" fn(o_ins: *mut c_void) -> *mut c_void>,
    input_get_cmt_instance: *const c_void,
    log_print: Option<LogPrintFn>,
    input_log_check: *const c_void,
    output_log_check: Option<LogCheckFn>,
}

/// `void flb_log_print(int type, const char *file, int line, const char *fmt, ...)`.
type LogPrintFn = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...);
/// `int flb_output_log_check(struct flb_output_instance *ins, int level)`.
type LogCheckFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
/// `const char *flb_output_name(struct flb_output_instance *ins)`.
type OutputNameFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
/// cmetrics' `cmt_counter_create(cmt, ns, subsystem, name, help, label_count, label_keys)`.
type CounterCreateFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
) -> *mut c_void;
/// cmetrics' `cmt_counter_add(counter, timestamp, value, labels_count, label_values)`.
type CounterAddFn =
    unsafe extern "C" fn(*mut c_void, u64, f64, c_int, *const *const c_char) -> c_int;

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
/// Returns only when `work` is over (it returned, unwound, or was dropped unrun and never
/// runs): what `work` reads of the host's buffers ([`Lent`]) it reads during this call.
/// Only a boxed closure and a channel live on the calling stack, which may be Fluent Bit's
/// small coroutine stack.
fn offload<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    crate::runtime::on_flush_thread(work)
}

/// The chunk and tag of one `FLBPluginFlushCtx` call, as the host lent them, sent to the
/// flush thread without copying (a 2 MB chunk copied was a fresh 2 MB per flush in flight,
/// and ~1 % of the plugin's CPU).
///
/// Sound because [`offload`] returns only when its work is over (returned, unwound, or
/// dropped unrun: `runtime::on_flush_thread`'s contract), and the call that made the `Lent`
/// returns only after [`offload`] does: every read through it happens while the host's
/// buffers are valid. Dropping a `Lent` reads nothing.
struct Lent {
    tag: *const [u8],
    chunk: *const [u8],
}

// SAFETY: only the addresses travel to the flush thread, which reads through them while
// the lending call waits (see above); the bytes are never written.
unsafe impl Send for Lent {}

impl Lent {
    fn new(tag: &[u8], chunk: &[u8]) -> Self {
        Lent { tag, chunk }
    }

    /// # Safety
    /// Only inside the `offload` of the `FLBPluginFlushCtx` call that made `self`.
    unsafe fn get(&self) -> (&[u8], &[u8]) {
        // SAFETY: per the contract, the host's buffers are valid and unchanged until the
        // lending call returns, which is after this borrow of `self` ends.
        unsafe { (&*self.tag, &*self.chunk) }
    }
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
/// `def` is NULL or points to a `struct flb_plugin_proxy_def` of at least the v1.9.10 size,
/// writable for the call (not zeroed up to v4.1.2: every field is written).
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
        // SAFETY: `api` is the host's struct, `o_ins` its instance, both valid during Init.
        let mut host = unsafe { host_api(plugin.api, o_ins) };
        // SAFETY: the host's instance, valid during Init, on the thread that inits it.
        host.workers = unsafe { ensure_a_worker(o_ins) };
        match Instance::start(get, host) {
            Some(instance) => {
                hook_stop_signals();
                settle_malloc_thresholds();
                let instance = Arc::into_raw(Arc::new(instance));
                LIVE.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Live(instance));
                context.remote_context = instance.cast_mut().cast();
                // SAFETY: just made, and listed: alive until an ExitCtx takes it.
                unsafe { &*instance }.drain_log();
                1
            }
            None => 0,
        }
    })
}

/// Gives the free memory back to the system: the big blocks' cached mappings
/// ([`allocator::release`]), and what malloc holds free (glibc's `malloc_trim(0)`:
/// the free pages of every arena, the host's too, which only gains; elsewhere than glibc,
/// nothing). Called once the big flushes paused (`runtime::BigFlush`).
pub fn release_free_memory() {
    allocator::release();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: no argument but a size; glibc locks each arena while it trims it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Settles glibc's malloc thresholds where a process that freed a big block has them.
///
/// glibc serves blocks of 128 KiB or more from fresh mappings and gives an arena's free end
/// back on every `free` that leaves 128 KiB there, until the first such mapped block is
/// freed: then both thresholds rise to that block's size (and twice it), for good. Fluent
/// Bit does that with its first big chunk; our big blocks no longer go through `malloc`
/// ([`allocator`]), so without a host that did, the flush threads' arenas would be
/// cut back and faulted in again on every flush (measured: +45 % page faults, ~+12 % CPU
/// per event). One mapped block of 1 MiB, freed at once, raises them as Fluent Bit's first
/// chunk would; it changes nothing where they are higher or fixed by `mallopt`.
fn settle_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a block malloc made, freed at once and never read.
    unsafe {
        // black_box: the compiler may drop a malloc whose block nothing uses.
        libc::free(std::hint::black_box(libc::malloc(1 << 20)));
    }
}

/// A symbol of the host process (`dlsym(RTLD_DEFAULT)`), as an address; NULL if absent.
fn host_symbol(name: &CStr) -> *const c_void {
    // SAFETY: dlsym with a NUL-terminated name only looks the name up.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }.cast_const()
}

/// What the host offers beyond `output_get_property`: its logger, the instance's metrics
/// context and the instance's name. Nothing (today's behaviour: stderr, no metrics) unless
/// proven:
/// 1. the process exports `flb_output_log_check`, which Fluent Bit has since v2.0.0, the
///    release that also grew `struct flb_api` to the seven fields of [`FlbApiV2`] (v1.9.10
///    exports `flb_log_print` and `cmt_counter_create` but not this, and its struct has one
///    field: nothing past it is read);
/// 2. the struct's `output_get_property`, `log_print` and `output_log_check` are the very
///    functions the process exports under those names;
/// 3. for metrics, `output_get_cmt_instance` is `flb_output_get_cmt_instance` (a build
///    without metrics leaves the field unset) and `cmt_counter_create`/`cmt_counter_add`
///    are exported.
///
/// # Safety
/// `api` is the host's `struct flb_api` and `o_ins` its output instance, valid for the call
/// (Init), and `o_ins` for the instance's life.
unsafe fn host_api(api: *const FlbApi, o_ins: *mut c_void) -> Host {
    let log_check = host_symbol(c"flb_output_log_check");
    if log_check.is_null() || api.is_null() {
        return Host::default();
    }
    // SAFETY: a host that exports flb_output_log_check is Fluent Bit >= 2.0.0, whose
    // struct flb_api has these seven fields first (see above).
    let v2 = unsafe { &*api.cast::<FlbApiV2>() };
    let is = |field: *const c_void, name: &CStr| !field.is_null() && field == host_symbol(name);
    let (Some(print), Some(check)) = (v2.log_print, v2.output_log_check) else {
        return Host::default();
    };
    if !(is(v2.output_get_property, c"flb_output_get_property")
        && is(print as *const c_void, c"flb_log_print")
        && is(check as *const c_void, c"flb_output_log_check"))
    {
        return Host::default();
    }
    let name_fn = host_symbol(c"flb_output_name");
    let name = (!name_fn.is_null())
        .then(|| {
            // SAFETY: the host's `flb_output_name`, exported under that name.
            let f = unsafe { std::mem::transmute::<*const c_void, OutputNameFn>(name_fn) };
            // SAFETY: the instance the host gave us; it returns its name, or NULL.
            let name = unsafe { f(o_ins) };
            // SAFETY: non-NULL and NUL-terminated; copied at once.
            (!name.is_null()).then(|| {
                unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned()
            })
        })
        .flatten();
    let log = FlbLog {
        print,
        check,
        o_ins: o_ins as usize,
        open: RwLock::new(true),
    };
    // SAFETY: the fields are checked inside; `o_ins` as above.
    let counters = unsafe { cmt_counters(v2, o_ins, name.as_deref().unwrap_or("cloudwatch")) };
    Host {
        name,
        log: Some(Box::new(log)),
        counters: counters.map(|c| Arc::new(c) as Arc<dyn HostCounters>),
        workers: Workers::Unknown,
    }
}

/// Registers the plugin's counters on the instance's cmetrics context.
///
/// # Safety
/// `v2` is a v2.0+ host's `struct flb_api`, `o_ins` its instance.
unsafe fn cmt_counters(v2: &FlbApiV2, o_ins: *mut c_void, instance: &str) -> Option<CmtCounters> {
    let get_cmt = v2.output_get_cmt_instance?;
    let (create, add) = (
        host_symbol(c"cmt_counter_create"),
        host_symbol(c"cmt_counter_add"),
    );
    if get_cmt as *const c_void != host_symbol(c"flb_output_get_cmt_instance")
        || create.is_null()
        || add.is_null()
    {
        return None;
    }
    // SAFETY: exported under these names by the host, with cmetrics' signatures (the same
    // from v1.9.10's cmetrics to v5.1.1's).
    let (create, add) = unsafe {
        (
            std::mem::transmute::<*const c_void, CounterCreateFn>(create),
            std::mem::transmute::<*const c_void, CounterAddFn>(add),
        )
    };
    // SAFETY: the instance the host gave us.
    let cmt = unsafe { get_cmt(o_ins) };
    if cmt.is_null() {
        return None;
    }
    let instance = CString::new(instance).ok()?;
    let (keys_1, keys_2) = ([c"name".as_ptr()], [c"name".as_ptr(), c"reason".as_ptr()]);
    let mut made: Vec<(&str, usize)> = Vec::new();
    let mut series = Vec::with_capacity(SERIES.len());
    for s in SERIES {
        let counter = match made.iter().find(|(n, _)| *n == s.name) {
            Some((_, c)) => *c as *mut c_void,
            None => {
                let name = CString::new(s.name).ok()?;
                let help = CString::new(s.help).ok()?;
                let keys: &[*const c_char] = if s.reason.is_some() { &keys_2 } else { &keys_1 };
                // SAFETY: the host's cmetrics, on Fluent Bit's thread (Init), with
                // NUL-terminated strings it copies.
                let c = unsafe {
                    create(
                        cmt,
                        c"fluentbit".as_ptr(),
                        c"cloudwatch".as_ptr(),
                        name.as_ptr(),
                        help.as_ptr(),
                        keys.len() as c_int,
                        keys.as_ptr(),
                    )
                };
                if c.is_null() {
                    return None;
                }
                made.push((s.name, c as usize));
                c
            }
        };
        let mut labels = vec![instance.clone()];
        if let Some(reason) = s.reason {
            labels.push(CString::new(reason).ok()?);
        }
        series.push((counter as usize, labels));
    }
    let counters = CmtCounters {
        add,
        series,
        open: RwLock::new(true),
    };
    // Every series exists from Init on (at 0), made on Fluent Bit's thread: later adds from
    // the plugin's threads only update values.
    for index in 0..counters.series.len() {
        counters.add_raw(index, 0.0);
    }
    Some(counters)
}

/// Fluent Bit's logger for one instance: `flb_log_print` and `flb_output_log_check`.
struct FlbLog {
    print: LogPrintFn,
    check: LogCheckFn,
    /// The host's instance, as an address (valid until ExitCtx, which closes this first).
    o_ins: usize,
    /// False from ExitCtx on: the instance is gone.
    open: RwLock<bool>,
}

impl HostLog for FlbLog {
    fn enabled(&self, level: Level) -> Option<bool> {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        if !*open {
            return None;
        }
        // SAFETY: the host's function, with its live instance (the read lock holds off
        // ExitCtx); it only compares the level.
        Some(unsafe { (self.check)(self.o_ins as *mut c_void, level as c_int) } != 0)
    }

    fn print(&self, level: Level, line: &str) -> bool {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        if !*open {
            return false;
        }
        let Ok(line) = CString::new(line) else {
            return false;
        };
        // SAFETY: the host's `flb_log_print`, with "%s" and one NUL-terminated string.
        unsafe {
            (self.print)(
                level as c_int,
                std::ptr::null(),
                0,
                c"%s".as_ptr(),
                line.as_ptr(),
            )
        };
        true
    }

    fn close(&self) {
        *self.open.write().unwrap_or_else(PoisonError::into_inner) = false;
    }
}

/// The plugin's counters on the instance's cmetrics context.
struct CmtCounters {
    add: CounterAddFn,
    /// Per series of [`SERIES`]: the host's counter (an address) and the label values.
    series: Vec<(usize, Vec<CString>)>,
    /// False from ExitCtx on: the host may free the context then.
    open: RwLock<bool>,
}

impl CmtCounters {
    fn add_raw(&self, index: usize, value: f64) {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        let Some((counter, labels)) = self.series.get(index) else {
            return;
        };
        if !*open {
            return;
        }
        let values: Vec<*const c_char> = labels.iter().map(|l| l.as_ptr()).collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // SAFETY: the host's cmt_counter_add on a counter of the live context (the read
        // lock holds off ExitCtx), with this series' label values.
        unsafe {
            (self.add)(
                *counter as *mut c_void,
                now,
                value,
                values.len() as c_int,
                values.as_ptr(),
            )
        };
    }
}

impl HostCounters for CmtCounters {
    fn add(&self, index: usize, n: u64) {
        self.add_raw(index, n as f64);
    }

    fn close(&self) {
        *self.open.write().unwrap_or_else(PoisonError::into_inner) = false;
    }
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
        let lent = Lent::new(tag, chunk);
        let log = instance.clone();
        let thread = host_thread();
        let code = flush_code(offload(move || {
            // Fluent Bit puts its own handlers back on some signals (SIGHUP, SIGCONT).
            hook_stop_signals();
            // SAFETY: in the offload of the call that lent them (see `Lent`).
            let (tag, chunk) = unsafe { lent.get() };
            instance.flush_from(thread, tag, chunk)
        }));
        // On Fluent Bit's thread: the flush's lines go to Fluent Bit's log.
        log.drain_log();
        code
    })
}

/// An instance Init made and ExitCtx has not freed yet.
struct Live(*const Instance);

// SAFETY: only the address travels between threads; the instance is `Sync` and is freed
// by the one ExitCtx that removes it from `LIVE`.
unsafe impl Send for Live {}

/// Every instance not yet exited, in Init order. Upstream Fluent Bit v1.9.10 calls ExitCtx
/// once per instance, but every call with the *last* Init's context (its Go proxy keeps one
/// context slot per loaded object: `docs/fluent-bit-abi.md`). Freeing whatever
/// pointer comes would free that instance twice and never the others. So ExitCtx frees only
/// a pointer listed here; any other non-NULL pointer (one already exited, or garbage read
/// from the host's freed slot) exits the oldest instance still listed — one the host never
/// passed — so that on v1.9.10 each instance is exited exactly once and the last exit stops
/// the plugin's threads. Hosts that pass each instance its own context never take that path.
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

/// Called once per instance at shutdown: logs its totals and frees it; the last instance
/// stops the plugin's threads. A pointer that is not a live instance of ours exits the
/// oldest live one instead (see [`LIVE`]); with none left it does nothing.
///
/// # Safety
/// `remote_ctx` is NULL or any pointer (it is compared, never dereferenced, unless it is a
/// live instance); no flush of the instance exited runs or follows.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn FLBPluginExitCtx(remote_ctx: *mut c_void) -> c_int {
    guard(FLB_ERROR, || {
        if remote_ctx.is_null() {
            return FLB_OK;
        }
        let exited = {
            let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
            match live.iter().position(|l| l.0.cast::<c_void>() == remote_ctx) {
                Some(i) => Some(live.remove(i)),
                None if live.is_empty() => None,
                None => Some(live.remove(0)),
            }
        };
        let Some(Live(instance)) = exited else {
            return FLB_OK;
        };
        // SAFETY: made by Arc::into_raw in Init and just removed from LIVE, so no other
        // ExitCtx can take this reference again.
        let instance = unsafe { Arc::from_raw(instance) };
        instance.exit();
        drop(instance);
        crate::runtime::release();
        if !crate::runtime::is_running() {
            // The last instance: the host may unload us next.
            unhook_stop_signals();
            crate::shutdown::STOP.reset();
        }
        FLB_OK
    })
}

/// `int flb_output_set_property(struct flb_output_instance *ins, const char *k, const char *v)`.
type SetPropertyFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int;

/// How many bytes of the host's output instance [`ensure_a_worker`] reads, looking for its
/// worker count (`tp_workers`: byte 608 of 696 on v1.9.10, 768 of 864 on v4.1.2, 872 of 968
/// on v5.1.1, with Fluent Bit's default build options; `docs/fluent-bit-abi.md`).
const INSTANCE_WINDOW: usize = 4096;
/// What the probe sets `workers` to first, to find it: a value no other field of the
/// instance has by chance, and never left there.
const PROBE_WORKERS: c_int = 5087;

/// Makes sure Fluent Bit runs this instance's flushes on a worker thread, as it does for
/// its C plugin (which declares one worker), not on its engine thread (what a Go-ABI output
/// gets when `workers` is unset: `workers` is then 0).
///
/// The host creates an output's worker threads right after its Init callback returns, from
/// the instance's worker count, which `flb_output_set_property(ins, "workers", v)` sets
/// (Fluent Bit 1.9.10 to 5.1.x; the binary exports it). That count is not a property the
/// plugin can read (`workers` never reaches the property list), and where it lies in the
/// instance differs per version, so it is found: read the instance's first
/// [`INSTANCE_WINDOW`] bytes, set `workers` to [`PROBE_WORKERS`], read, set it to 1, read.
/// The one `int` that read something else, then [`PROBE_WORKERS`], then 1 is the count, and
/// what it read first is what the `[OUTPUT]` set: a count above 0 is put back, 0 (unset,
/// or `workers 0`: the host keeps no difference) stays 1.
///
/// The reads go through `/proc/self/mem`, which copies what is mapped and fails where
/// nothing is, so bytes past the instance's end (other heap data) are read without any
/// fault and are only compared. Nothing is written but through the host's own setter. No
/// setter, or an unreadable `/proc/self/mem`: nothing is touched ([`Workers::Unknown`]).
///
/// # Safety
/// `o_ins` is the host's output instance, during Init, on the thread that inits it.
unsafe fn ensure_a_worker(o_ins: *mut c_void) -> Workers {
    let set = host_symbol(c"flb_output_set_property");
    if set.is_null() || o_ins.is_null() {
        return Workers::Unknown;
    }
    let Ok(memory) = std::fs::File::open("/proc/self/mem") else {
        return Workers::Unknown;
    };
    let read = || read_own_memory(&memory, o_ins as usize, INSTANCE_WINDOW);
    let before = read();
    if before.is_empty() {
        return Workers::Unknown;
    }
    // SAFETY: exported by the host under this name, with this signature.
    let set = unsafe { std::mem::transmute::<*const c_void, SetPropertyFn>(set) };
    let set_workers = |value: &CStr| {
        // SAFETY: the host's instance during Init; NUL-terminated strings it copies.
        unsafe { set(o_ins, c"workers".as_ptr(), value.as_ptr()) }
    };
    set_workers(c"5087");
    let marked = read();
    set_workers(c"1");
    let after = read();
    match find_worker_count(&before, &marked, &after) {
        Some(set_by_user) if set_by_user > 0 => {
            let Ok(value) = CString::new(set_by_user.to_string()) else {
                return Workers::Forced;
            };
            set_workers(&value);
            Workers::Kept(set_by_user.unsigned_abs())
        }
        Some(_) => Workers::Enabled,
        None => Workers::Forced,
    }
}

/// The value before the probe of the one `int` of the window that read something else,
/// then [`PROBE_WORKERS`], then 1; `None` unless exactly one did.
fn find_worker_count(before: &[u8], marked: &[u8], after: &[u8]) -> Option<c_int> {
    let int_at = |bytes: &[u8], at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(c_int::from_ne_bytes)
    };
    let len = before.len().min(marked.len()).min(after.len());
    let mut found = (0..len / 4).map(|i| i * 4).filter(|&at| {
        let (b, m, a) = (int_at(before, at), int_at(marked, at), int_at(after, at));
        b != Some(PROBE_WORKERS) && m == Some(PROBE_WORKERS) && a == Some(1)
    });
    let at = found.next()?;
    if found.next().is_some() {
        return None;
    }
    int_at(before, at)
}

/// Up to `len` bytes of this process's memory from `address`, through `/proc/self/mem`:
/// fewer where an unmapped page begins, none if nothing there is mapped.
fn read_own_memory(memory: &std::fs::File, address: usize, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; len];
    let mut done = 0;
    while done < len {
        match memory.read_at(&mut bytes[done..], (address + done) as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    bytes.truncate(done);
    bytes
}

/// Which of the host's threads is calling: Fluent Bit names its engine thread
/// `flb-pipeline` (1.9.10 to 5.1.x) and an output's workers `flb-out-<name>-w<N>`.
fn host_thread() -> HostThread {
    let mut name = [0 as c_char; 16];
    // SAFETY: the calling thread's own name into a buffer of the kernel's name size (15
    // bytes and a NUL).
    let rc = unsafe { libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr(), 16) };
    // SAFETY: on success the buffer holds a NUL-terminated name; it is NUL-filled anyway.
    let name = unsafe { CStr::from_ptr(name.as_ptr()) };
    if rc == 0 && name.to_bytes() == b"flb-pipeline" {
        HostThread::Engine
    } else {
        HostThread::Worker
    }
}

/// The signals on which Fluent Bit stops: SIGTERM (what ECS and Kubernetes send) and
/// SIGINT. On each, Fluent Bit's handler only notes the signal; its main loop then stops
/// the engine, which gives pending chunks `Grace` seconds and then waits for every running
/// flush. So that a flush waiting out an outage does not hold the process past its grace,
/// [`on_stop_signal`] runs first and tells the flushes ([`crate::shutdown`]).
const STOP_SIGNALS: [c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// The handler found on each of [`STOP_SIGNALS`] when ours was put in front of it (an
/// address; 0 for none), and whether it takes three arguments (`SA_SIGINFO`).
static CHAINED: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static CHAINED_SIGINFO: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
/// Serialises [`hook_stop_signals`] and [`unhook_stop_signals`] (never taken by the handler).
static HOOKING: Mutex<()> = Mutex::new(());

type SigactionFn = extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);
type SighandlerFn = extern "C" fn(c_int);

/// Notes that Fluent Bit is stopping, then calls the handler it was put in front of.
/// Async-signal-safe: atomics and a call.
extern "C" fn on_stop_signal(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    crate::shutdown::STOP.note_signal();
    let Some(i) = STOP_SIGNALS.iter().position(|&s| s == signal) else {
        return;
    };
    let next = CHAINED[i].load(Ordering::SeqCst);
    if next == libc::SIG_DFL || next == libc::SIG_IGN {
        return; // never chained in front of these: see hook_stop_signals
    }
    if CHAINED_SIGINFO[i].load(Ordering::SeqCst) {
        // SAFETY: the host's handler, installed with SA_SIGINFO, called as the kernel would.
        (unsafe { std::mem::transmute::<usize, SigactionFn>(next) })(signal, info, context);
    } else {
        // SAFETY: the host's one-argument handler, called as the kernel would.
        (unsafe { std::mem::transmute::<usize, SighandlerFn>(next) })(signal);
    }
}

/// The current action for `signal`, if it can be read.
fn current_action(signal: c_int) -> Option<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value to be overwritten.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reads the action into `action`; changes nothing.
    (unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) } == 0).then_some(action)
}

/// Puts [`on_stop_signal`] in front of the process's handler of each stop signal, where
/// there is one (a default or ignored disposition is left alone: nothing of Fluent Bit's
/// would run then) and it is not ours already. Called at each Init and flush, since Fluent
/// Bit re-installs its handlers at times.
fn hook_stop_signals() {
    let _hooking = HOOKING.lock().unwrap_or_else(PoisonError::into_inner);
    let ours = on_stop_signal as SigactionFn as usize;
    for (i, &signal) in STOP_SIGNALS.iter().enumerate() {
        let Some(current) = current_action(signal) else {
            continue;
        };
        let found = current.sa_sigaction;
        if found == ours || found == libc::SIG_DFL || found == libc::SIG_IGN {
            continue;
        }
        // Saved before ours is installed: whenever ours runs, what it calls is set.
        CHAINED_SIGINFO[i].store(current.sa_flags & libc::SA_SIGINFO != 0, Ordering::SeqCst);
        CHAINED[i].store(found, Ordering::SeqCst);
        let mut action = current;
        action.sa_sigaction = ours;
        action.sa_flags |= libc::SA_SIGINFO;
        // SAFETY: installs a handler that stays valid until unhook_stop_signals, with the
        // mask and flags the host's had.
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    }
}

/// Puts back the handlers [`hook_stop_signals`] stood in front of, where ours is still
/// installed: after the last instance's exit, before the host may unload the library.
fn unhook_stop_signals() {
    let _hooking = HOOKING.lock().unwrap_or_else(PoisonError::into_inner);
    let ours = on_stop_signal as SigactionFn as usize;
    for (i, &signal) in STOP_SIGNALS.iter().enumerate() {
        let Some(current) = current_action(signal) else {
            continue;
        };
        if current.sa_sigaction != ours {
            continue;
        }
        let mut action = current;
        action.sa_sigaction = CHAINED[i].load(Ordering::SeqCst);
        if !CHAINED_SIGINFO[i].load(Ordering::SeqCst) {
            action.sa_flags &= !libc::SA_SIGINFO;
        }
        // SAFETY: re-installs the host's own handler, as it was before ours.
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    }
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
    fn the_worker_count_is_the_one_int_that_took_both_probe_values() {
        let ints = |v: &[c_int]| v.iter().flat_map(|i| i.to_ne_bytes()).collect::<Vec<u8>>();
        let (p, one) = (PROBE_WORKERS, 1);
        // Unset (0): found, 0; `workers 4`: found, 4.
        assert_eq!(
            find_worker_count(&ints(&[7, 0, 9]), &ints(&[7, p, 9]), &ints(&[7, one, 9])),
            Some(0)
        );
        assert_eq!(
            find_worker_count(&ints(&[4, 0]), &ints(&[p, 0]), &ints(&[one, 0])),
            Some(4)
        );
        // Nothing took the values, or two did, or one took only the first: not found.
        assert_eq!(
            find_worker_count(&ints(&[0; 3]), &ints(&[0; 3]), &ints(&[0; 3])),
            None
        );
        assert_eq!(
            find_worker_count(&ints(&[0, 0]), &ints(&[p, p]), &ints(&[one, one])),
            None
        );
        assert_eq!(
            find_worker_count(&ints(&[0, 0]), &ints(&[p, 0]), &ints(&[p, 0])),
            None
        );
        // A field that already held the probe value is not it; a short read counts as far
        // as all three reads go.
        assert_eq!(
            find_worker_count(&ints(&[p, 0]), &ints(&[p, p]), &ints(&[one, one])),
            Some(0)
        );
        assert_eq!(
            find_worker_count(&ints(&[0, 3]), &ints(&[p]), &ints(&[one, 0])),
            Some(0)
        );
    }

    #[test]
    fn own_memory_is_read_where_mapped() {
        let memory = std::fs::File::open("/proc/self/mem").expect("/proc/self/mem");
        let data = vec![1u8, 2, 3, 4, 5];
        assert_eq!(read_own_memory(&memory, data.as_ptr() as usize, 5), data);
        // Address 0 is never mapped: nothing, and no fault.
        assert!(read_own_memory(&memory, 0, 64).is_empty());
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
