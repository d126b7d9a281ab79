//! Thread identity asked for explicitly (`Builder::thread_identity`, and
//! every `green::thread` thread), without `patch()`: each such green thread
//! has its own thread-locals, `std::thread::current()`, errno, and its
//! thread-locals are destroyed when it ends, is killed, or is unwound at
//! its OS thread's exit. Green threads without it still share the OS
//! thread's.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn supported() -> bool {
    match green::patch::thread_identity_supported() {
        Ok(()) => true,
        Err(why) => {
            // Only x86-64 and AArch64 glibc are validated; elsewhere the
            // fallback is what these tests would see, and the
            // shared-identity tests cover it.
            if cfg!(all(
                any(target_arch = "x86_64", target_arch = "aarch64"),
                target_env = "gnu"
            )) {
                panic!("identity must be supported on x86-64 and AArch64 glibc: {why}");
            }
            false
        }
    }
}

/// The C compiler for this target: `$CC` (a cross compiler, when the
/// tests run under an emulator), else `cc`.
fn c_compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

fn own() -> green::Builder {
    green::Builder::new().thread_identity(true)
}

thread_local!(static COUNT: Cell<u32> = const { Cell::new(0) });

#[test]
fn own_thread_locals_start_fresh_and_stay_apart() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    COUNT.set(100);
    let a = own().spawn(|| {
        COUNT.set(COUNT.get() + 1);
        green::sleep(Duration::from_millis(5));
        COUNT.get()
    })?;
    let b = own().spawn(|| {
        COUNT.set(COUNT.get() + 10);
        green::yield_now();
        COUNT.get()
    })?;
    let shared = green::Builder::new()
        .thread_identity(false)
        .spawn(|| COUNT.get())?;
    assert_eq!(a.wait(), 1);
    assert_eq!(b.wait(), 10);
    assert_eq!(shared.wait(), 100, "without identity the OS thread's value");
    assert_eq!(COUNT.get(), 100);
    Ok(())
}

#[test]
fn each_is_a_distinct_std_thread() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let main = std::thread::current().id();
    let ids: Vec<_> = (0..4)
        .map(|_| own().spawn(|| std::thread::current().id()))
        .collect::<Result<_, _>>()?;
    let ids: Vec<_> = ids.into_iter().map(|g| g.wait()).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_ne!(*id, main);
        assert!(!ids[..i].contains(id), "two green threads share {id:?}");
    }
    Ok(())
}

#[test]
fn errno_is_per_green_thread() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let set = |e| {
        // SAFETY: the calling thread's errno.
        unsafe { *libc::__errno_location() = e }
    };
    // SAFETY: as above.
    let get = || unsafe { *libc::__errno_location() };
    let a = own().spawn(move || {
        set(11);
        green::yield_now();
        get()
    })?;
    let b = own().spawn(move || {
        set(22);
        green::yield_now();
        get()
    })?;
    assert_eq!((a.wait(), b.wait()), (11, 22));
    Ok(())
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
thread_local!(static GUARD: Cell<Option<Counted>> = const { Cell::new(None) });

#[test]
fn thread_local_destructor_runs_when_it_ends() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let gt = own().spawn(move || GUARD.set(Some(Counted(d))))?;
    gt.wait();
    // The destructor ran before the joiner saw the result.
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn thread_local_destructor_runs_when_killed() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let gt = own().spawn(move || {
        GUARD.set(Some(Counted(d)));
        green::sleep(Duration::from_secs(60));
    })?;
    green::yield_now();
    gt.kill();
    assert!(gt.join().is_err());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn thread_local_destructor_runs_at_os_thread_exit() {
    if !supported() {
        return;
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    std::thread::spawn(move || {
        own()
            .spawn_n(move || {
                GUARD.set(Some(Counted(d)));
                green::sleep(Duration::from_secs(60));
            })
            .unwrap();
        green::yield_now();
        // The OS thread exits with the green thread parked: it is unwound.
    })
    .join()
    .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn green_thread_module_threads_have_their_own() {
    if !supported() {
        return;
    }
    COUNT.set(5);
    let h = green::thread::spawn(|| {
        COUNT.set(COUNT.get() + 1);
        COUNT.get()
    });
    assert_eq!(h.join().unwrap(), 1);
    assert_eq!(COUNT.get(), 5);
}

#[test]
fn shared_stack_green_thread_with_identity() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    // SAFETY: the green threads lend no stack data to other threads.
    let b = unsafe { own().shared_stack() };
    let gts: Vec<_> = (0..8)
        .map(|i| {
            b.clone().spawn(move || {
                COUNT.set(i);
                green::sleep(Duration::from_millis(2));
                COUNT.get()
            })
        })
        .collect::<Result<_, _>>()?;
    let got: Vec<u32> = gts.into_iter().map(|g| g.wait()).collect();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn many_green_threads_with_identity_leave_nothing_behind() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let gts: Vec<_> = (0..500)
            .map(|_| {
                let d = dropped.clone();
                own().spawn(move || {
                    GUARD.set(Some(Counted(d)));
                    green::yield_now();
                })
            })
            .collect::<Result<_, _>>()?;
        for g in gts {
            g.wait();
        }
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 10_000);
    assert_eq!(green::hub::stats().green_threads, 0);
    Ok(())
}

