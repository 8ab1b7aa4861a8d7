//! The functions nginx calls on the module object while it reads the
//! configuration and runs its cycles (the http module's pre- and
//! postconfiguration, init_module, init_process, exit_process,
//! exit_master, and the directives' handlers), as safe Rust callbacks:
//! each gets nginx's structures as references and runs inside the panic
//! barrier ([`crate::nginx::entry`]).
//!
//! A reference to an nginx structure is trusted to be one nginx made, as
//! the `ngx` crate's own configuration accessors trust it
//! (`HttpModuleMainConf::main_conf_mut(&ngx_conf_t)`); the conversion from
//! nginx's raw pointers happens here only.

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_array_push, ngx_command_t, ngx_conf_set_size_slot, ngx_conf_t, ngx_cycle_t, ngx_http_handler_pt,
    ngx_http_phases_NGX_HTTP_POST_READ_PHASE, ngx_http_request_t, ngx_int_t, ngx_palloc, ngx_pool_cleanup_add,
    ngx_str_t, ngx_uint_t, NGX_ERROR, NGX_LOG_EMERG, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, Merge, NgxHttpCoreModule};

use crate::nginx::balancers::KnownBalancers;
use crate::nginx::conf::{LocConf, MainConf};
use crate::nginx::entry::{conf_guard, request_guard};
use crate::nginx::http_io::{content_handler, RequestHandler};
use crate::nginx::lua_c::{register_packages, LuaPackages};
use crate::nginx::process::{clear_served_cycle, mark_exited, note_nginx_thread, served_cycle, set_served_cycle};
use crate::nginx::upstreams::{str_lossy, Upstream};

/// What the module does at each step of a cycle's life.
pub trait CycleHooks {
    /// The Lua packages registered before the http block is read, if the
    /// Lua module is part of the configuration (the Lua module may run
    /// `init_by_lua` in its own postconfiguration, which comes before ours).
    type LuaPackages: LuaPackages;
    /// After the http block was read.
    fn postconfiguration(post: &mut Postconfiguration) -> Result<(), ()>;
    /// In the master, with the new cycle (the global `ngx_cycle` is still
    /// the old one), after its shared zones are initialised. nginx treats a
    /// failure here as fatal even on reload, so there is none.
    fn init_module(init: &InitModule);
    /// In each new worker (or the single process), with its cycle.
    fn init_process(process: &InitProcess);
    /// In a worker that exits.
    fn exit_process();
    /// In the master that exits.
    fn exit_master();
}

fn status(result: Result<(), ()>) -> ngx_int_t {
    match result {
        Ok(()) => NGX_OK as ngx_int_t,
        Err(()) => NGX_ERROR as ngx_int_t,
    }
}

pub unsafe extern "C" fn preconfiguration<H: CycleHooks>(cf: *mut ngx_conf_t) -> ngx_int_t {
    note_nginx_thread();
    // SAFETY: nginx calls preconfiguration with the http block's live
    // configuration context.
    request_guard(|| status(unsafe { register_packages::<H::LuaPackages>(cf) }))
}

/// nginx's create_*_conf: `value` in the configuration's pool, dropped
/// with it; null (nginx then fails the configuration) if the pool has no
/// room, `value` dropped. (ngx's `Pool::allocate` writes before it checks.)
///
/// # Safety
/// `cf` is the configuration context nginx passed a create_*_conf.
pub unsafe fn conf_in_pool<T>(cf: *mut ngx_conf_t, value: T) -> *mut c_void {
    unsafe extern "C" fn drop_value<T>(data: *mut c_void) {
        // SAFETY: the cleanup's data is the T conf_in_pool wrote, dropped
        // once, when nginx destroys the pool.
        unsafe { ptr::drop_in_place(data.cast::<T>()) };
    }
    // ngx_palloc aligns to NGX_ALIGNMENT, an unsigned long.
    const { assert!(core::mem::align_of::<T>() <= core::mem::align_of::<core::ffi::c_ulong>()) };
    // SAFETY: per the contract, the context's pool is live; the memory
    // ngx_palloc returns is aligned for T (above) and of T's size; the
    // cleanup, added first, gets its handler only once the value is
    // written.
    unsafe {
        let pool = (*cf).pool;
        let cleanup = ngx_pool_cleanup_add(pool, 0);
        if cleanup.is_null() {
            return ptr::null_mut();
        }
        let memory = ngx_palloc(pool, core::mem::size_of::<T>()).cast::<T>();
        if memory.is_null() {
            return ptr::null_mut();
        }
        memory.write(value);
        (*cleanup).data = memory.cast();
        (*cleanup).handler = Some(drop_value::<T>);
        memory.cast()
    }
}

