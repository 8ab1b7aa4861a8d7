//! Telling which balancer a configured upstream uses, and running a
//! balancer's own directive on a scratch upstream; the `tried` bitmaps the
//! request hook gives the round-robin data of zone upstreams' requests
//! (at the end, see `zone/tried_bitmap.rs`).
//!
//! nginx records the balancer only as a function pointer
//! (`uscf->peer.init_upstream`) to static functions, and the balancers'
//! own configurations are not all initialised (the hash module's is
//! `ngx_palloc`ed). To recognise them, the module runs the `ip_hash`,
//! `random`, `least_conn`, `hash k` and `hash k consistent` directive
//! handlers once on a scratch upstream at configuration time and remembers
//! which `init_upstream` each installs.
//!
//! `keepalive` wraps the balancer: its directive stores the balancer's
//! `init_upstream` in its own srv conf and installs its own. When it comes
//! after the balancer directive, the balancer is read back from there
//! ([`KeepaliveSrvConf`]); when it comes before, the balancer directive
//! replaces keepalive's `init_upstream` (nginx warns "load balancing method
//! redefined" and the upstream has no keepalive), so the balancer is seen
//! directly.

#![allow(clippy::disallowed_types)] // the wrapper layer: nginx's own structs (see clippy.toml)

use core::ffi::c_void;
use core::mem::{size_of, zeroed};
use core::ptr;

use crate::nginx::peer_lock::ListLengths;
use crate::nginx::upstreams::Upstream;
use dynamic_upstream_core::Balancer;
use ngx::ffi::{
    ngx_array_t, ngx_calloc, ngx_conf_t, ngx_http_conf_ctx_t, ngx_http_request_t, ngx_http_upstream_init_peer_pt,
    ngx_http_upstream_init_pt, ngx_http_upstream_init_round_robin, ngx_http_upstream_module,
    ngx_http_upstream_srv_conf_t, ngx_module_t, ngx_msec_t, ngx_pcalloc, ngx_pool_cleanup_add, ngx_pool_t, ngx_queue_t,
    ngx_str_t, ngx_uint_t, NGX_HTTP_UPSTREAM_BACKUP, NGX_LOG_WARN,
};
use ngx::ngx_string;

extern "C" {
    // Exported by the nginx binary; declared only in their .c files.
    static mut ngx_http_upstream_hash_module: ngx_module_t;
    static mut ngx_http_upstream_ip_hash_module: ngx_module_t;
    static mut ngx_http_upstream_random_module: ngx_module_t;
    static mut ngx_http_upstream_least_conn_module: ngx_module_t;
    static mut ngx_http_upstream_keepalive_module: ngx_module_t;
}

/// `ngx_http_upstream_keepalive_srv_conf_t`, copied from nginx 1.22.1's
/// `src/http/modules/ngx_http_upstream_keepalive_module.c` (declared only
/// there). Only `original_init_upstream` is read. [`KnownBalancers::probe`]
/// checks the layout on the running nginx (the directive must leave its
/// argument in `max_cached` and round robin in `original_init_upstream`);
/// if it does not match, keepalive is not looked through and its upstreams
/// count as unknown balancers. Another nginx version whose struct differs
/// needs its own mirror, chosen by `nginx_version`.
#[repr(C)]
struct KeepaliveSrvConf {
    max_cached: ngx_uint_t,
    requests: ngx_uint_t,
    time: ngx_msec_t,
    timeout: ngx_msec_t,
    cache: ngx_queue_t,
    free: ngx_queue_t,
    original_init_upstream: ngx_http_upstream_init_pt,
    original_init_peer: ngx_http_upstream_init_peer_pt,
}

// The probe gives keepalive's directive BALANCER_CONF_WORDS words as its conf.
const _: () = assert!(core::mem::size_of::<KeepaliveSrvConf>() <= BALANCER_CONF_WORDS * 8);

/// `init_upstream` functions installed by the balancer directives, learnt
/// at configuration time (see the module comment).
#[derive(Clone, Copy, Default)]
pub struct KnownBalancers {
    ip_hash: ngx_http_upstream_init_pt,
    random: ngx_http_upstream_init_pt,
    least_conn: ngx_http_upstream_init_pt,
    hash: ngx_http_upstream_init_pt,
    consistent_hash: ngx_http_upstream_init_pt,
    /// keepalive's, if [`KeepaliveSrvConf`] matches the running nginx.
    keepalive: ngx_http_upstream_init_pt,
}

