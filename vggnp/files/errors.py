"""The errors of the file funnels, and the check every funnel makes before it opens a file.

Every reader of a user's file (weights, model, labels, image) either returns validated data
or raises an :class:`InputError` whose message is one line: what is wrong, in words a user
understands, and what to do. Library exceptions (h5py, zipfile, json, Pillow, NumPy) are
translated where the file is read, never by a catch-all around a command.
"""

import errno
import os
import stat


class InputError(ValueError):
    """An input file vggnp cannot use; the message is one line, for the user (``advice``:
    more lines of what to do, none here; see ``download.DownloadError``)."""

    advice = ()


def check_regular_file(path, error=InputError, what="file"):
    """Raise ``error`` unless ``path`` is a regular, non-empty file; returns its size.

    Nothing else is ever opened: opening a named pipe waits for a writer that may never
    come, and /dev/zero or /dev/urandom never end. The message has no path (the caller's
    error class or the command adds it where it belongs)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise error(f"a symbolic link to {os.readlink(path)!r}, which does not "
                        "exist") from None
        raise error("no such file") from None
    except PermissionError:
        raise error("permission denied (cannot reach the file)") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise error("a symbolic link loop") from None
        raise error(f"cannot access the file ({e.strerror})") from None
    except ValueError:  # os.stat's answer to a NUL byte in the name
        raise error("the name holds a NUL byte, which no file name can") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"a directory, not {what}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"not a regular file (a named pipe, socket or device), not {what}; "
                    "save it to a file first")
    if info.st_size == 0:
        raise error("an empty file (0 bytes): a copy or download that did not finish?")
    if not os.access(path, os.R_OK):
        raise error("permission denied (the file is not readable)")
    return info.st_size


def said(error):
    """A library error's message on one line, at most 200 characters."""
    line = " ".join(str(error).split()) or type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."


# Control characters in a name would reach the terminal raw: a newline forges a second
# message, ESC or CR redraw the screen. Shown escaped instead, as ``ls -b`` does.
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
# The Unicode line separators, and the direction overrides that can show a name reversed.
_ESCAPES.update({c: f"\\u{c:04x}" for c in [0x2028, 0x2029, *range(0x202a, 0x202f),
                                             *range(0x2066, 0x206a)]})
NAME_LIMIT = 300      # a layer name, a class name: longer ones are cut in the middle
LINE_LIMIT = 10_000   # a printed line: room for two paths of PATH_MAX (4,096)


def printable(text, limit=NAME_LIMIT):
    """``text`` safe to print on one line: control characters (C0, DEL, C1, the Unicode
    line separators and direction overrides) escaped, and when longer than ``limit``
    characters, its middle replaced by a marker that says how much was cut. Every name
    vggnp prints passes here
    (in :func:`vggnp.cli.say` and the stdout lines, for whole lines); JSON keeps the exact
    name."""
    text = str(text).translate(_ESCAPES)
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 2)
    marker = f"...[{len(text) - keep:,} characters cut]..."
    return text[:keep // 2] + marker + text[len(text) - keep // 2:]


def did_you_mean(text, names):
    """" (did you mean 'a', 'b'?)" with the names of ``names`` nearest to ``text`` (difflib,
    case ignored), or "" when none is near: for a typo in --class or --layer."""
    import difflib
    lowered = {name.lower(): name for name in names}
    near = difflib.get_close_matches(str(text).lower(), list(lowered), n=3, cutoff=0.6)
    if not near:
        return ""
    return f" (did you mean {', '.join(repr(lowered[n]) for n in near)}?)"
