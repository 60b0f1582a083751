"""Class names for a user's own model: a text file, one name per line (``--labels``)."""

from .errors import InputError, check_regular_file

MAX_LABELS_BYTES = 4 << 20  # ImageNet's 1,000 names take 10 KB


class LabelsError(InputError):
    """A labels file vggnp cannot use; the message is one line, for the user."""


def read_labels(path, n):
    """n class names from a text file, one per line (blank lines ignored), UTF-8.
    Raises LabelsError (with the path) if the file cannot be used."""
    size = check_regular_file(path, lambda reason: LabelsError(f"--labels {path}: {reason}"),
                              "a labels file")
    if size > MAX_LABELS_BYTES:
        raise LabelsError(f"--labels {path}: {size:,} bytes, over the limit of "
                          f"{MAX_LABELS_BYTES:,} for a list of class names")
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise LabelsError(f"--labels {path}: not UTF-8 text (byte {e.start}); save it as "
                          "UTF-8, one class name a line") from None
    except OSError as e:
        raise LabelsError(f"--labels {path}: cannot be read ({e.strerror})") from None
    if len(names) != n:
        raise LabelsError(f"--labels {path}: has {len(names)} names, the model has {n} "
                          "classes" + (" (one sigmoid unit: class 0, then class 1)" if n == 2
                                       else ""))
    return names
