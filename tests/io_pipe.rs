//! `green::io::pipe`: std's anonymous pipes, parking only the calling green
//! thread; ends handed to std or a child process are blocking again.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use green::io::{pipe, PipeReader, PipeWriter};

const MARGIN: Duration = Duration::from_secs(5);

fn kind<T>(r: io::Result<T>) -> io::ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

/// Whether `fd`'s open file description has `O_NONBLOCK` set.
fn fd_nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETFL on an open fd takes no argument.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "fcntl: {}", io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}

/// The `flags:` line of `/proc/self/fdinfo/<fd>` as a child printed it.
fn parse_fdinfo_flags(text: &str) -> i32 {
    let line = text
        .lines()
        .find(|l| l.starts_with("flags:"))
        .unwrap_or_else(|| panic!("no flags line in {text:?}"));
    i32::from_str_radix(line["flags:".len()..].trim(), 8).unwrap()
}

/// A deterministic byte stream (xorshift) and an order-sensitive checksum.
struct Bytes(u64);

impl Bytes {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

fn fnv1a(hash: &mut u64, data: &[u8]) {
    for &b in data {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

// Pipe ends are send and sync: checked when this file compiles.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PipeReader>();
    assert_send_sync::<PipeWriter>();
};

#[test]
fn std_io_items_are_reexported() -> io::Result<()> {
    // The glob re-export of std::io sits next to the green pipe.
    let mut c = green::io::Cursor::new(b"abc".to_vec());
    let mut s = String::new();
    green::io::Read::read_to_string(&mut c, &mut s)?;
    assert_eq!(s, "abc");
    let e = green::io::Error::from(green::io::ErrorKind::NotFound);
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    Ok(())
}

#[test]
fn pipe_round_trip() -> io::Result<()> {
    let (mut r, mut w) = pipe()?;
    w.write_all(b"through")?;
    let mut buf = [0; 7];
    r.read_exact(&mut buf)?;
    assert_eq!(&buf, b"through");
    Ok(())
}

#[test]
fn ends_are_nonblocking_and_close_on_exec_underneath() -> io::Result<()> {
    let (r, w) = pipe()?;
    for fd in [r.as_raw_fd(), w.as_raw_fd()] {
        // SAFETY: F_GETFD on an open fd takes no argument.
        let fdflags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(fdflags & libc::FD_CLOEXEC != 0);
    }
    assert!(fd_nonblocking(&r) && fd_nonblocking(&w));
    Ok(())
}

#[test]
fn read_parks_until_written() -> io::Result<()> {
    let (r, mut w) = pipe()?;
    let reader = green::spawn(move || -> io::Result<Vec<u8>> {
        let mut buf = [0; 3];
        (&r).read_exact(&mut buf)?;
        Ok(buf.to_vec())
    });
    green::yield_now();
    assert!(!reader.is_finished(), "the reader parks on the empty pipe");
    w.write_all(b"abc")?;
    assert_eq!(reader.wait()?, b"abc");
    Ok(())
}

#[test]
fn write_parks_while_full() -> io::Result<()> {
    let (mut r, w) = pipe()?;
    // More than the pipe holds (64 KiB by default on Linux).
    let writer = green::spawn(move || (&w).write_all(&[9u8; 256 * 1024]));
    green::yield_now();
    assert!(!writer.is_finished(), "the writer parks on the full pipe");
    let mut got = vec![0; 256 * 1024];
    r.read_exact(&mut got)?;
    writer.wait()?;
    assert!(got.iter().all(|&b| b == 9));
    Ok(())
}

#[test]
fn eof_after_writer_drops() -> io::Result<()> {
    let (mut r, w) = pipe()?;
    let writer = green::spawn(move || -> io::Result<()> {
        let mut w = w;
        w.write_all(b"bye")
        // `w` drops here: end of file for the reader.
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got)?;
    assert_eq!(got, b"bye");
    writer.wait()
}

#[test]
fn eof_waits_for_every_writer_clone() -> io::Result<()> {
    let (r, w) = pipe()?;
    let w2 = w.try_clone()?;
    drop(w);
    let reader = green::spawn(move || {
        let mut v = Vec::new();
        (&r).read_to_end(&mut v).map(|_| v)
    });
    green::yield_now();
    assert!(!reader.is_finished(), "a clone of the writer is still open");
    (&w2).write_all(b"clone")?;
    drop(w2);
    assert_eq!(reader.wait()?, b"clone");
    Ok(())
}

#[test]
fn write_after_reader_drops_is_broken_pipe_like_std() -> io::Result<()> {
    let (r, mut w) = pipe()?;
    drop(r);
    assert_eq!(kind(w.write(b"x")), io::ErrorKind::BrokenPipe);
    let (sr, mut sw) = std::io::pipe()?;
    drop(sr);
    assert_eq!(kind(sw.write(b"x")), io::ErrorKind::BrokenPipe);
    Ok(())
}

#[test]
fn reader_drop_wakes_parked_writer_with_broken_pipe() -> io::Result<()> {
    let (r, w) = pipe()?;
    let writer = green::spawn(move || (&w).write_all(&vec![0u8; 1 << 20]));
    green::yield_now();
    assert!(!writer.is_finished(), "the writer parks on the full pipe");
    drop(r);
    assert_eq!(kind(writer.wait()), io::ErrorKind::BrokenPipe);
    Ok(())
}

#[test]
fn one_mib_between_green_threads_checksummed() -> io::Result<()> {
    const TOTAL: usize = 1 << 20;
    let (r, w) = pipe()?;
    let writer = green::spawn(move || -> io::Result<u64> {
        let mut w = w;
        let mut src = Bytes(0x9e37_79b9_7f4a_7c15);
        let mut hash = 0xcbf2_9ce4_8422_2325;
        let mut sent = 0;
        let mut size = 1;
        while sent < TOTAL {
            // Chunk sizes from 1 byte to 96 KiB, past the pipe's capacity.
            let n = size.min(TOTAL - sent);
            let mut chunk = vec![0; n];
            src.fill(&mut chunk);
            fnv1a(&mut hash, &chunk);
            w.write_all(&chunk)?;
            sent += n;
            size = size * 3 % (96 * 1024) + 1;
        }
        Ok(hash)
    });
    let reader = green::spawn(move || -> io::Result<(usize, u64)> {
        let mut r = r;
        let mut hash = 0xcbf2_9ce4_8422_2325;
        let mut total = 0;
        let mut buf = vec![0; 7001];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok((total, hash)),
                n => {
                    fnv1a(&mut hash, &buf[..n]);
                    total += n;
                }
            }
        }
    });
    let sent_hash = writer.wait()?;
    let (total, got_hash) = reader.wait()?;
    assert_eq!(total, TOTAL);
    assert_eq!(got_hash, sent_hash);
    Ok(())
}

#[test]
fn transfer_across_hubs() -> io::Result<()> {
    let (r, w) = pipe()?;
    let other = std::thread::spawn(move || -> io::Result<()> {
        let writer = green::spawn(move || (&w).write_all(&[5u8; 300 * 1024]));
        writer.wait()
    });
    let reader = green::spawn(move || {
        let mut v = Vec::new();
        (&r).read_to_end(&mut v).map(|_| v)
    });
    let got = reader.wait()?;
    other.join().unwrap()?;
    assert_eq!(got.len(), 300 * 1024);
    assert!(got.iter().all(|&b| b == 5));
    Ok(())
}

#[test]
fn plain_os_thread_writes_to_green_reader() -> io::Result<()> {
    let (r, w) = pipe()?;
    let w = w.into_std()?; // blocking again, for a plain thread
    assert!(!fd_nonblocking(&w));
    let plain = std::thread::spawn(move || -> io::Result<()> {
        let mut w = w;
        w.write_all(&[1u8; 200 * 1024])
    });
    let reader = green::spawn(move || {
        let mut v = Vec::new();
        (&r).read_to_end(&mut v).map(|_| v.len())
    });
    assert_eq!(reader.wait()?, 200 * 1024);
    plain.join().unwrap()
}

#[test]
fn close_while_reading_wakes_reader_with_error() -> io::Result<()> {
    let (r, _w) = pipe()?;
    let fd = r.as_raw_fd();
    let reader = green::spawn(move || {
        // `r` must not close the fd: the alias below does.
        let r = ManuallyDrop::new(r);
        (&*r).read(&mut [0; 8])
    });
    green::yield_now();
    assert!(!reader.is_finished());
    // SAFETY: `r` above never closes `fd`; the alias owns it from here.
    drop(unsafe { PipeReader::from_raw_fd(fd) });
    assert_eq!(kind(reader.wait()), io::ErrorKind::ConnectionAborted);
    Ok(())
}

#[test]
fn timeout_cuts_a_parked_read_and_loses_nothing() -> io::Result<()> {
    let (mut r, mut w) = pipe()?;
    let t = Duration::from_millis(50);
    let start = Instant::now();
    let cut = green::with_timeout(t, || r.read(&mut [0; 8]));
    let waited = start.elapsed();
    assert!(cut.is_err());
    assert!(waited >= t && waited < MARGIN, "waited {waited:?}");
    assert_eq!(green::hub::stats().fd_waiters, 0);
    w.write_all(b"after")?;
    let mut buf = [0; 5];
    r.read_exact(&mut buf)?;
    assert_eq!(&buf, b"after");
    Ok(())
}

#[test]
fn kill_of_parked_reader_leaves_no_waiter() -> io::Result<()> {
    let (r, _w) = pipe()?;
    let reader = green::spawn(move || (&r).read(&mut [0; 8]));
    green::yield_now();
    assert_eq!(green::hub::stats().fd_waiters, 1);
    reader.kill();
    assert!(reader.join().unwrap_err().is::<green::Killed>());
    assert_eq!(green::hub::stats().fd_waiters, 0);
    Ok(())
}

#[test]
fn vectored_read_and_write() -> io::Result<()> {
    let (mut r, mut w) = pipe()?;
    let n = w.write_vectored(&[IoSlice::new(b"12"), IoSlice::new(b"345")])?;
    assert_eq!(n, 5);
    let (mut a, mut b) = ([0; 3], [0; 2]);
    let n = r.read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])?;
    assert_eq!(n, 5);
    assert_eq!((&a, &b), (b"123", b"45"));
    w.flush()
}

