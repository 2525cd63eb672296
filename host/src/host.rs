//! Fluent Bit's side of the Go-plugin ABI (`docs/fluent-bit-abi.md`), for one process.
//!
//! The structs are laid out as the host lays them out. The definition passed to Register is
//! the one of the version played ([`ProxyDefTail`]): up to v4.1.2 five fields, allocated
//! without being zeroed (here: filled with a pattern, so a plugin must write every field), with
//! a canary after them that a correct plugin never writes; from v5.0 zeroed, with
//! `event_type` and (v5.1) `config_map` after them, which the host reads back.
//!
//! Four kinds of host, as `FLB_HOST_KIND` says ([`HostKind`]):
//! - `v1` (default): Fluent Bit v1.9.10. `flb_api` is a single function pointer, allocated
//!   alone, so a plugin that read a later field would read past it (valgrind says so); the
//!   process exports `flb_log_print` and `cmt_counter_create`, as v1.9.10's binary does.
//! - `v4`: Fluent Bit v4.1.2 (AWS for Fluent Bit 3.0.x carries 4.1). The nine-field
//!   `flb_api` and the exports of Fluent Bit >= 2.0, as `v5`; v1.9.10's definition (no
//!   `event_type`, not zeroed) and v4.1.2's instance layout.
//! - `v5`: Fluent Bit v5.1.1. The nine-field `flb_api`, and the process exports what
//!   Fluent Bit >= 2.0 exports (`flb_output_log_check`, `flb_output_get_cmt_instance`,
//!   `flb_output_name`, `cmt_counter_add`, …), with a small cmetrics stand-in. Lines the
//!   plugin prints through the host come out as `[host:LEVEL] …`; [`dump_counters`] prints
//!   the counters as `[host-metric] name{labels} value`.
//! - `bare`: v1.9.10's struct and nothing exported at all.
//!
//! The exports are a C stand-in (`csrc/host_symbols.c`, built by `build.rs`) loaded with
//! `RTLD_GLOBAL` before the plugin, as if the plugin were loaded into a fluent-bit process.
//!
//! Exit comes two ways: [`Output::exit`] passes each instance its own context, as v5.x
//! does; [`Output::exit_as_v1_9_10`] passes the context of the last successful Init, as
//! upstream v1.9.10 does at shutdown with several instances of one object (one context
//! slot per loaded object, last Init wins, one ExitCtx call per instance). What v1.9.10
//! does next, freeing its own slot once per instance (its SIGSEGV at shutdown), is the
//! host's fault and is not played here.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

use libloading::Library;

pub const FLB_ERROR: c_int = 0;
pub const FLB_OK: c_int = 1;
pub const FLB_RETRY: c_int = 2;

/// The coroutine stack of Fluent Bit v1.9.10 (`3 * PTHREAD_STACK_MIN / 2`).
pub const FLUSH_STACK_SIZE: usize = 24 * 1024;

/// What lies after the five fields of a v1.9.10–v4.1.2 definition: not the host's.
const TAIL_CANARY: c_int = 0x5a5a;
/// What `malloc` may leave in a definition that v1.9.10–v4.1.2 do not zero.
const UNZEROED: u8 = 0xa5;
/// `FLB_OUTPUT_LOGS`: what a v5 host takes an `event_type` of 0 for.
const FLB_OUTPUT_LOGS: c_int = 1;

/// `struct flb_plugin_proxy_def` as every version has it, up to `description` (all there is
/// up to v4.1.2: `include/fluent-bit/flb_plugin_proxy.h`).
#[repr(C)]
pub struct ProxyDef {
    pub type_: c_int,
    pub proxy: c_int,
    pub flags: c_int,
    pub name: *mut c_char,
    pub description: *mut c_char,
}

/// What follows [`ProxyDef`]: from v5.0 `event_type` (0 is logs), from v5.1 `config_map`
/// (NULL: the host checks no property against a map of the plugin's), both zeroed by the
/// host (`calloc`) and read back after Register. Up to v4.1.2 not the host's memory: a
/// canary here.
#[repr(C)]
struct ProxyDefTail {
    event_type: c_int,
    config_map: *const c_void,
}

