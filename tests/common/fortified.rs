//! glibc's `_FORTIFY_SOURCE` variants, which the libc crate does not
//! declare. Calls through these declarations bind to the executable's own
//! definitions (green's interposers), as a C caller's do.

extern "C" {
    pub fn __read_chk(
        fd: libc::c_int,
        buf: *mut libc::c_void,
        nbytes: usize,
        buflen: usize,
    ) -> isize;
    pub fn __recv_chk(
        fd: libc::c_int,
        buf: *mut libc::c_void,
        len: usize,
        buflen: usize,
        flags: libc::c_int,
    ) -> isize;
    pub fn __recvfrom_chk(
        fd: libc::c_int,
        buf: *mut libc::c_void,
        len: usize,
        buflen: usize,
        flags: libc::c_int,
        addr: *mut libc::sockaddr,
        addrlen: *mut libc::socklen_t,
    ) -> isize;
    pub fn __poll_chk(
        fds: *mut libc::pollfd,
        nfds: libc::nfds_t,
        timeout: libc::c_int,
        fdslen: usize,
    ) -> libc::c_int;
    pub fn __ppoll_chk(
        fds: *mut libc::pollfd,
        nfds: libc::nfds_t,
        timeout: *const libc::timespec,
        sigmask: *const libc::sigset_t,
        fdslen: usize,
    ) -> libc::c_int;
}
