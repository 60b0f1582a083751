"""Find, or download once, the official Keras VGG16 ImageNet weights.

The file is cached in ``$VGGNP_HOME`` (default: the user cache folder, e.g.
``~/.cache/vggnp``). A download streams into a temporary file in that folder while
hashing it, shows progress on stderr, and is renamed into place only when its size and
md5 match the published ones; the temporary file is deleted on any failure. A lock file
keeps two first runs from downloading at the same time.
"""

import hashlib
import os
import sys
import tempfile
import time

from .official import FILENAME, MD5, SIZE, URL, cache_dir, remember_verified
from .outputs import file_mode


class DownloadError(RuntimeError):
    """The weights could not be fetched: the message (one line) says why; ``advice``, lines
    of what to do instead."""

    def __init__(self, message, advice=()):
        super().__init__(message)
        self.advice = tuple(advice)


def official_weights(progress=True):
    """Path of the official weights: in the cache, in a checkout's weights/ folder (beside
    the package, or in the current folder), or else downloaded into the cache."""
    cached = os.path.join(cache_dir(), FILENAME)
    checkout = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "weights",
                            FILENAME)
    for path in (cached, os.path.normpath(checkout), os.path.join("weights", FILENAME)):
        if os.path.isfile(path) and os.path.getsize(path) == SIZE:
            return path
    return download(URL, cached, SIZE, MD5, progress=progress)


class _Lock:
    """An exclusive lock on the cache ``folder``, held while the ``with`` block runs: two
    first runs do not download at once. The folder itself is locked (flock on its file
    descriptor), so no lock file is left behind; where that is not possible (Windows), a
    ``.lock`` file in it."""

    def __init__(self, folder):
        self.folder = folder

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows
            import msvcrt
            self.fd = os.open(os.path.join(self.folder, ".lock"), os.O_RDWR | os.O_CREAT)
            msvcrt.locking(self.fd, msvcrt.LK_LOCK, 1)
            return self
        self.fd = os.open(self.folder, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the lock


def _progress(done, total, started, last_shown):
    """Print a progress line on stderr at most every half second; returns when shown."""
    now = time.monotonic()
    if now - last_shown < 0.5 and done < total:
        return last_shown
    rate = done / max(now - started, 1e-9) / 1e6
    _say(f"  {done / 1e6:7.1f} / {total / 1e6:.1f} MB ({100 * done / total:5.1f}%) "
         f"{rate:6.1f} MB/s", end="\r" if done < total else "\n")
    return now


def _say(text, end="\n"):
    """Progress on stderr, never elsewhere: nothing if stderr is closed or broken (it must
    not fail the download, nor reach stdout, where print(file=None) would put it)."""
    if sys.stderr is None:
        return
    try:
        if end == "\r" and not sys.stderr.isatty():
            return
        print(text, end=end, file=sys.stderr, flush=True)
    except (AttributeError, OSError, ValueError):
        pass


def download(url, dest, size, md5, progress=True, timeout=30):
    """Download ``url`` to ``dest`` if ``dest`` is not there yet; returns ``dest``.

    Verified against ``size`` bytes and ``md5`` before the atomic rename into place.
    Raises DownloadError, leaving no partial file behind.
    """
    folder = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(folder, exist_ok=True)
        lock = _Lock(folder)
        lock.__enter__()
    except OSError as e:
        raise DownloadError(f"cannot write to the weights cache {folder}: {e}. Set VGGNP_HOME "
                            "to a writable folder, or pass --weights PATH") from None
    try:
        if os.path.isfile(dest) and os.path.getsize(dest) == size:
            return dest  # another process finished the download while we waited
        if os.path.lexists(dest):  # never replaced: it may be someone's file
            raise DownloadError(f"{dest} is there but is not the file to download ("
                                f"{_size_of(dest)}; the download is {size:,} bytes): a copy "
                                "cut short, or another file of that name. Delete it to "
                                "download again, or pass --weights PATH")
        _remove_partial_downloads(dest)
        _fetch(url, dest, size, md5, progress, timeout)
        return dest
    finally:
        lock.__exit__()


def _size_of(path):
    """'N bytes', or what ``path`` is when it is not a regular file."""
    if not os.path.isfile(path):
        return "a folder" if os.path.isdir(path) else "not a regular file"
    return f"{os.path.getsize(path):,} bytes"


def _remove_partial_downloads(dest):
    """Delete what an earlier download that was killed (kill -9, power cut) left behind.
    Safe: we hold the lock, so no other process is downloading into these files."""
    folder, name = os.path.split(os.path.abspath(dest))
    for leftover in os.listdir(folder):
        if leftover.startswith(name + ".") and leftover.endswith(".part"):
            try:
                os.unlink(os.path.join(folder, leftover))
            except OSError:
                pass


def _fetch(url, dest, size, md5, progress, timeout):
    # Imported here, not at the top: http.client and its email parser cost ~30 ms at every
    # start of the command, and only a first run downloads.
    import http.client
    import urllib.error
    import urllib.request

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)),
                               prefix=os.path.basename(dest) + ".", suffix=".part")
    try:
        digest, done = hashlib.md5(), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            if "text/html" in response.headers.get("Content-Type", ""):
                raise DownloadError(f"{url} returned an HTML page, not the weights file "
                                    "(a proxy or captive portal?)")
            if progress:  # only once the server answered: offline, the error says it all
                _say(f"Downloading the VGG16 ImageNet weights ({size / 1e6:.0f} MB, once)\n"
                     f"  from {url}\n  to   {dest}")
            started = last_shown = time.monotonic()
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    last_shown = _progress(done, size, started, last_shown)
        if done != size:
            raise DownloadError(f"download of {url} stopped at {done:,} of {size:,} bytes")
        if digest.hexdigest() != md5:
            raise DownloadError(f"download of {url} is corrupt: md5 {digest.hexdigest()}, "
                                f"expected {md5}")
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would keep other users out of a shared cache
        os.replace(tmp, dest)
        if md5 == MD5:
            remember_verified(dest)  # just hashed: the first use need not hash it again
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, urllib.error.URLError):  # no network, DNS failure, HTTP 404...
            raise DownloadError(*_offline_message(url, dest, e)) from None
        if isinstance(e, (OSError, http.client.HTTPException)):  # timeout, broken connection
            raise DownloadError(f"download of {url} failed: {e!r}") from None
        raise


def _offline_message(url, dest, error):
    """(one line, advice lines) for a download that found no network."""
    reason = getattr(error, "reason", None) or error
    advice = [f"  Get {url}", f"  and save it as {dest}",
              "  or pass --weights PATH (any Keras VGG16 .h5 / .weights.h5 / .keras file)"]
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    demo = [os.path.join(checkout, *parts) for parts in (
        ("weights", "shapes_convnet.keras"), ("weights", "shapes_labels.txt"),
        ("examples", "circle.png"))]
    if all(os.path.isfile(path) for path in demo):  # a checkout: its demo model runs offline
        model, labels, image = (os.path.relpath(p) if _below_cwd(p) else p for p in demo)
        advice.append(f"  Offline now, the demo model runs: python -m vggnp.cam --model "
                      f"{model} --labels {labels} {image}")
    return f"could not download the VGG16 ImageNet weights ({reason})", advice


def _below_cwd(path):
    try:
        return not os.path.relpath(path).startswith("..")
    except (ValueError, OSError):  # another drive (Windows); a deleted working folder
        return False