#[repr(C)]
struct FullProxyDef {
    head: ProxyDef,
    tail: ProxyDefTail,
}

/// What Register left in the definition, as the host reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub type_: c_int,
    pub proxy: c_int,
    pub flags: c_int,
    /// Up to v4.1.2: nothing was written past `description`. From v5.0: `event_type` is 0
    /// or `FLB_OUTPUT_LOGS`, and `config_map` NULL.
    pub tail_as_expected: bool,
}

/// `struct flb_api` as v1.9.10 has it.
#[repr(C)]
struct Api {
    output_get_property: GetPropertyFn,
}

/// `struct flb_api` as v4.1.2 and v5.1.1 have it (`include/fluent-bit/flb_api.h`).
#[repr(C)]
struct ApiV5 {
    output_get_property: GetPropertyFn,
    input_get_property: *const c_void,
    output_get_cmt_instance: *const c_void,
    input_get_cmt_instance: *const c_void,
    log_print: *const c_void,
    input_log_check: *const c_void,
    output_log_check: *const c_void,
    custom_get_property: *const c_void,
    custom_log_check: *const c_void,
}

/// What the host's `flb_api` is, kept alive with the instance.
enum ApiBox {
    V1(#[allow(dead_code)] Box<Api>),
    V5(#[allow(dead_code)] Box<ApiV5>),
}

/// The start of what `o_ins` points at: the instance's properties (keys lower-cased), its
/// name and its `log_level`, as the C stand-in of the host reads them (`struct
/// fake_instance`). The whole instance is as big as Fluent Bit's ([`InstanceLayout`]), with
/// the worker count where Fluent Bit keeps it.
#[repr(C)]
struct FakeInstance {
    properties: *const Properties,
    name: *const c_char,
    log_level: c_int,
}

/// Where Fluent Bit's `struct flb_output_instance` keeps its worker count (`tp_workers`),
/// and its size, with the default build options: v1.9.10 608 of 696 bytes, v4.1.2 768 of
/// 864, v5.1.1 872 of 968. Read with `offsetof` on each version's headers.
#[derive(Debug, Clone, Copy)]
struct InstanceLayout {
    tp_workers: usize,
    size: usize,
}

impl InstanceLayout {
    fn of(kind: HostKind) -> InstanceLayout {
        match kind {
            HostKind::V5 => InstanceLayout {
                tp_workers: 872,
                size: 968,
            },
            HostKind::V4 => InstanceLayout {
                tp_workers: 768,
                size: 864,
            },
            HostKind::V1 | HostKind::Bare => InstanceLayout {
                tp_workers: 608,
                size: 696,
            },
        }
    }
}

/// The name Fluent Bit gives its engine thread, where an output without `workers` flushes.
pub const ENGINE_THREAD: &str = "flb-pipeline";

type GetPropertyFn = unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char;

/// Which Fluent Bit this host plays (see the module's header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    V1,
    V4,
    V5,
    Bare,
}

impl HostKind {
    /// Whether the host has Fluent Bit >= 2.0's nine-field `flb_api` and exports.
    fn has_v2_api(self) -> bool {
        matches!(self, HostKind::V4 | HostKind::V5)
    }
}

/// `FLB_HOST_KIND`: `v1` (default), `v4`, `v5` or `bare`.
pub fn host_kind() -> HostKind {
    match std::env::var("FLB_HOST_KIND").as_deref() {
        Ok("v4") => HostKind::V4,
        Ok("v5") => HostKind::V5,
        Ok("bare") => HostKind::Bare,
        _ => HostKind::V1,
    }
}

/// The host's exported symbols (the C stand-in), loaded once with RTLD_GLOBAL.
fn host_symbols() -> Option<&'static Library> {
    static SYMBOLS: OnceLock<Option<Library>> = OnceLock::new();
    SYMBOLS
        .get_or_init(|| {
            let file = match host_kind() {
                HostKind::V5 => "libflbhost_v5.so",
                HostKind::V4 => "libflbhost_v4.so",
                HostKind::V1 => "libflbhost_v1.so",
                HostKind::Bare => return None,
            };
            let path = Path::new(env!("OUT_DIR")).join(file);
            // SAFETY: the stand-in has no initialisers. RTLD_NOW | RTLD_GLOBAL: its symbols
            // are then found by dlsym(RTLD_DEFAULT, …) as a fluent-bit binary's would be.
            let lib = unsafe { libloading::os::unix::Library::open(Some(&path), 0x0002 | 0x0100) }
                .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
            Some(Library::from(lib))
        })
        .as_ref()
}

