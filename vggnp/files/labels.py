"""Class names for a user's own model (``--labels``): a text file, one name per line, or a
JSON file -- a list of names, or Keras' ``class_indices`` ({name: index}, as
``image_dataset_from_directory`` and ``flow_from_directory`` give them)."""

import json

from .errors import InputError, check_regular_file

MAX_LABELS_BYTES = 4 << 20  # ImageNet's 1,000 names take 10 KB


class LabelsError(InputError):
    """A labels file vggnp cannot use; the message is one line, for the user."""


def read_labels(path, n):
    """n class names from ``path``, UTF-8 (a leading byte-order mark is dropped): JSON when
    the text starts with "{" or "[" (see :func:`json_labels`), else one name per line
    (blank lines ignored). Raises LabelsError (with the path) if the file cannot be used."""
    size = check_regular_file(path, lambda reason: LabelsError(f"--labels {path}: {reason}"),
                              "a labels file")
    if size > MAX_LABELS_BYTES:
        raise LabelsError(f"--labels {path}: {size:,} bytes, over the limit of "
                          f"{MAX_LABELS_BYTES:,} for a list of class names")
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise LabelsError(f"--labels {path}: not UTF-8 text (byte {e.start}); save it as "
                          "UTF-8, one class name a line") from None
    except OSError as e:
        raise LabelsError(f"--labels {path}: cannot be read ({e.strerror})") from None
    if text.lstrip().startswith(("{", "[")):
        names = json_labels(text, path)
    else:
        names = [line.strip() for line in text.split("\n") if line.strip()]  # not \f, \x85...
    for k, name in enumerate(names):  # a NUL or ESC in a class name: not text to show
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise LabelsError(f"--labels {path}: name {k + 1} holds a control character "
                              f"({name[:40]!r}); one class name a line, as text")
    if len(names) != n:
        raise LabelsError(f"--labels {path}: has {len(names)} names, the model has {n} "
                          "classes" + (" (one sigmoid unit: class 0, then class 1)" if n == 2
                                       else ""))
    return names


def json_labels(text, path):
    """The names of a JSON labels file: a list of strings, or {name: index} with the
    indices 0..k-1 each once (Keras' class_indices), ordered by index."""
    try:
        found = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise LabelsError(f"--labels {path}: starts like JSON but is not JSON ({str(e)[:80]}); "
                          "give a JSON list of names, {name: index}, or one name a line") \
            from None
    if isinstance(found, list) and all(isinstance(name, str) for name in found):
        return [name.strip() for name in found]
    if isinstance(found, dict) and all(type(i) is int for i in found.values()) \
            and sorted(found.values()) == list(range(len(found))):
        return [name.strip() for name, _ in sorted(found.items(), key=lambda item: item[1])]
    raise LabelsError(f"--labels {path}: JSON, but neither a list of names nor {{name: index}} "
                      "with the indices 0, 1, ... each once (Keras' class_indices)")