impl KnownBalancers {
    /// Runs each balancer directive's handler on a scratch upstream (http
    /// postconfiguration).
    ///
    /// # Safety
    /// `cf` is the live configuration context of the http block, in its
    /// postconfiguration, reached by nothing else meanwhile.
    pub unsafe fn probe(cf: *mut ngx_conf_t) -> Self {
        // SAFETY: cf is the live configuration context. The hash key is a
        // literal, so compiling it needs no variables.
        let probe = |balancer: Balancer| unsafe {
            balancer_directive(&balancer).and_then(|(module, args)| probe_directive(cf, module, &args))
        };
        let hash = |consistent| Balancer::Hash { key: String::new(), consistent };
        let known = Self {
            ip_hash: probe(Balancer::IpHash),
            random: probe(Balancer::Random),
            least_conn: probe(Balancer::LeastConn),
            hash: probe(hash(false)),
            consistent_hash: probe(hash(true)),
            // SAFETY: as above.
            keepalive: unsafe { probe_keepalive(cf) },
        };
        if known.keepalive.is_none() {
            // SAFETY: cf's log is live.
            unsafe {
                ngx::ngx_log_error!(
                    NGX_LOG_WARN,
                    (*cf).log,
                    "dynamic upstream: this nginx's keepalive module is not the one the module was written for; \
                     upstreams with keepalive count as using an unknown balancer (adding, removing and \
                     re-weighting their peers answer 409)"
                );
            }
        }
        known
    }

    /// The balancer `upstream` uses (once its configuration is read).
    pub fn classify(&self, upstream: Upstream) -> Balancer {
        let uscf = upstream.raw();
        let mut init = upstream.conf().peer.init_upstream;
        if self.keepalive.is_some() && same(init, self.keepalive) {
            // SAFETY: keepalive's srv conf of this configured upstream,
            // whose layout probe() checked.
            init = unsafe { (*keepalive_conf(uscf)).original_init_upstream };
        }
        if init.is_none() || same(init, Some(ngx_http_upstream_init_round_robin)) {
            return Balancer::RoundRobin;
        }
        let known = [
            (self.least_conn, Balancer::LeastConn),
            (self.ip_hash, Balancer::IpHash),
            (self.random, Balancer::Random),
            (self.hash, Balancer::Hash { key: String::new(), consistent: false }),
            (self.consistent_hash, Balancer::Hash { key: String::new(), consistent: true }),
        ];
        for (probed, balancer) in known {
            if probed.is_some() && same(probed, init) {
                return balancer;
            }
        }
        let flags = upstream.conf().flags;
        Balancer::Other { backup: flags & NGX_HTTP_UPSTREAM_BACKUP as usize != 0 }
    }
}

fn same(a: ngx_http_upstream_init_pt, b: ngx_http_upstream_init_pt) -> bool {
    a.map(|f| f as usize) == b.map(|f| f as usize)
}

/// keepalive's srv conf of `uscf`.
///
/// # Safety
/// `uscf` is an upstream block of the configuration being read or run.
unsafe fn keepalive_conf(uscf: *mut ngx_http_upstream_srv_conf_t) -> *mut KeepaliveSrvConf {
    // SAFETY: per the contract: nginx's ngx_http_conf_upstream_srv_conf();
    // every http module has a srv conf slot in every upstream block.
    unsafe {
        let index = (*ptr::addr_of!(ngx_http_upstream_keepalive_module)).ctx_index;
        (*(*uscf).srv_conf.add(index)).cast()
    }
}