/// A symbol of the host stand-in, if this kind of host exports it.
fn host_symbol(name: &[u8]) -> *const c_void {
    let Some(lib) = host_symbols() else {
        return std::ptr::null();
    };
    // SAFETY: looked up as an opaque address only.
    unsafe { lib.get::<*const c_void>(name) }
        .map(|s| *s)
        .unwrap_or(std::ptr::null())
}

/// Prints the v5 host's counters (`[host-metric] name{labels} value`) to stderr.
pub fn dump_counters() {
    let f = host_symbol(b"flbhost_dump_counters\0");
    if !f.is_null() {
        // SAFETY: `void flbhost_dump_counters(void)` of the stand-in.
        unsafe { std::mem::transmute::<*const c_void, unsafe extern "C" fn()>(f)() }
    }
}

#[repr(C)]
struct GoOutputPlugin {
    name: *mut c_void,
    api: *const Api,
    o_ins: *mut c_void,
    context: *mut ProxyContext,
}

#[repr(C)]
struct ProxyContext {
    remote_context: *mut c_void,
}

type RegisterFn = unsafe extern "C" fn(*mut ProxyDef) -> c_int;
type InitFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type FlushCtxFn = unsafe extern "C" fn(*mut c_void, *const c_void, c_int, *const c_char) -> c_int;
type ExitCtxFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type UnregisterFn = unsafe extern "C" fn(*mut ProxyDef);

/// The loaded library and what Register told us.
pub struct Plugin {
    _library: Library,
    init: InitFn,
    flush_ctx: FlushCtxFn,
    exit_ctx: ExitCtxFn,
    unregister: UnregisterFn,
    def: Box<FullProxyDef>,
    kind: HostKind,
    /// v1.9.10's one context slot per loaded object: the `remote_context` of the last
    /// successful Init.
    last_context: AtomicPtr<c_void>,
    /// The `Name` the plugin registered.
    pub name: String,
    pub description: String,
}

// SAFETY (test host): the function pointers are plain C functions of a library that is
// never unloaded; `def` is only read.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

/// Where cargo put the library: `FLB_CLOUDWATCH_LIBRARY`, else the newest
/// `libflb_out_cloudwatch.so` in `target/<profile>/` or `target/<profile>/deps/` above the
/// running binary. (Building a test or an example refreshes only the copy in `deps/`.)
pub fn library_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FLB_CLOUDWATCH_LIBRARY") {
        return PathBuf::from(p);
    }
    let file = format!(
        "{}flb_out_cloudwatch{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .ancestors()
        .skip(1)
        .find(|dir| dir.join(&file).exists() || dir.join("deps").join(&file).exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::target_dir().join("debug"));
    [
        profile_dir.join(&file),
        profile_dir.join("deps").join(&file),
    ]
    .into_iter()
    .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
    .max()
    .map(|(_, p)| p)
    .unwrap_or_else(|| profile_dir.join(file))
}

/// The plugin, loaded once per process (Fluent Bit also loads a `.so` once) and registered.
pub fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        // The host's own symbols are there before any plugin is loaded.
        let _ = host_symbols();
        let path = library_path();
        Plugin::load(&path).unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
    })
}

