//! The few raw syscalls the walk needs and `std`/`nix` do not offer: openat2 with resolve
//! flags, getdents64 into a reused buffer, fgetxattr, fstatat without following links.
//!
//! Every `unsafe` block of the crate lives here, each with its SAFETY argument.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Flags for opening one path component below a directory fd without ever leaving it:
/// no symlinks anywhere (`RESOLVE_NO_SYMLINKS` also covers magic links), no mount crossing,
/// never above the starting directory.
pub const RESOLVE_STRICT: u64 =
    libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV | libc::RESOLVE_BENEATH;

/// openat2(2). Retries EAGAIN (returned when a concurrent rename races resolution) a few times.
pub fn openat2(dir: BorrowedFd<'_>, path: &CStr, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_how is a plain C struct of integers; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    for _ in 0..8 {
        // SAFETY: `path` is a valid NUL-terminated string, `how` is a properly initialised
        // open_how that outlives the call and its size is passed exactly.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &mut how as *mut libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EAGAIN) && err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable memory of the right size; fstat fills it on success.
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so the struct is initialised.
    Ok(unsafe { st.assume_init() })
}

/// fstatat(2) with AT_SYMLINK_NOFOLLOW: describes the entry itself, never what it points at.
pub fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd, NUL-terminated name, writable stat buffer.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat returned 0, so the struct is initialised.
    Ok(unsafe { st.assume_init() })
}

/// readlinkat(2), refusing targets longer than `max` bytes.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &CStr, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max + 1];
    // SAFETY: buf has buf.len() writable bytes.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "symlink target too long"));
    }
    buf.truncate(n);
    // Kept in manifests: do not keep the 4 KiB read buffer behind every symlink.
    buf.shrink_to_fit();
    Ok(buf)
}

/// read(2) once, retrying EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid writable memory of buf.len() bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// pread(2) once, retrying EINTR.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid writable memory of buf.len() bytes.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset as i64) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// The entries of one directory, listed into buffers that are reused from one directory to
/// the next: the tree walk lists thousands of directories and would otherwise allocate (and
/// zero) a getdents buffer per directory and a `Vec` per name.
#[derive(Default)]
pub struct DirNames {
    /// getdents64 scratch space.
    buf: Vec<u8>,
    /// Every name with its terminating NUL, back to back.
    names: Vec<u8>,
    /// (start of the name in `names`, length without the NUL, d_type) per entry.
    index: Vec<(u32, u32, u8)>,
}

impl DirNames {
    /// Lists every entry of an open directory (except `.` and `..`), at most `max` of them,
    /// replacing what was listed before. Too many entries is an error of kind OutOfMemory,
    /// as in [`read_dir`].
    pub fn read(&mut self, dir: BorrowedFd<'_>, max: usize) -> io::Result<()> {
        self.names.clear();
        self.index.clear();
        if self.buf.is_empty() {
            self.buf = vec![0u8; 64 * 1024];
        }
        loop {
            // SAFETY: buf is writable for buf.len() bytes; the kernel writes whole
            // linux_dirent64 records into it and returns how many bytes it wrote.
            let n =
                unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), self.buf.as_mut_ptr(), self.buf.len()) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                return Ok(());
            }
            let n = n as usize;
            let mut off = 0;
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
            while off + 19 <= n {
                let buf = &self.buf;
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                if reclen < 19 || off + reclen > n {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed getdents64 record"));
                }
                let d_type = buf[off + 18];
                let name_area = &buf[off + 19..off + reclen];
                let len = name_area.iter().position(|&b| b == 0).unwrap_or(name_area.len());
                let name = &name_area[..len];
                if name != b"." && name != b".." {
                    if self.index.len() >= max {
                        return Err(io::Error::new(io::ErrorKind::OutOfMemory, "too many entries"));
                    }
                    let start = u32::try_from(self.names.len())
                        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "too many entries"))?;
                    self.names.extend_from_slice(name);
                    self.names.push(0);
                    self.index.push((start, len as u32, d_type));
                }
                off += reclen;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The `i`th entry: its name (never empty, no NUL, no `/`) and its d_type (`DT_UNKNOWN`
    /// when the filesystem does not say).
    pub fn get(&self, i: usize) -> (&CStr, u8) {
        let (start, len, d_type) = self.index[i];
        let (start, len) = (start as usize, len as usize);
        let name = CStr::from_bytes_with_nul(&self.names[start..start + len + 1]).expect("getdents names hold no NUL");
        (name, d_type)
    }
}

/// fgetxattr(2) into a caller's buffer: `Ok(None)` when the attribute is absent or the
/// filesystem has no xattrs, else the value's length. A value longer than `buf` is an error.
pub fn fgetxattr_into(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf has buf.len() writable bytes, name is NUL-terminated.
    let n = unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            Some(libc::ERANGE) => Err(io::Error::new(io::ErrorKind::InvalidData, "xattr value larger than allowed")),
            _ => Err(err),
        };
    }
    Ok(Some(n as usize))
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Major and minor numbers of a device number, as the kernel's `new_encode_dev` splits them.
pub fn dev_major_minor(rdev: u64) -> (u64, u64) {
    (libc::major(rdev) as u64, libc::minor(rdev) as u64)
}