/// Runs `keepalive 1;` on a scratch upstream with no balancer and returns
/// the `init_upstream` it installs, if the directive left what
/// [`KeepaliveSrvConf`] expects where it expects it.
///
/// # Safety
/// `cf` must be the live configuration context.
unsafe fn probe_keepalive(cf: *mut ngx_conf_t) -> ngx_http_upstream_init_pt {
    // SAFETY: per the contract; keepalive's directive only sets fields of
    // the upstream and of its own srv conf, which the scratch words hold
    // (KeepaliveSrvConf is 10 words).
    unsafe {
        let mut scratch_upstream: ngx_http_upstream_srv_conf_t = zeroed();
        let mut scratch_conf = [0u64; BALANCER_CONF_WORDS];
        let module = ptr::addr_of_mut!(ngx_http_upstream_keepalive_module);
        let conf = scratch_conf.as_mut_ptr().cast::<KeepaliveSrvConf>();
        let ok = run_directive(&*cf, module, &[ngx_string!("1")], &mut scratch_upstream, conf.cast());
        let layout_matches =
            (*conf).max_cached == 1 && same((*conf).original_init_upstream, Some(ngx_http_upstream_init_round_robin));
        if ok && layout_matches {
            scratch_upstream.peer.init_upstream
        } else {
            None
        }
    }
}

/// Calls the first directive handler of `module` (`ip_hash;`, `random;`,
/// `least_conn;`, `hash KEY [consistent];`) with `args` on a scratch
/// upstream and returns the `init_upstream` it installs.
///
/// # Safety
/// `cf` must be the live configuration context; `module` an http upstream
/// balancer module (see [`run_directive`]).
unsafe fn probe_directive(
    cf: *mut ngx_conf_t,
    module: *mut ngx_module_t,
    args: &[ngx_str_t],
) -> ngx_http_upstream_init_pt {
    // SAFETY: per the contract; the scratch memory outlives the call.
    unsafe {
        let mut scratch_upstream: ngx_http_upstream_srv_conf_t = zeroed();
        let mut scratch_module_conf = [0u64; BALANCER_CONF_WORDS];
        let ok = run_directive(&*cf, module, args, &mut scratch_upstream, scratch_module_conf.as_mut_ptr().cast());
        if ok {
            scratch_upstream.peer.init_upstream
        } else {
            None
        }
    }
}

/// Room for any built-in balancer's own srv conf (the largest, hash's, is a
/// complex value and a pointer: 7 words).
pub const BALANCER_CONF_WORDS: usize = 16;

/// Runs the first directive handler of a balancer `module` with `args` for
/// `uscf`, with `module_conf` (zeroed, [`BALANCER_CONF_WORDS`] words) as the
/// module's srv conf. `cf_template` provides pool and log.
///
/// # Safety
/// `module` must be one of nginx's balancer modules, whose first command
/// only sets fields of the upstream and of its own srv conf (and, for
/// `hash`, compiles a key, which must be a literal here).
pub unsafe fn run_directive(
    cf_template: &ngx_conf_t,
    module: *mut ngx_module_t,
    args: &[ngx_str_t],
    uscf: *mut ngx_http_upstream_srv_conf_t,
    module_conf: *mut c_void,
) -> bool {
    // SAFETY: per the contract; the context, argument array and conf copy
    // live on this stack frame for the duration of the call.
    unsafe {
        let command = (*module).commands;
        let Some(set) = command.as_ref().and_then(|c| c.set) else {
            return false;
        };
        let upstream_index = (*ptr::addr_of!(ngx_http_upstream_module)).ctx_index;
        let mut srv_confs: Vec<*mut c_void> = vec![ptr::null_mut(); upstream_index + 1];
        srv_confs[upstream_index] = uscf.cast();
        let mut ctx: ngx_http_conf_ctx_t = zeroed();
        ctx.srv_conf = srv_confs.as_mut_ptr();
        let mut words: Vec<ngx_str_t> = Vec::with_capacity(args.len() + 1);
        words.push((*command).name);
        words.extend_from_slice(args);
        let mut args_array: ngx_array_t = zeroed();
        args_array.elts = words.as_mut_ptr().cast();
        args_array.nelts = words.len();
        args_array.size = core::mem::size_of::<ngx_str_t>();
        args_array.nalloc = words.len();
        args_array.pool = cf_template.pool;
        let mut cf: ngx_conf_t = *cf_template;
        cf.ctx = ptr::addr_of_mut!(ctx).cast();
        cf.args = &mut args_array;
        set(&mut cf, command, module_conf).is_null()
    }
}