#[test]
fn try_clone_reads_the_same_pipe() -> io::Result<()> {
    let (r, mut w) = pipe()?;
    let r2 = r.try_clone()?;
    w.write_all(b"ab")?;
    let mut one = [0; 1];
    (&r).read_exact(&mut one)?;
    assert_eq!(&one, b"a");
    (&r2).read_exact(&mut one)?;
    assert_eq!(&one, b"b");
    Ok(())
}

#[test]
fn child_gets_blocking_stdin_and_stdout() -> io::Result<()> {
    let (in_r, mut in_w) = pipe()?;
    let (mut out_r, out_w) = pipe()?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("cat /proc/self/fdinfo/0 /proc/self/fdinfo/1; cat")
        .stdin(Stdio::from(in_r))
        .stdout(Stdio::from(out_w))
        .spawn()?;
    in_w.write_all(b"payload")?;
    drop(in_w);
    let mut out = String::new();
    out_r.read_to_string(&mut out)?; // parks until the child exits
    assert!(child.wait()?.success());
    let infos: Vec<&str> = out.split("pos:").skip(1).collect();
    assert_eq!(infos.len(), 2, "{out}");
    for info in &infos {
        let flags = parse_fdinfo_flags(info);
        assert_eq!(
            flags & libc::O_NONBLOCK,
            0,
            "child fd is non-blocking: {info}"
        );
    }
    assert!(out.ends_with("payload"), "{out}");
    Ok(())
}

