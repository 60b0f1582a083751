"""Writing output files safely: never half a file, never someone else's file, readable
like any other program's files, and no temporary file left behind for long.

- Every output is written to a temporary file in the target folder, then given its name
  in one step: ``os.link`` (which fails if the name exists, also when another process
  created it a moment ago) or, with overwrite, ``os.replace``.
- The temporary file gets mode 0666 & ~umask before it is named (``mkstemp`` makes 0600).
- Temporary names hold the writer's process id: ``.vggnp-tmp-<pid>-<random><ext>``. A run
  killed with ``kill -9`` cannot delete its own; :func:`remove_stale_temps` deletes those of
  processes that no longer exist.
"""

import errno
import functools
import os
import stat
import tempfile
import threading

TEMP_PREFIX = ".vggnp-tmp-"
_UMASK_LOCK = threading.Lock()


@functools.cache
def umask():
    """The process's umask, read on first use without changing it where Linux says it
    (``Umask:`` in /proc/self/status, since Linux 4.7); elsewhere set and set back once,
    under a lock (``os.umask`` is the only other way to read it, and it is process-wide)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode():
    """The mode a program's new files get: 0666 & ~umask (``mkstemp`` makes 0600)."""
    return 0o666 & ~umask()


class OutputExists(FileExistsError):
    """The output name exists (perhaps created by another run meanwhile)."""


def temporary_file(folder, suffix=""):
    """(fd, path) of a new temporary file of this process in ``folder``."""
    return tempfile.mkstemp(dir=folder, prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=suffix)


def write_new(path, write, overwrite=False):
    """Call write(file) on a temporary file beside ``path``, then name it ``path``.

    Without overwrite an existing ``path`` raises OutputExists and is left untouched; with
    it, ``path`` (or a symbolic link there, not followed) is replaced. On any error the
    temporary file is removed and ``path`` is as it was. The file's data is on disk
    (fsync) before it gets its name; the name is, after :func:`sync_folder`.
    """
    fd, tmp = temporary_file(os.path.dirname(os.path.abspath(path)), os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data on disk before the name: ~1 ms a file
        os.chmod(tmp, file_mode())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def replace_own(path, write, mark, overwrite=False):
    """``write_new`` for a file a command writes again at each run (its report): an
    existing ``path`` is replaced if ``overwrite``, or if its first MARK_BYTES hold
    ``mark`` (bytes: this command wrote it; a regular file, not a link); another file is
    left as it is (OutputExists)."""
    if not overwrite and os.path.lexists(path) and not _holds(path, mark):
        raise OutputExists(f"{path} exists and was not written by this command: pass "
                           "--overwrite to replace it, or choose another --out")
    write_new(path, write, overwrite=True)


MARK_BYTES = 4096


def _holds(path, mark):
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return mark in f.read(MARK_BYTES)
    except OSError:
        return False


def sync_folder(folder):
    """fsync a folder: the names given in it (renames, links) are on disk after a power
    cut too. Quietly nothing where a folder cannot be opened or synced."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _link(tmp, path):
    """Give ``tmp`` the name ``path`` only if that name is free, atomically."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExists(errno.EEXIST, "exists; pass --overwrite to replace it", path) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # A file system without hard links: reserve the name, then move the file over it.
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, file_mode()))
        except FileExistsError:
            raise OutputExists(errno.EEXIST, "exists; pass --overwrite to replace it",
                               path) from None
        os.replace(tmp, path)


def remove_stale_temps(folder):
    """Delete the temporary files in ``folder`` left by vggnp processes that have died
    (``kill -9``, a power cut). Returns how many were deleted. Only regular files are
    ours (a folder of that name is left alone); a process id no process can have (0, or
    too large) names no live writer: removed; one not in ASCII digits is not ours: left."""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        pid = _writer(name)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        path = os.path.join(folder, name)
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                removed += 1
        except OSError:
            pass  # gone already, or not ours to delete
    return removed


MAX_PID = 1 << 22  # Linux's largest pid_max


def _writer(name):
    """The process id in a temporary file's name (-1 for one no process can have), or None
    if it is not one of ours."""
    if not name.startswith(TEMP_PREFIX):
        return None
    pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
    if not (pid.isascii() and pid.isdigit()):
        return None
    return int(pid) if 0 < len(pid) <= 7 and 0 < int(pid) <= MAX_PID else -1


def _alive(pid):
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