/// The module whose directive sets up `balancer`, and the directive's
/// arguments (a literal stands in for a hash key: keys are evaluated per
/// request by the caller; `random two`'s arguments as written). None for
/// round robin, which has no directive, and for another module's balancer.
pub fn balancer_directive(balancer: &Balancer) -> Option<(*mut ngx_module_t, Vec<ngx_str_t>)> {
    // Only the addresses of nginx's module statics are taken.
    Some(match balancer {
        Balancer::LeastConn => (ptr::addr_of_mut!(ngx_http_upstream_least_conn_module), vec![]),
        Balancer::IpHash => (ptr::addr_of_mut!(ngx_http_upstream_ip_hash_module), vec![]),
        Balancer::Random => (ptr::addr_of_mut!(ngx_http_upstream_random_module), vec![]),
        Balancer::RandomTwo { least_conn: false } => {
            (ptr::addr_of_mut!(ngx_http_upstream_random_module), vec![ngx_string!("two")])
        }
        Balancer::RandomTwo { least_conn: true } => {
            (ptr::addr_of_mut!(ngx_http_upstream_random_module), vec![ngx_string!("two"), ngx_string!("least_conn")])
        }
        Balancer::Hash { consistent: false, .. } => {
            (ptr::addr_of_mut!(ngx_http_upstream_hash_module), vec![ngx_string!("k")])
        }
        Balancer::Hash { consistent: true, .. } => {
            (ptr::addr_of_mut!(ngx_http_upstream_hash_module), vec![ngx_string!("k"), ngx_string!("consistent")])
        }
        Balancer::RoundRobin | Balancer::Other { .. } => return None,
    })
}

// The requests' `tried` bitmaps (`zone/tried_bitmap.rs` says what for and
// how they are sized): pool memory, the worker's spares and the pool
// cleanups that give them back.

const BITS_PER_WORD: usize = usize::BITS as usize;

/// Bitmaps up to this many words (4,096 peers) come from the request's
/// pool, zeroed there; larger ones are lent ([`SpareBitmaps`]).
const POOL_BITMAP_WORDS: usize = 64;

/// At most this many zeroed bitmaps, and at most [`SPARE_BYTES`] of them,
/// wait in a worker for the next requests of one upstream; one given back
/// when they are there is freed. Requests beyond as many at once allocate
/// (and zero) their own.
const SPARE_BITMAPS: usize = 64;
const SPARE_BYTES: usize = 1 << 20;

/// A worker's zeroed `tried` bitmaps for one upstream (in its
/// `SrvConf`, process memory), all as long: lent to requests
/// ([`lend_bitmap`]) and zeroed as they come back ([`give_back_bitmap`]),
/// so that a large zone does not cost each request an allocation and a
/// zeroing of its full size.
pub struct SpareBitmaps {
    count: usize,
    bitmaps: [*mut usize; SPARE_BITMAPS],
    /// Bitmaps are kept only once the cycle frees them at its end
    /// ([`free_spares_with_pool`]); until then each is freed as it comes
    /// back.
    keep: bool,
}

impl Default for SpareBitmaps {
    fn default() -> Self {
        Self { count: 0, bitmaps: [ptr::null_mut(); SPARE_BITMAPS], keep: false }
    }
}

/// Has the spares freed with a cycle's pool (workers destroy it as they
/// exit; requests still running then keep their bitmaps, with the rest of
/// their pool), and only then kept (if the pool has no room for the
/// cleanup, each bitmap is freed as it comes back).
///
/// # Safety
/// `pool` is the pool of the cycle whose configuration holds `spares`, in
/// init_module.
pub unsafe fn free_spares_with_pool(pool: *mut ngx_pool_t, spares: &mut SpareBitmaps) {
    // SAFETY: per the contract; the cleanup runs before the pool's memory,
    // which holds `spares`, is freed.
    unsafe {
        let cleanup = ngx_pool_cleanup_add(pool, 0);
        if cleanup.is_null() {
            return;
        }
        (*cleanup).data = ptr::from_mut(spares).cast();
        (*cleanup).handler = Some(free_spares);
        spares.keep = true;
    }
}