impl Plugin {
    /// `dlopen(path, RTLD_LAZY)`, look up the symbols, call `FLBPluginRegister`.
    pub fn load(path: &Path) -> Result<Plugin, String> {
        // SAFETY: loading our own plugin; its initialisers are Rust's.
        let library = unsafe { libloading::os::unix::Library::open(Some(path), libc_rtld_lazy()) }
            .map_err(|e| e.to_string())?;
        let library = Library::from(library);
        // SAFETY: the symbols have the ABI's C signatures (include/flb_out_cloudwatch.h).
        unsafe {
            let register: RegisterFn = *library
                .get(b"FLBPluginRegister\0")
                .map_err(|e| e.to_string())?;
            let init: InitFn = *library.get(b"FLBPluginInit\0").map_err(|e| e.to_string())?;
            let flush_ctx: FlushCtxFn = *library
                .get(b"FLBPluginFlushCtx\0")
                .map_err(|e| e.to_string())?;
            let exit_ctx: ExitCtxFn = *library
                .get(b"FLBPluginExitCtx\0")
                .map_err(|e| e.to_string())?;
            let unregister: UnregisterFn = *library
                .get(b"FLBPluginUnregister\0")
                .map_err(|e| e.to_string())?;
            let kind = host_kind();
            let mut def = Box::new(FullProxyDef {
                head: ProxyDef {
                    type_: 0,
                    proxy: 0,
                    flags: 0,
                    name: std::ptr::null_mut(),
                    description: std::ptr::null_mut(),
                },
                tail: ProxyDefTail {
                    event_type: 0,
                    config_map: std::ptr::null(),
                },
            });
            if kind != HostKind::V5 {
                // `flb_malloc`, not zeroed (v1.9.10 to v4.1.2); nothing after `description`.
                std::ptr::write_bytes(
                    (&mut def.head as *mut ProxyDef).cast::<u8>(),
                    UNZEROED,
                    std::mem::size_of::<ProxyDef>(),
                );
                def.tail.event_type = TAIL_CANARY;
            }
            if register(&mut def.head) != 0 {
                return Err("FLBPluginRegister failed".into());
            }
            let name = CStr::from_ptr(def.head.name).to_string_lossy().into_owned();
            let description = CStr::from_ptr(def.head.description)
                .to_string_lossy()
                .into_owned();
            Ok(Plugin {
                _library: library,
                init,
                flush_ctx,
                exit_ctx,
                unregister,
                def,
                kind,
                last_context: AtomicPtr::new(std::ptr::null_mut()),
                name,
                description,
            })
        }
    }

    /// What the host reads back after Register (see [`Registration`]).
    pub fn registration(&self) -> Registration {
        let tail = &self.def.tail;
        Registration {
            type_: self.def.head.type_,
            proxy: self.def.head.proxy,
            flags: self.def.head.flags,
            tail_as_expected: match self.kind {
                HostKind::V5 => {
                    matches!(tail.event_type, 0 | FLB_OUTPUT_LOGS) && tail.config_map.is_null()
                }
                _ => tail.event_type == TAIL_CANARY && tail.config_map.is_null(),
            },
        }
    }