#[test]
fn giving_an_end_to_a_child_leaves_green_clones_nonblocking() -> io::Result<()> {
    let (mut r, w) = pipe()?;
    let w2 = w.try_clone()?;
    let _stdio = Stdio::from(w);
    assert!(
        fd_nonblocking(&w2),
        "the green clone must not block its hub"
    );
    let r2 = r.try_clone()?;
    let std_r = r2.into_std()?;
    assert!(!fd_nonblocking(&std_r));
    assert!(fd_nonblocking(&r));
    (&w2).write_all(b"z")?;
    let mut one = [0; 1];
    r.read_exact(&mut one)?;
    assert_eq!(&one, b"z");
    Ok(())
}

#[test]
fn into_std_of_read_end_without_writers_does_not_hang() -> io::Result<()> {
    let (r, w) = pipe()?;
    drop(w);
    let mut s = r.into_std()?;
    assert!(!fd_nonblocking(&s));
    assert_eq!(s.read(&mut [0; 4])?, 0);
    Ok(())
}

#[test]
fn from_std_switches_mode_and_reads() -> io::Result<()> {
    let (sr, mut sw) = std::io::pipe()?;
    let r = PipeReader::from_std(sr)?;
    assert!(fd_nonblocking(&r));
    let (_r2, w2) = std::io::pipe()?;
    let w = PipeWriter::from_std(w2)?;
    assert!(fd_nonblocking(&w));
    let reader = green::spawn(move || {
        let mut s = String::new();
        (&r).read_to_string(&mut s).map(|_| s)
    });
    green::yield_now();
    sw.write_all(b"std")?;
    drop(sw);
    assert_eq!(reader.wait()?, "std");
    Ok(())
}