#[test]
fn a_green_thread_with_identity_spawns_and_joins_others() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let outer = own().spawn(|| {
        COUNT.set(1);
        let inner = own().spawn(|| {
            COUNT.set(2);
            green::yield_now();
            COUNT.get()
        })?;
        let shared = green::Builder::new()
            .thread_identity(false)
            .spawn(|| COUNT.get())?;
        Ok::<_, std::io::Error>((COUNT.get(), inner.wait(), shared.wait()))
    })?;
    // The identity-less one runs on the OS thread's thread-locals.
    COUNT.set(7);
    assert_eq!(outer.wait()?, (1, 2, 7));
    Ok(())
}

/// glibc's `setuid` from another OS thread signals this one and waits for
/// it to report in its (the OS thread's) TCB: a green thread with its own
/// TCB running when the signal comes must not leave the caller waiting.
#[test]
fn setuid_from_another_os_thread_while_a_green_thread_runs() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    use std::sync::atomic::AtomicBool;
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let busy = {
        let (done, started) = (done.clone(), started.clone());
        own().spawn(move || {
            // Runs (without parking) until the other thread's setuid is
            // done, so the signal finds this green thread's TCB installed.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            started.store(true, Ordering::SeqCst);
            while !done.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::hint::spin_loop();
            }
            done.load(Ordering::SeqCst)
        })?
    };
    let setter = {
        let (done, started) = (done.clone(), started.clone());
        std::thread::spawn(move || {
            while !started.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            // SAFETY: sets the real uid the process already has.
            let rc = unsafe { libc::setuid(libc::getuid()) };
            done.store(true, Ordering::SeqCst);
            rc
        })
    };
    assert!(
        busy.wait(),
        "setuid on another OS thread did not return in 20 s"
    );
    assert_eq!(setter.join().unwrap(), 0);
    Ok(())
}

/// Compiles C source `code` into shared library `lib<name>.so` in `dir`.
fn c_library(dir: &std::path::Path, name: &str, code: &str) -> std::io::Result<std::path::PathBuf> {
    let src = dir.join(format!("{name}.c"));
    let lib = dir.join(format!("lib{name}.so"));
    std::fs::write(&src, code)?;
    let status = std::process::Command::new(c_compiler())
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .status()?;
    assert!(status.success(), "cc {name}.c failed: {status}");
    Ok(lib)
}