    /// Starts an `[OUTPUT]` instance with these properties. `Err(code)` if Init refused.
    /// `log_level` is Fluent Bit's own property (the plugin never sees it): it sets the
    /// instance's level, which a v5 host's `flb_output_log_check` reports.
    pub fn init(&'static self, properties: &[(&str, &str)]) -> Result<Output, c_int> {
        static INSTANCES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut log_level = 3; // info
        let mut workers: c_int = 0; // Go-ABI outputs: no worker unless `workers` is set
        let props = Box::new(Properties(
            properties
                .iter()
                .filter(|(k, v)| {
                    if k.eq_ignore_ascii_case("workers") {
                        // Fluent Bit's own property: atoi into the instance, never listed.
                        workers = v.trim().parse().unwrap_or(0);
                        return false;
                    }
                    if !k.eq_ignore_ascii_case("log_level") {
                        return true;
                    }
                    log_level = match v.to_ascii_lowercase().as_str() {
                        "off" => 0,
                        "error" => 1,
                        "warn" | "warning" => 2,
                        "debug" => 4,
                        "trace" => 5,
                        _ => 3,
                    };
                    false
                })
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        CString::new(*v).expect("no NUL in test values"),
                    )
                })
                .collect(),
        ));
        let name = CString::new(format!(
            "{}.{}",
            self.name,
            INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))
        .expect("name");
        let layout = InstanceLayout::of(host_kind());
        let mut instance = vec![0u64; layout.size / 8].into_boxed_slice();
        // SAFETY: the buffer is 8-aligned and larger than the header and the count.
        unsafe {
            let base = instance.as_mut_ptr().cast::<u8>();
            base.cast::<FakeInstance>().write(FakeInstance {
                properties: &*props,
                name: name.as_ptr(),
                log_level,
            });
            base.add(layout.tp_workers).cast::<c_int>().write(workers);
        }
        let api = match host_kind() {
            kind if kind.has_v2_api() => {
                let reader = host_symbol(b"flbhost_set_property_reader\0");
                // SAFETY: `void flbhost_set_property_reader(reader)` of the stand-in.
                unsafe {
                    std::mem::transmute::<*const c_void, unsafe extern "C" fn(GetPropertyFn)>(
                        reader,
                    )(get_property)
                };
                let get = host_symbol(b"flb_output_get_property\0");
                ApiBox::V5(Box::new(ApiV5 {
                    // SAFETY: the stand-in's `flb_output_get_property`, which forwards to
                    // `get_property`: the same function a v5 host puts there.
                    output_get_property: unsafe {
                        std::mem::transmute::<*const c_void, GetPropertyFn>(get)
                    },
                    input_get_property: std::ptr::null(),
                    output_get_cmt_instance: host_symbol(b"flb_output_get_cmt_instance\0"),
                    input_get_cmt_instance: std::ptr::null(),
                    log_print: host_symbol(b"flb_log_print\0"),
                    input_log_check: std::ptr::null(),
                    output_log_check: host_symbol(b"flb_output_log_check\0"),
                    custom_get_property: std::ptr::null(),
                    custom_log_check: std::ptr::null(),
                }))
            }
            _ => ApiBox::V1(Box::new(Api {
                output_get_property: get_property,
            })),
        };
        let api_ptr: *const Api = match &api {
            ApiBox::V1(a) => &**a,
            ApiBox::V5(a) => (&**a as *const ApiV5).cast(),
        };
        let mut context = Box::new(ProxyContext {
            remote_context: std::ptr::null_mut(),
        });
        let mut go = Box::new(GoOutputPlugin {
            name: std::ptr::null_mut(),
            api: api_ptr,
            o_ins: instance.as_mut_ptr().cast(),
            context: &mut *context,
        });
        // SAFETY: every pointer in `go` is valid for the call.
        let code = unsafe { (self.init)((&mut *go as *mut GoOutputPlugin).cast()) };
        if code <= 0 {
            return Err(code);
        }
        self.last_context
            .store(context.remote_context, Ordering::SeqCst);
        // As `flb_output_init_all` does right after the Init callback: a worker thread per
        // `tp_workers` (whatever the plugin set it to), else flushes on the engine thread.
        // SAFETY: within the buffer, written above or by the host's setter.
        let workers = unsafe {
            instance
                .as_ptr()
                .cast::<u8>()
                .add(layout.tp_workers)
                .cast::<c_int>()
                .read()
        };
        let worker_names = (0..workers.max(0))
            .map(|i| format!("flb-out-{}-w{i}", name.to_string_lossy()))
            .collect::<Vec<_>>();
        Ok(Output {
            plugin: self,
            context: context.remote_context,
            workers: worker_names
                .into_iter()
                .map(|n| (n, Mutex::new(())))
                .collect(),
            next_worker: std::sync::atomic::AtomicUsize::new(0),
            _props: props,
            _instance: instance,
            _name: name,
            _api: api,
        })
    }

    /// `FLBPluginUnregister`, as the host calls it after the last exit.
    pub fn unregister(&self) {
        let def = (&self.def.head as *const ProxyDef).cast_mut();
        // SAFETY: the definition Register filled in.
        unsafe { (self.unregister)(def) }
    }
}

fn libc_rtld_lazy() -> c_int {
    0x0001 // RTLD_LAZY on Linux
}

/// The instance's properties, keys lower-cased.
struct Properties(HashMap<String, CString>);

unsafe extern "C" fn get_property(key: *const c_char, o_ins: *mut c_void) -> *const c_char {
    // SAFETY: the plugin passes a NUL-terminated key and the `o_ins` we gave it, a
    // FakeInstance whose properties live as long as it.
    let (key, props) = unsafe {
        (
            CStr::from_ptr(key),
            &*(*(o_ins as *const FakeInstance)).properties,
        )
    };
    match props.0.get(&key.to_string_lossy().to_ascii_lowercase()) {
        Some(v) => v.as_ptr(),
        None => std::ptr::null(),
    }
}