/// The http module's create_loc_conf: a [`LocConf`] with nothing set.
///
/// # Safety
/// nginx's call of create_loc_conf.
pub unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: per the contract.
    unsafe { conf_in_pool(cf, LocConf::default()) }
}

/// The http module's merge_loc_conf: [`LocConf`]'s `Merge`; and a
/// `limit_except` or `if` block inside one of the module's locations
/// answers as that location does ([`LocConf::inherit_location`]). nginx
/// serves the methods a `limit_except` names with the block's own
/// location, and looks for a content handler there only (hunt 29: the
/// README's `limit_except GET { auth_basic ...; }` left every authorised
/// change to nginx's static handler); so the block gets the location's,
/// as nginx's proxy and fastcgi modules do for theirs in their merge.
///
/// # Safety
/// nginx's call of merge_loc_conf: `prev` and `conf` are [`LocConf`]s
/// create_loc_conf made, `cf`'s context is `conf`'s location's (nginx's
/// ngx_http_merge_servers and ngx_http_merge_locations set it so).
pub unsafe extern "C" fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
    // SAFETY: per the contract; two distinct locations' configurations,
    // which nothing else reaches during the call.
    let (prev, conf) = unsafe { (&*prev.cast::<LocConf>(), &mut *conf.cast::<LocConf>()) };
    if conf.merge(prev).is_err() {
        return NGX_CONF_ERROR as *mut c_char;
    }
    // SAFETY: per the contract, cf is nginx's live configuration context.
    let cf = unsafe { &*cf };
    #[allow(clippy::disallowed_methods)] // the location being merged: see clippy.toml
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf) else {
        return NGX_CONF_ERROR as *mut c_char;
    };
    if clcf.noname() != 0 {
        conf.inherit_location(prev);
        if clcf.lmt_excpt() != 0 && clcf.handler.is_none() {
            clcf.handler = conf.content_handler;
        }
    }
    NGX_CONF_OK
}

/// The http module's create_main_conf: a [`MainConf`] with every directive
/// unset.
///
/// # Safety
/// nginx's call of create_main_conf.
pub unsafe extern "C" fn create_main_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: per the contract.
    unsafe { conf_in_pool(cf, MainConf::unset()) }
}

/// A configured cycle nginx lent a callback, for `'c`: safe code never
/// gets nginx's `ngx_cycle_t` itself, a `Copy` struct of raw pointers whose
/// copy would outlive the cycle (a reload's old one, a failed reload's new
/// one); only this file makes one, from what nginx passed.
#[derive(Clone, Copy)]
pub struct Cycle<'c> {
    raw: &'c ngx_cycle_t,
}

impl<'c> Cycle<'c> {
    /// # Safety
    /// `cycle` is a cycle nginx passed to the calling callback (or the
    /// cycle of the configuration context it passed), configured as far as
    /// the callback's step goes, and live for `'c`, which does not outlast
    /// the call.
    unsafe fn from_raw(cycle: *const ngx_cycle_t) -> Cycle<'c> {
        // SAFETY: per the contract.
        Cycle { raw: unsafe { &*cycle } }
    }

    /// Its `upstream {}` blocks, in their order.
    pub fn upstreams(self) -> Vec<Upstream<'c>> {
        // SAFETY: a lent cycle is configured and outlives 'c.
        unsafe { Upstream::all_of(self.raw) }
    }

    /// The module's http-level configuration (none without an http
    /// block): for the callbacks where nothing holds it mutably.
    fn main_conf(self) -> Option<&'c MainConf> {
        if self.raw.conf_ctx.is_null() {
            return None;
        }
        #[allow(clippy::disallowed_methods)] // a lent cycle's, for as long as it is lent: see clippy.toml
        crate::Module::main_conf(self.raw)
    }

    /// Its pool (what lives as long as the cycle: cleanups run when nginx
    /// destroys it).
    pub fn pool(self) -> *mut ngx::ffi::ngx_pool_t {
        self.raw.pool
    }

    /// nginx's prefix (`-p`, or the compiled-in one), ending in `/`.
    pub fn prefix(self) -> String {
        str_lossy(&self.raw.prefix)
    }

    /// Writes `text` to the cycle's log.
    pub fn log(self, level: u32, text: &str) {
        ngx::ngx_log_error!(level, self.raw.log, "{}", text);
    }
}