#[test]
fn fd_conversions_keep_the_pipe() -> io::Result<()> {
    let (r, w) = pipe()?;
    let owned: OwnedFd = w.into();
    assert!(fd_nonblocking(&owned), "given up as it is");
    let mut w = PipeWriter::from(owned);
    let raw = r.into_raw_fd();
    // SAFETY: `raw` came from into_raw_fd and nobody else owns it.
    let mut r = unsafe { PipeReader::from_raw_fd(raw) };
    w.write_all(b"fd")?;
    let mut buf = [0; 2];
    r.read_exact(&mut buf)?;
    assert_eq!(&buf, b"fd");
    Ok(())
}

#[test]
fn debug_names_the_std_type() -> io::Result<()> {
    let (r, w) = pipe()?;
    assert!(format!("{r:?}").starts_with("PipeReader"), "{r:?}");
    assert!(format!("{w:?}").starts_with("PipeWriter"), "{w:?}");
    Ok(())
}

#[test]
fn reader_on_other_hub_wakes_when_writer_writes() -> io::Result<()> {
    let (r, w) = pipe()?;
    let (tx, rx) = mpsc::channel();
    let other = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        let reader = green::spawn(move || -> io::Result<Vec<u8>> {
            let mut buf = [0; 4];
            (&r).read_exact(&mut buf)?;
            Ok(buf.to_vec())
        });
        tx.send(()).unwrap();
        reader.wait()
    });
    rx.recv().unwrap();
    (&w).write_all(b"wake")?;
    assert_eq!(other.join().unwrap()?, b"wake");
    Ok(())
}

/// Regression: a packet-mode pipe (`O_DIRECT`) wrapped from a foreign fd
/// returns one packet per read; a short read must not make the next read
/// park over the packet still queued.
#[test]
fn packet_mode_pipe_from_foreign_fd_reads_every_packet() -> std::io::Result<()> {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_DIRECT | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned here only.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut r = green::io::PipeReader::from(r);
    let mut w = green::io::PipeWriter::from(w);
    let reader = green::spawn(move || -> std::io::Result<Vec<u8>> {
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        let n = r.read(&mut buf)?; // parks first: the fd is registered
        out.extend_from_slice(&buf[..n]);
        let n = r.read(&mut buf)?;
        out.extend_from_slice(&buf[..n]);
        Ok(out)
    });
    green::yield_now();
    w.write_all(b"one")?;
    w.write_all(b"two")?;
    let out = green::with_timeout(std::time::Duration::from_secs(10), || reader.wait())
        .expect("the second packet was read")?;
    assert_eq!(out, b"onetwo");
    Ok(())
}