/// One started `[OUTPUT]` instance.
pub struct Output {
    plugin: &'static Plugin,
    context: *mut c_void,
    /// The output's worker threads (their names; each runs one flush at a time, as a real
    /// worker does when the flush blocks it); none: flushes run on the engine thread.
    workers: Vec<(String, Mutex<()>)>,
    next_worker: std::sync::atomic::AtomicUsize,
    _props: Box<Properties>,
    _instance: Box<[u64]>,
    _name: CString,
    _api: ApiBox,
}

// SAFETY: the plugin's context is made for concurrent flushes (`workers N`).
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

/// The engine thread: one per process, running one flush at a time.
static ENGINE: Mutex<()> = Mutex::new(());

impl Output {
    /// `FLBPluginFlushCtx` as Fluent Bit calls it: on one of the output's worker threads
    /// (`flb-out-<name>-w<N>`, in turn), or on the engine thread (`flb-pipeline`) when it
    /// has none; each of them runs one flush at a time. The call runs on a thread of that
    /// name with Fluent Bit v1.9.10's 24 KiB coroutine stack (with a guard page, so an
    /// overflow is a crash here instead of silent corruption).
    pub fn flush(&self, tag: &str, chunk: &[u8]) -> c_int {
        self.flush_on_stack(tag, chunk, FLUSH_STACK_SIZE)
    }

    /// The name of the thread the next flushes run on: [`ENGINE_THREAD`] or the workers'.
    pub fn flush_threads(&self) -> Vec<String> {
        if self.workers.is_empty() {
            return vec![ENGINE_THREAD.to_owned()];
        }
        self.workers.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn flush_on_stack(&self, tag: &str, chunk: &[u8], stack: usize) -> c_int {
        let tag = CString::new(tag).expect("no NUL in tags");
        let (flush, ctx) = (self.plugin.flush_ctx, self.context as usize);
        let (thread, _busy) = if self.workers.is_empty() {
            (
                ENGINE_THREAD.to_owned(),
                ENGINE.lock().unwrap_or_else(|e| e.into_inner()),
            )
        } else {
            let i = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len();
            let (name, busy) = &self.workers[i];
            (name.clone(), busy.lock().unwrap_or_else(|e| e.into_inner()))
        };
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name(thread)
                .stack_size(stack)
                .spawn_scoped(s, || {
                    // SAFETY: the context Init gave us; data and tag valid for the call.
                    // The length is an `int`, as the ABI page says to declare it.
                    unsafe {
                        flush(
                            ctx as *mut c_void,
                            chunk.as_ptr().cast(),
                            chunk.len() as c_int,
                            tag.as_ptr(),
                        )
                    }
                })
                .expect("spawn flush thread")
                .join()
                .expect("flush thread")
        })
    }

    /// `FLBPluginFlushCtx` on the calling thread (no thread of the host's own: for tests
    /// where no new thread can be started).
    pub fn flush_on_this_thread(&self, tag: &str, chunk: &[u8]) -> c_int {
        let tag = CString::new(tag).expect("no NUL in tags");
        // SAFETY: the context Init gave us; data and tag valid for the call.
        unsafe {
            (self.plugin.flush_ctx)(
                self.context,
                chunk.as_ptr().cast(),
                chunk.len() as c_int,
                tag.as_ptr(),
            )
        }
    }

    /// `FLBPluginExitCtx`.
    pub fn exit(self) -> c_int {
        // SAFETY: the context Init gave us, passed once.
        unsafe { (self.plugin.exit_ctx)(self.context) }
    }

    /// `FLBPluginExitCtx` as upstream Fluent Bit v1.9.10 calls it for this instance at
    /// shutdown: with the `remote_context` of the last successful Init of the plugin,
    /// whichever instance this is (`proxy_go_destroy` reads `plugin->context`, which every
    /// Init overwrote). With several instances the same pointer is passed once per instance,
    /// and the other instances' contexts never.
    pub fn exit_as_v1_9_10(self) -> c_int {
        let slot = self.plugin.last_context.load(Ordering::SeqCst);
        // SAFETY: a context some Init gave us (maybe passed before: that is the point).
        unsafe { (self.plugin.exit_ctx)(slot) }
    }
}