/// A configuration context nginx passed to one of the module's callbacks,
/// lent for the call. What changes it (declaring a zone) is `nginx/`'s.
pub struct ConfContext<'a> {
    cf: &'a mut ngx_conf_t,
}

impl<'a> ConfContext<'a> {
    /// # Safety
    /// `cf` is the live configuration context nginx passed to the calling
    /// callback, reached by nothing else while the value lives.
    pub unsafe fn from_raw(cf: *mut ngx_conf_t) -> ConfContext<'a> {
        // SAFETY: per the contract.
        ConfContext { cf: unsafe { &mut *cf } }
    }

    /// Lends `cf` (nginx's, for the callback that passed it) for `'a`.
    pub(in crate::nginx) fn lend(cf: &'a mut ngx_conf_t) -> ConfContext<'a> {
        ConfContext { cf }
    }

    /// Writes `text` as an `[emerg]` naming the file and line being read.
    pub fn emerg(&mut self, text: &str) {
        conf_emerg(self.cf, text);
    }

    /// The context, to change: for `nginx/` only.
    pub(in crate::nginx) fn raw(&mut self) -> &mut ngx_conf_t {
        self.cf
    }
}

/// Writes `text` as an `[emerg]` naming the configuration file and line
/// being read.
fn conf_emerg(cf: &mut ngx_conf_t, text: &str) {
    ngx::ngx_conf_log_error!(NGX_LOG_EMERG, ptr::from_mut(cf), "{}", text);
}

/// The http module's postconfiguration: the http block is read, its
/// phases' handler arrays exist. Only nginx's call makes one.
pub struct Postconfiguration<'a> {
    cf: &'a mut ngx_conf_t,
}

impl<'a> Postconfiguration<'a> {
    /// The cycle being configured, its http block read, for the callback
    /// (its `MainConf` is reached through [`Postconfiguration::main_conf`]
    /// only, mutably).
    pub fn cycle(&self) -> Cycle<'a> {
        // SAFETY: a configuration context's cycle outlives the context,
        // which is nginx's for the callback.
        unsafe { Cycle::from_raw(self.cf.cycle) }
    }

    /// Writes `text` to the log of the configuration being read, as is (no
    /// file and line: postconfiguration's would be the http block's end).
    pub fn log(&self, level: u32, text: &str) {
        ngx::ngx_log_error!(level, self.cf.log, "{}", text);
    }

    /// The configuration context of the http block, lent.
    pub fn context(&mut self) -> ConfContext<'_> {
        ConfContext::lend(self.cf)
    }

    /// Which balancers this nginx has ([`KnownBalancers::probe`]).
    pub fn probe_balancers(&mut self) -> KnownBalancers {
        // SAFETY: the http block's live context, in its postconfiguration,
        // borrowed through self.
        unsafe { KnownBalancers::probe(self.cf) }
    }

    /// The module's http-level configuration.
    pub fn main_conf(&mut self) -> Option<&mut MainConf> {
        #[allow(clippy::disallowed_methods)] // this module's own, borrowed through self: see clippy.toml
        crate::Module::main_conf_mut(self.cf)
    }

    /// Runs `f` with the cycle being configured and the module's
    /// http-level configuration (which lives in the cycle's pool, not in
    /// the cycle structure: the two do not overlap).
    pub fn with_main_conf<R>(&mut self, f: impl FnOnce(Cycle<'_>, &mut MainConf) -> R) -> Option<R> {
        #[allow(clippy::disallowed_methods)] // this module's own, borrowed through self: see clippy.toml
        let main = crate::Module::main_conf_mut(self.cf)?;
        Some(f(self.cycle(), main))
    }

    /// Runs `f` with the configuration context (to declare a zone) and
    /// the module's http-level configuration (in the context's pool, not
    /// in the context: the two do not overlap).
    pub fn with_context_and_main_conf<R>(
        &mut self,
        f: impl FnOnce(&mut ConfContext<'_>, &mut MainConf) -> R,
    ) -> Option<R> {
        #[allow(clippy::disallowed_methods)] // this module's own, in the context's pool: see clippy.toml
        let main = crate::Module::main_conf_mut(self.cf)?;
        Some(f(&mut ConfContext::lend(self.cf), main))
    }

    /// Adds `H`'s handler to the http block's POST_READ phase.
    pub fn add_post_read_handler<H: PostReadHandler>(&mut self) -> Result<(), ()> {
        let handler = H::HANDLER;
        #[allow(clippy::disallowed_methods)] // nginx's core module, in its postconfiguration: see clippy.toml
        let cmcf = NgxHttpCoreModule::main_conf_mut(self.cf).ok_or(())?;
        let handlers = &mut cmcf.phases[ngx_http_phases_NGX_HTTP_POST_READ_PHASE as usize].handlers;
        // SAFETY: at postconfiguration the phase's array exists
        // (ngx_http_init_phases ran), of ngx_http_handler_pt elements; a
        // pushed slot is uninitialised memory of that size, written at once.
        unsafe {
            let slot = ngx_array_push(handlers).cast::<ngx_http_handler_pt>();
            if slot.is_null() {
                return Err(());
            }
            slot.write(Some(handler));
        }
        Ok(())
    }
}

pub unsafe extern "C" fn postconfiguration<H: CycleHooks>(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: as for preconfiguration.
    let mut post = Postconfiguration { cf: unsafe { &mut *cf } };
    request_guard(|| status(H::postconfiguration(&mut post)))
}

/// The master's init_module of a new cycle: its shared zones exist and are
/// initialised, no worker of it runs yet, and nothing can fail the cycle
/// any more. Only nginx's call of init_module makes one, so a function
/// that takes it may rely on all of that.
pub struct InitModule<'a> {
    cycle: Cycle<'a>,
    /// The new cycle's `upstream {}` blocks, gathered once.
    upstreams: std::cell::OnceCell<std::collections::HashSet<*mut ngx::ffi::ngx_http_upstream_srv_conf_t>>,
    /// See [`InitModule::replaces_served_cycle`].
    replaces_served: bool,
}