/// Pool cleanup of a cycle: frees the spares at `data`.
unsafe extern "C" fn free_spares(data: *mut c_void) {
    // No panic can happen here: a bounded loop and libc::free.
    // SAFETY: `data` is the SpareBitmaps of free_spares_with_pool, still
    // allocated; each spare came from ngx_calloc and is lent to no request.
    unsafe {
        let spares = &mut *data.cast::<SpareBitmaps>();
        for bitmap in &mut spares.bitmaps[..spares.count] {
            libc::free(bitmap.cast());
            *bitmap = ptr::null_mut();
        }
        spares.count = 0;
    }
}

/// What a request's pool cleanup needs to give its lent bitmap back.
struct Loan {
    bitmap: *mut usize,
    words: usize,
    spares: *mut SpareBitmaps,
    lengths: *const ListLengths,
    /// The lists' most peers when the bitmap was lent: nginx's resolver
    /// (1.27.3 and later) grows and shrinks a list without the module
    /// noting it, so the lengths when it is given back may be lower than
    /// the positions the request's balancer could set (review 25 F5).
    most_when_lent: usize,
}

/// A zeroed bitmap of `words` words for request `r` (see the module
/// comment); null if memory is short.
///
/// # Safety
/// `r` is a live request of the zone upstream whose spares are `spares`,
/// and list lengths `lengths`, all living as long as
/// the cycle; `words` is the same for every call with these `spares`.
pub unsafe fn zeroed_bitmap(
    r: *mut ngx_http_request_t,
    words: usize,
    spares: *mut SpareBitmaps,
    lengths: *const ListLengths,
) -> *mut usize {
    // SAFETY: per the contract.
    unsafe {
        if words <= POOL_BITMAP_WORDS {
            ngx_pcalloc((*r).pool, words * size_of::<usize>()).cast()
        } else {
            let most_when_lent = (*lengths).most();
            lend_bitmap(r, Loan { bitmap: ptr::null_mut(), words, spares, lengths, most_when_lent })
        }
    }
}

/// `loan.bitmap` taken from the spares (or allocated), to be given back
/// when the request's pool goes; null if memory is short.
///
/// # Safety
/// As for [`zeroed_bitmap`].
unsafe fn lend_bitmap(r: *mut ngx_http_request_t, mut loan: Loan) -> *mut usize {
    // SAFETY: per the contract; the spares are this process's and nginx
    // runs one thread per process. The cleanup's data block is ours.
    unsafe {
        let cleanup = ngx_pool_cleanup_add((*r).pool, size_of::<Loan>());
        if cleanup.is_null() {
            return ptr::null_mut();
        }
        let spares = &mut *loan.spares;
        let words = loan.words;
        let bitmap = if spares.count > 0 {
            spares.count -= 1;
            spares.bitmaps[spares.count]
        } else {
            ngx_calloc(words * size_of::<usize>(), (*(*r).connection).log).cast::<usize>()
        };
        if bitmap.is_null() {
            return ptr::null_mut(); // the cleanup stays, without a handler
        }
        loan.bitmap = bitmap;
        (*cleanup).data.cast::<Loan>().write(loan);
        (*cleanup).handler = Some(give_back_bitmap);
        bitmap
    }
}

/// Pool cleanup of a request with a lent bitmap: zeroes the words its
/// balancer can have set (list positions below the most peers the zone's
/// lists had when it was lent or have had since) and keeps it for the
/// next request.
unsafe extern "C" fn give_back_bitmap(data: *mut c_void) {
    // No panic can happen here: arithmetic, raw pointer work and FFI calls.
    // SAFETY: `data` is the Loan written by lend_bitmap; the request that
    // used the bitmap is being freed (its pool goes); the spares, the zone
    // list lengths live as long as the cycle, which outlives its
    // requests.
    unsafe {
        let loan = &*data.cast::<Loan>();
        let most = (*loan.lengths).most().max(loan.most_when_lent);
        let dirty = most.div_ceil(BITS_PER_WORD).min(loan.words);
        ptr::write_bytes(loan.bitmap, 0, dirty);
        let spares = &mut *loan.spares;
        let room = SPARE_BITMAPS.min(SPARE_BYTES / (loan.words * size_of::<usize>()));
        if spares.keep && spares.count < room {
            spares.bitmaps[spares.count] = loan.bitmap;
            spares.count += 1;
        } else {
            libc::free(loan.bitmap.cast());
        }
    }
}