/// A library with initial-exec TLS loaded while green threads with their
/// own blocks are alive: glibc initialises it only in the threads it knows;
/// green's `dlopen` initialises it in those blocks too.
#[test]
fn dlopen_initial_exec_tls_is_initialised_in_live_green_threads() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let lib = c_library(
        dir.path(),
        "ie",
        "static __thread int value __attribute__((tls_model(\"initial-exec\"))) = 42;\n\
         static __thread char pad[64] __attribute__((tls_model(\"initial-exec\")));\n\
         int ie_get(void) { return value + pad[7]; }\n\
         void ie_set(int v) { value = v; }\n",
    )?;

    type Get = extern "C" fn() -> libc::c_int;
    type Set = extern "C" fn(libc::c_int);
    let loaded: Rc<Cell<Option<(Get, Set)>>> = Rc::new(Cell::new(None));
    let ready = Rc::new(green::Event::new());
    // Alive (parked) while the library is loaded.
    let early = {
        let (loaded, ready) = (loaded.clone(), ready.clone());
        own().spawn(move || {
            ready.wait();
            let (get, set) = loaded.get().expect("loaded");
            let first = get();
            set(7);
            green::yield_now();
            (first, get())
        })?
    };
    green::yield_now();
    let path = std::ffi::CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: a library of our own with no constructors; the names looked
    // up are its functions with these signatures.
    let (get, set) = unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
        assert!(!h.is_null(), "dlopen failed");
        let get = libc::dlsym(h, c"ie_get".as_ptr());
        let set = libc::dlsym(h, c"ie_set".as_ptr());
        assert!(!get.is_null() && !set.is_null());
        (
            std::mem::transmute::<*mut libc::c_void, Get>(get),
            std::mem::transmute::<*mut libc::c_void, Set>(set),
        )
    };
    loaded.set(Some((get, set)));
    let late = own().spawn(move || get())?;
    ready.send(()).expect("sent once");
    // Each block its own value, from the library's init image.
    assert_eq!(early.wait(), (42, 7));
    assert_eq!(late.wait(), 42);
    assert_eq!(get(), 42, "the OS thread's own");
    Ok(())
}

/// A call made as the OS thread (set*id) leaves its errno to the caller.
#[test]
fn errno_of_a_call_made_as_the_os_thread_is_the_callers() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let (rc, errno) = own()
        .spawn(|| {
            // SAFETY: an invalid uid: the call fails and changes nothing.
            let rc = unsafe { libc::setuid(u32::MAX) };
            (rc, std::io::Error::last_os_error().raw_os_error())
        })?
        .wait();
    assert_eq!((rc, errno), (-1, Some(libc::EINVAL)));
    Ok(())
}

/// Waits for child `pid` for at most 20 s (then kills it): its exit status.
fn wait_child(pid: libc::pid_t) -> libc::c_int {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    loop {
        // SAFETY: a live out-parameter.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return status;
        }
        assert_eq!(r, 0, "waitpid: {}", std::io::Error::last_os_error());
        if std::time::Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the kernel knows the thread that `pthread_self()` names in
/// this process: its CPU clock (made from the TCB's tid) can be read.
fn own_tid_is_current() -> bool {
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: live out-parameters.
    unsafe {
        libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) == 0
            && libc::clock_gettime(clock, &mut ts) == 0
    }
}

/// `forkpty` forks inside glibc, past the `fork` interposer: the child
/// must still adopt the OS thread's TCB as its thread, not the green
/// thread's (glibc would then count the OS thread's stack and TCB as free
/// and hand them to the child's next thread of the same stack size), and
/// every green thread there must have the child's tid.
#[test]
fn forkpty_on_a_green_thread_forks_as_the_os_thread() {
    if !supported() {
        return;
    }
    const STACK: usize = 1 << 20;
    let code = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(|| {
            // SAFETY: pthread_self has no preconditions.
            let os_self = unsafe { libc::pthread_self() } as usize;
            let seen = Rc::new(Cell::new(false));
            let other = {
                let seen = seen.clone();
                own()
                    .spawn(move || {
                        green::yield_now(); // parked across the fork
                        seen.set(own_tid_is_current());
                    })
                    .unwrap()
            };
            let forker = own().spawn(move || {
                let mut master = -1;
                // SAFETY: the child runs this hub briefly, starts one
                // thread and `_exit`s.
                let pid = unsafe {
                    libc::forkpty(
                        &mut master,
                        std::ptr::null_mut(),
                        std::ptr::null(),
                        std::ptr::null(),
                    )
                };
                if pid == 0 {
                    other.wait();
                    let new = std::thread::Builder::new()
                        .stack_size(STACK)
                        .spawn(|| unsafe { libc::pthread_self() } as usize)
                        .and_then(|t| t.join().map_err(|_| std::io::Error::other("panicked")))
                        .unwrap_or(os_self);
                    let code = u8::from(new == os_self) + 2 * u8::from(!seen.get());
                    // SAFETY: ends the child at once.
                    unsafe { libc::_exit(code.into()) };
                }
                assert!(pid > 0, "forkpty: {}", std::io::Error::last_os_error());
                let status = wait_child(pid);
                // SAFETY: the pty master, ours.
                unsafe { libc::close(master) };
                status
            });
            let status = forker.unwrap().wait();
            assert!(libc::WIFEXITED(status), "the child died: {status:#x}");
            libc::WEXITSTATUS(status)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        code, 0,
        "1: a new thread got the OS thread's TCB; 2: a green thread kept the parent's tid; 3: both"
    );
}

/// In a fork's child every green thread with an identity has the child's
/// tid, not the parent's: calls that act on `pthread_self()` reach the
/// child's thread.
#[test]
fn in_a_fork_child_every_green_thread_has_the_childs_tid() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let seen = Rc::new(Cell::new(false));
    let other = {
        let seen = seen.clone();
        own().spawn(move || {
            green::yield_now(); // parked across the fork
            seen.set(own_tid_is_current());
        })?
    };
    let forker = own().spawn(move || {
        // SAFETY: the child runs this process's hub briefly, then `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            other.wait();
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(if seen.get() { 0 } else { 1 }) };
        }
        wait_child(pid)
    })?;
    let status = forker.wait();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the other green thread's tid in the child: exit status {}",
        libc::WEXITSTATUS(status)
    );
    Ok(())
}

