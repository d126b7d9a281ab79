//! The hub's cached readiness on green sockets: after a short read the next
//! read parks without a syscall, which must never hide data, end of file or
//! an error that arrives later.

use std::io::{self, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::Duration;

use green::net::{TcpListener, TcpStream};

fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let c = TcpStream::connect(l.local_addr()?)?;
    let (s, _) = l.accept()?;
    Ok((c, s))
}

/// Regression: data and FIN that arrive together; the short read of the
/// data must not make the next read park past the end of file.
#[test]
fn short_read_then_eof_is_seen() -> io::Result<()> {
    let (mut c, s) = pair()?;
    let reader = green::spawn(move || -> io::Result<(Vec<u8>, usize)> {
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf)?; // parks first: registers the fd
        let eof = c.read(&mut buf)?;
        Ok((buf[..n].to_vec(), eof))
    });
    green::yield_now(); // the reader parks on an empty socket
    (&s).write_all(b"abc")?;
    s.shutdown(Shutdown::Write)?;
    let (data, eof) = reader.wait()?;
    assert_eq!(data, b"abc");
    assert_eq!(eof, 0);
    Ok(())
}

/// Data that arrives after a short read wakes the parked reader.
#[test]
fn data_after_short_read_wakes_reader() -> io::Result<()> {
    let (mut c, s) = pair()?;
    let reader = green::spawn(move || -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < 6 {
            let n = c.read(&mut buf)?;
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    });
    green::yield_now();
    (&s).write_all(b"abc")?;
    green::yield_now(); // the reader takes "abc" (a short read) and parks
    green::yield_now();
    (&s).write_all(b"def")?;
    assert_eq!(reader.wait()?, b"abcdef");
    Ok(())
}

/// A reset that arrives after a short read is reported, not waited through.
#[test]
fn reset_after_short_read_is_reported() -> io::Result<()> {
    let (mut c, s) = pair()?;
    let reader = green::spawn(move || -> io::Result<usize> {
        let mut buf = [0u8; 4096];
        assert_eq!(c.read(&mut buf)?, 3);
        c.read(&mut buf)
    });
    green::yield_now();
    (&s).write_all(b"abc")?;
    green::yield_now();
    green::yield_now();
    // SO_LINGER 0: close sends a reset.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: passes a valid linger struct and its size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(s);
    let err = reader.wait().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    Ok(())
}

/// Regression: a read stops at TCP's urgent mark, short, with data still
/// queued after the mark and no new edge to come; the next read must still
/// get that data.
#[test]
fn short_read_at_urgent_mark_does_not_hide_the_rest() -> io::Result<()> {
    let (mut c, s) = pair()?;
    s.set_nodelay(true)?;
    // Fails with WouldBlock instead of hanging if the data stays hidden.
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let reader = green::spawn(move || -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf)?; // parks first: registers the fd
        let first = buf[..n].to_vec();
        let m = c.read(&mut buf)?;
        Ok((first, buf[..m].to_vec()))
    });
    green::yield_now(); // the reader parks on an empty socket
    (&s).write_all(b"ab")?;
    // SAFETY: sends one byte from a valid buffer on an open socket.
    let rc = unsafe { libc::send(s.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    assert_eq!(rc, 1, "send(MSG_OOB): {}", io::Error::last_os_error());
    (&s).write_all(b"cd")?;
    let (first, rest) = reader.wait()?;
    assert_eq!(first, b"ab");
    assert_eq!(rest, b"cd");
    Ok(())
}

/// Regression: `read_vectored` with more slices than `readv` takes
/// (`UIO_MAXIOV`, 1024) fills only the first 1024; that is not a short
/// read, and the data left must be read next without parking.
#[test]
fn vectored_read_past_iov_max_is_not_taken_for_short() -> io::Result<()> {
    let (mut c, s) = pair()?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let reader = green::spawn(move || -> io::Result<(usize, usize)> {
        let mut wait = [0u8; 1];
        c.read_exact(&mut wait)?; // parks first: registers the fd
        let mut bytes = vec![0u8; 1025];
        let mut slices: Vec<IoSliceMut<'_>> = bytes.chunks_mut(1).map(IoSliceMut::new).collect();
        let n = c.read_vectored(&mut slices)?;
        let mut buf = [0u8; 4096];
        let m = c.read(&mut buf)?;
        Ok((n, m))
    });
    green::yield_now();
    (&s).write_all(&[1u8; 2001])?;
    let (n, m) = reader.wait()?;
    assert_eq!(n, 1024);
    assert_eq!(m, 2000 - 1024);
    Ok(())
}