impl<'a> InitModule<'a> {
    /// The new cycle, for the callback.
    pub fn cycle(&self) -> Cycle<'a> {
        self.cycle
    }

    /// Whether the new cycle replaces the one this module's last
    /// init_module set up in this process (a reload of a running nginx).
    /// Not at start, and not after a cycle that did not load the module (a
    /// reload without `load_module`, then one with it, where the module
    /// stayed loaded: glibc keeps an object some of whose thread-locals
    /// have destructors, ASan's nginx keeps every one): what the module's
    /// statics say of the running cycle is then of a cycle nginx freed
    /// since (review 23: the master wrote through such a zone pointer).
    pub fn replaces_served_cycle(&self) -> bool {
        self.replaces_served
    }

    /// Whether `upstream` is a block of the new cycle (they are gathered
    /// on the first call: asked once per block, this costs no more than
    /// listing them once).
    pub fn has_upstream(&self, upstream: Upstream<'_>) -> bool {
        let blocks = self.upstreams.get_or_init(|| self.cycle.upstreams().into_iter().map(Upstream::raw).collect());
        blocks.contains(&upstream.raw())
    }

    /// Whether the new cycle's http block knows variable `name` (lower
    /// case): a declared one, or one of a prefix family such as `arg_`.
    pub fn has_variable(&self, name: &str) -> bool {
        // SAFETY: init_module's cycle is configured (its variables hashed
        // at the end of its http block) and outlives the call.
        unsafe { crate::nginx::variables::variable_exists_in(self.cycle.raw, name) }
    }

    /// The new cycle's http-level configuration of the module (none
    /// without an http block).
    pub fn main_conf(&self) -> Option<&'a MainConf> {
        self.cycle.main_conf()
    }

    /// Writes `text` to the new cycle's log (its `error_log`, which may not
    /// be the running one's).
    pub fn log(&self, level: u32, text: &str) {
        self.cycle.log(level, text);
    }
}

