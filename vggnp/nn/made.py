"""What is made from a layer's weights -- LRP's w+ and w-, a BatchNorm folded into the
kernel before it -- made once and kept until the weights are replaced: one cache, one rule
for when it is stale."""


class MadeFrom:
    """{key: (the arrays it was made from, what was made)}.

    An entry is made again when any of its arrays is not the very array it was made from
    (compared with ``is``, not ``id``: an id is reused once an array is freed), as when
    the sanity checks put random kernels in place. An array changed in place is not seen:
    replace it. A layer's replicas share one (``copy.copy`` keeps the reference), so
    what they make is made once; a copy with other weights takes a new one."""

    def __init__(self):
        self._kept = {}

    def get(self, key, arrays, make, keep=True):
        """make(*arrays), or what it made before from these very arrays; kept for the
        next call unless ``keep`` is False (too big to hold: made every time)."""
        kept_from, made = self._kept.get(key, (None, None))
        if kept_from is None or len(kept_from) != len(arrays) or \
                any(a is not b for a, b in zip(kept_from, arrays)):
            made = make(*arrays)
            if keep:
                self._kept[key] = (tuple(arrays), made)
            else:
                self._kept.pop(key, None)
        return made

    def kept(self, key):
        """What is kept under ``key``, or None."""
        return self._kept.get(key, (None, None))[1]

    def forget(self, key):
        """Let ``key``'s entry go (what it holds is not wanted any more)."""
        self._kept.pop(key, None)