struct SleepsOnDrop(Arc<AtomicUsize>);
impl Drop for SleepsOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        green::sleep(Duration::from_millis(30));
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
thread_local!(static SLEEPER: Cell<Option<SleepsOnDrop>> = const { Cell::new(None) });

/// A kill that arrives while a thread-local destructor parks cannot unwind
/// (the destructor runs inside a C frame): it is held back, and the
/// destructor finishes.
#[test]
fn kill_while_a_thread_local_destructor_parks() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let steps = Arc::new(AtomicUsize::new(0));
    let s = steps.clone();
    let gt = own().spawn(move || SLEEPER.set(Some(SleepsOnDrop(s))))?;
    while steps.load(Ordering::SeqCst) == 0 {
        green::yield_now();
    }
    gt.kill();
    let _ = gt.join();
    assert_eq!(steps.load(Ordering::SeqCst), 2, "the destructor finished");
    Ok(())
}

/// A library whose constructor `dlopen`s another one with initial-exec TLS
/// and sets it: the outer `dlopen` must not reset it to its init image.
#[test]
fn dlopen_from_a_constructor_keeps_what_it_set() -> std::io::Result<()> {
    if !supported() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let a = c_library(
        dir.path(),
        "a",
        "static __thread int v __attribute__((tls_model(\"initial-exec\"))) = 42;\n\
         int a_get(void) { return v; }\n\
         void a_set(int x) { v = x; }\n",
    )?;
    let b = c_library(
        dir.path(),
        "b",
        &format!(
            "#include <dlfcn.h>\n\
             int b_loaded;\n\
             __attribute__((constructor)) static void init(void) {{\n\
               void *h = dlopen(\"{}\", RTLD_NOW);\n\
               void (*set)(int) = h ? (void (*)(int)) dlsym(h, \"a_set\") : 0;\n\
               if (set) {{ set(7); b_loaded = 1; }}\n\
             }}\n",
            a.display()
        ),
    )?;
    let b = std::ffi::CString::new(b.to_str().unwrap()).unwrap();
    let a = std::ffi::CString::new(a.to_str().unwrap()).unwrap();
    let got = own()
        .spawn(move || {
            // SAFETY: libraries of our own; the names looked up are
            // functions with these signatures.
            unsafe {
                let hb = libc::dlopen(b.as_ptr(), libc::RTLD_NOW);
                assert!(!hb.is_null(), "dlopen libb failed");
                let ha = libc::dlopen(a.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
                assert!(!ha.is_null(), "liba was not loaded by libb");
                let get = libc::dlsym(ha, c"a_get".as_ptr());
                let get: extern "C" fn() -> libc::c_int = std::mem::transmute(get);
                get()
            }
        })?
        .wait();
    assert_eq!(got, 7, "the constructor's value");
    Ok(())
}
