//! The few OS calls tq needs: SIGINT/SIGTERM caught as a flag (signal-hook; so a
//! running command can be told and the lock reported afterwards), signals to
//! process groups, the input of a spawned command.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The last SIGINT/SIGTERM caught and not yet taken (0: none).
fn pending() -> &'static Arc<AtomicUsize> {
    static PENDING: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    PENDING.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Catches SIGINT and SIGTERM from now on (instead of dying at once).
/// Processes spawned later get the default dispositions back at exec.
pub fn install() -> std::io::Result<()> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let value = usize::try_from(sig).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        signal_hook::flag::register_usize(sig, Arc::clone(pending()), value)?;
    }
    Ok(())
}

/// The signal caught since the last call, if any.
pub fn take() -> Option<i32> {
    match pending().swap(0, Ordering::SeqCst) {
        0 => None,
        sig => i32::try_from(sig).ok(),
    }
}

/// Sends `sig` to process group `pgid`.
pub fn kill_group(pgid: u32, sig: i32) -> std::io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    if pgid <= 1 {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: plain syscall; a negative pid addresses the process group.
    if unsafe { libc::kill(-pgid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `SIGTERM`, `SIGINT`, ... or the number.
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        libc::SIGTERM => "SIGTERM".into(),
        n => format!("signal {n}"),
    }
}

/// Makes the spawned process get SIGKILL if this process dies first (Linux),
/// so a task never keeps running unsupervised after its `tq` was killed: its
/// lock is no longer renewed and a standby will take the task over.
#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid is a plain syscall.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe syscalls (prctl, getppid, kill).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the prctl took effect.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut std::process::Command) {}

/// A file holding `data`, read from its start, for a child's stdin: an
/// anonymous memory file (Linux), else a temporary file unlinked at once.
/// The child gets all of it or does not run.
pub fn sealed_input(data: &[u8]) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = anonymous_file()?;
    f.write_all(data)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(f)
}

#[cfg(target_os = "linux")]
fn anonymous_file() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: a NUL-terminated name; the returned fd is ours alone.
    let fd = unsafe { libc::memfd_create(c"tq-args".as_ptr(), libc::MFD_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: a fresh fd owned by the File from here on.
        return Ok(unsafe { std::fs::File::from_raw_fd(fd) });
    }
    temporary_file()
}

#[cfg(not(target_os = "linux"))]
fn anonymous_file() -> std::io::Result<std::fs::File> {
    temporary_file()
}

fn temporary_file() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!(
        "tq-args-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    ));
    let f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

/// Puts a pipe into non-blocking mode.
pub fn set_nonblocking(fd: &impl std::os::fd::AsRawFd) -> std::io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on an fd we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