/// A cycle hook's call: nginx's thread noted, the cycle lent to `hook`
/// for the call, inside the panic barrier.
///
/// # Safety
/// `cycle` is the cycle nginx passed the calling hook, configured as far
/// as that hook's step goes.
unsafe fn run_cycle_hook(cycle: *mut ngx_cycle_t, hook: impl FnOnce(Cycle<'_>)) -> ngx_int_t {
    note_nginx_thread();
    // SAFETY: per the contract; the lent cycle does not outlive the call.
    let cycle = unsafe { Cycle::from_raw(cycle) };
    request_guard(|| {
        hook(cycle);
        NGX_OK as ngx_int_t
    })
}

pub unsafe extern "C" fn init_module<H: CycleHooks>(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx calls init_module with the new cycle, whose `old_cycle`
    // it set (the running cycle, or its initial one at start).
    let replaces_served = served_cycle() == unsafe { (*cycle).old_cycle } as usize;
    // Nothing of the running cycle is reachable while the new one's
    // init_module runs (the running process's, under `master_process off`).
    clear_served_cycle();
    // Its lines go to the new cycle's log (`ngx_cycle` is another's).
    // SAFETY: nginx calls init_module with the new cycle, fully configured,
    // its zones initialised.
    let status = crate::nginx::log::with_init_module_log(unsafe { (*cycle).log }, || unsafe {
        run_cycle_hook(cycle, |cycle| {
            H::init_module(&InitModule { cycle, upstreams: Default::default(), replaces_served })
        })
    });
    // The cycle this process's workers serve (or, under master_process
    // off, this process once nginx's reload returns).
    // SAFETY: the new cycle, live.
    unsafe { set_served_cycle(cycle) };
    status
}

/// A handler for every request's POST_READ phase.
///
/// # Safety
/// `HANDLER` is a function nginx may call in the POST_READ phase of any
/// request of the http block (not any `unsafe extern "C"` function of that
/// type: a content handler's, say, expects its location's configuration).
pub unsafe trait PostReadHandler {
    const HANDLER: unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t;
}

/// A new worker's (or the single process's) init_process. Only nginx's
/// call makes one.
pub struct InitProcess<'a> {
    cycle: Cycle<'a>,
}

impl<'a> InitProcess<'a> {
    /// The process's cycle, for the callback.
    pub fn cycle(&self) -> Cycle<'a> {
        self.cycle
    }

    /// The cycle's http-level configuration of the module (none without
    /// an http block).
    pub fn main_conf(&self) -> Option<&'a MainConf> {
        self.cycle.main_conf()
    }
}

pub unsafe extern "C" fn init_process<H: CycleHooks>(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx calls init_process with the process's cycle.
    unsafe { run_cycle_hook(cycle, |cycle| H::init_process(&InitProcess { cycle })) }
}

pub unsafe extern "C" fn exit_process<H: CycleHooks>(_cycle: *mut ngx_cycle_t) {
    let _ = request_guard(|| {
        H::exit_process();
        NGX_OK as ngx_int_t
    });
    mark_exited();
}

pub unsafe extern "C" fn exit_master<H: CycleHooks>(_cycle: *mut ngx_cycle_t) {
    let _ = request_guard(|| {
        H::exit_master();
        NGX_OK as ngx_int_t
    });
    mark_exited();
}

/// A configuration a directive's `conf` offset selects: nginx passes the
/// directive's handler this module's structure of that level.
///
/// # Safety
/// `OFFSET` is the `NGX_HTTP_*_CONF_OFFSET` of the level whose module
/// configuration (created by this module's `create_*_conf`) is `Self`.
pub unsafe trait ConfLevel {
    const OFFSET: usize;
}

/// Why a directive was refused.
pub enum DirectiveError {
    /// The handler logged its own `[emerg]`, or nginx has nothing to add.
    Logged,
    /// nginx's slot setter refused it with its message (nginx logs it).
    Nginx(SlotMessage),
}

/// A message of nginx's slot setter (a static C string of nginx's); only
/// [`DirectiveCall::set_size`] makes one.
pub struct SlotMessage(*mut c_char);

/// A directive being read: its words, the configuration it sets, and the
/// configuration context.
pub struct DirectiveCall<'a, C> {
    cf: &'a mut ngx_conf_t,
    cmd: &'a mut ngx_command_t,
    conf: *mut c_void,
    _conf: core::marker::PhantomData<&'a mut C>,
}