/// pidfd_open(2): a descriptor for exactly this process, immune to pid reuse.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_send_signal(2).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when the process behind a pidfd has exited (the pidfd polls readable).
pub fn pidfd_exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    rc > 0 && pfd.revents & libc::POLLIN != 0
}

/// Takes a read lease (F_SETLEASE F_RDLCK) on a file opened read-only. False when refused:
/// someone has it open for writing or mapped writable, or the filesystem has no leases.
pub fn set_read_lease(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: fcntl on a valid fd with an integer argument.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) == 0 }
}

/// True while our read lease is intact (no writer has opened the file since).
pub fn still_read_leased(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: fcntl on a valid fd.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETLEASE) == libc::F_RDLCK }
}

/// Releases a lease.
pub fn release_lease(fd: BorrowedFd<'_>) {
    // SAFETY: fcntl on a valid fd with an integer argument.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
    }
}

/// fstatfs(2): the type of the filesystem an open fd lives on (`f_type`, one of the magic
/// numbers of linux/magic.h, all 32-bit).
pub fn fs_type(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut sf = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `sf` is writable memory of the right size; fstatfs fills it on success.
    let rc = unsafe { libc::fstatfs(fd.as_raw_fd(), sf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatfs returned 0, so the struct is initialised.
    let sf = unsafe { sf.assume_init() };
    // The magic is 32 bits wide; f_type is a signed word whose width depends on the target.
    Ok(sf.f_type as u32)
}

/// The directory fd that stands for the current working directory (`AT_FDCWD`).
pub fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a sentinel the kernel accepts in place of a directory fd; it is
    // never closed.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// What statx(2) says of an open fd: (device, inode, mount id).
pub fn statx_mount(fd: BorrowedFd<'_>) -> io::Result<(u64, u64, u64)> {
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: statx on an fd with AT_EMPTY_PATH and an empty C string fills the struct we own.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_INO | libc::STATX_MNT_ID,
            stx.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statx returned 0, so it initialised the struct (it was zeroed before anyway).
    let stx = unsafe { stx.assume_init() };
    Ok((libc::makedev(stx.stx_dev_major, stx.stx_dev_minor), stx.stx_ino, stx.stx_mnt_id))
}

/// This process's user plus system CPU time, in seconds (0 when getrusage fails).
pub fn cpu_seconds() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: getrusage returned 0, so the struct is initialised.
    let ru = unsafe { ru.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// poll(2) over `fds` for at most `timeout` (clamped to i32 milliseconds). Returns how many
/// fds are ready; EINTR is returned as an error of kind Interrupted.
pub fn poll(fds: &mut [libc::pollfd], timeout: std::time::Duration) -> io::Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: fds is a valid, exclusively borrowed array of pollfd of the given length.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Raises the soft open-files limit to the hard one; returns the soft limit now in force
/// (1024 when it cannot be read).
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max
            && libc::setrlimit(libc::RLIMIT_NOFILE, &libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max })
                == 0
        {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    lim.rlim_cur
}

/// Sets `sig`'s disposition to ignore.
pub fn ignore_signal(sig: i32) {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(sig, libc::SIG_IGN);
    }
}

/// Writes `line` to stderr with one write(2) and ends the process with `code` at once, without
/// running destructors or atexit handlers: for a watchdog thread, while other threads may hold
/// locks (of the allocator, of stdio) that a normal exit would wait for.
pub fn write_stderr_and_exit(line: &[u8], code: i32) -> ! {
    // SAFETY: write(2) of a valid buffer to fd 2, then _exit(2), which never returns and takes
    // no locks.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::_exit(code)
    }
}

/// Returns the allocator's free memory to the kernel (glibc's malloc_trim), so that resident
/// memory freed by one phase (the walk's worker threads, the cache) does not add to the peak
/// of the next. A no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// flistxattr(2): the names of a file's extended attributes (empty when it has none or the
/// filesystem has no xattrs), at most `max` bytes of names.
pub fn flistxattr(fd: BorrowedFd<'_>, max: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; max];
    // SAFETY: buf has buf.len() writable bytes; the kernel writes at most that many.
    let n = unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            Some(libc::ERANGE) => Err(io::Error::new(io::ErrorKind::InvalidData, "xattr names longer than allowed")),
            _ => Err(err),
        };
    }
    buf.truncate(n as usize);
    Ok(buf.split(|&b| b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect())
}

/// Sets the nice value of the calling thread (Linux: `setpriority(PRIO_PROCESS, tid)` applies to
/// one thread). Lowering it below 0 needs CAP_SYS_NICE (root has it).
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority takes plain integers; the tid is this thread's own.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