impl<C> DirectiveCall<'_, C> {
    /// The directive's words, its name first (lossy UTF-8).
    pub fn words(&self) -> Vec<String> {
        if self.cf.args.is_null() {
            return Vec::new();
        }
        // SAFETY: while a directive is read, cf->args is nginx's array of
        // its words, ngx_str_t elements.
        let words = unsafe { (*self.cf.args).as_slice::<ngx_str_t>() };
        words.iter().map(str_lossy).collect()
    }

    /// The configuration the directive sets.
    pub fn conf(&mut self) -> &mut C {
        // SAFETY: nginx passes the module's configuration of the level the
        // directive's `conf` offset names, C (ConfLevel, see `command`);
        // borrowed through self, it is reached by nothing else meanwhile.
        unsafe { &mut *self.conf.cast::<C>() }
    }

    /// Writes `text` as an `[emerg]` naming the directive's file and line.
    pub fn emerg(&mut self, text: &str) {
        conf_emerg(self.cf, text);
    }

    /// Runs nginx's size parser on the directive (`ngx_conf_set_size_slot`):
    /// the field at the command's offset gets the value, or nginx's message.
    pub fn set_size(&mut self) -> Result<(), DirectiveError> {
        // SAFETY: the command's offset is a usize field of C (`command`'s
        // contract), whose memory `conf` is.
        let rv = unsafe { ngx_conf_set_size_slot(self.cf, self.cmd, self.conf) };
        if rv.is_null() {
            Ok(())
        } else {
            Err(DirectiveError::Nginx(SlotMessage(rv)))
        }
    }

    /// The module's http-level configuration.
    pub fn main_conf(&mut self) -> Option<&mut MainConf> {
        #[allow(clippy::disallowed_methods)] // this module's own, borrowed through self: see clippy.toml
        crate::Module::main_conf_mut(self.cf)
    }
}

impl DirectiveCall<'_, LocConf> {
    /// Makes the location being read answer with `H` (its content handler
    /// is `content_handler::<H>`: not any function of that type, which
    /// may expect another phase or another module's data), and a
    /// `limit_except` block inside it too ([`merge_loc_conf`]).
    pub fn set_location_handler<H: RequestHandler>(&mut self) -> Result<(), DirectiveError> {
        #[allow(clippy::disallowed_methods)] // the location being read: see clippy.toml
        let clcf = NgxHttpCoreModule::location_conf_mut(self.cf).ok_or(DirectiveError::Logged)?;
        clcf.handler = Some(content_handler::<H>);
        self.conf().content_handler = clcf.handler;
        Ok(())
    }
}

/// A directive's handler.
pub trait Directive {
    /// The configuration the directive sets.
    type Conf: ConfLevel;
    fn set(call: &mut DirectiveCall<'_, Self::Conf>) -> Result<(), DirectiveError>;
}

unsafe extern "C" fn directive<D: Directive>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    conf_guard(|| {
        // SAFETY: nginx calls a directive's handler with its live
        // configuration context, the command (from `command`, whose `conf`
        // offset is D::Conf's) and that level's configuration of the module.
        let mut call = unsafe {
            DirectiveCall { cf: &mut *cf, cmd: &mut *cmd, conf, _conf: core::marker::PhantomData::<&mut D::Conf> }
        };
        match D::set(&mut call) {
            Ok(()) => NGX_CONF_OK,
            Err(DirectiveError::Logged) => NGX_CONF_ERROR,
            Err(DirectiveError::Nginx(SlotMessage(message))) => message,
        }
    })
}

/// The directive table's entry for `D`: `flags` are the contexts and
/// arguments (`NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1`...), `field` the offset
/// of the field in `D::Conf` nginx's slot setters fill in (0 if none).
///
/// # Safety
/// `flags` name http contexts only (`NGX_HTTP_*_CONF`, never
/// `NGX_DIRECT_CONF`/`NGX_MAIN_CONF`), so that nginx passes `D::Conf`; if
/// `D::set` calls [`DirectiveCall::set_size`], `field` is the offset of a
/// `usize` field of `D::Conf`.
pub const unsafe fn command<D: Directive>(name: ngx_str_t, flags: u32, field: usize) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: flags as ngx_uint_t,
        set: Some(directive::<D>),
        conf: <D::Conf as ConfLevel>::OFFSET,
        offset: field,
        post: ptr::null_mut(),
    }
}

/// An entry whose value nginx's own slot setter (`ngx_conf_set_flag_slot`...)
/// stores at `field` of `C`.
///
/// # Safety
/// `flags` name http contexts only, and `field` is the offset of a field of
/// `C` of the type `set` stores (`ngx_flag_t` for the flag slot,
/// `ngx_msec_t` for msec, `ngx_str_t` for str...).
pub const unsafe fn slot<C: ConfLevel>(
    name: ngx_str_t,
    flags: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    field: usize,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: flags as ngx_uint_t,
        set: Some(set),
        conf: C::OFFSET,
        offset: field,
        post: ptr::null_mut(),
    }
}
