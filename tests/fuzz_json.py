"""Mutations of a .keras model's config.json for the fuzz harness (issue #15), edited as
JSON: a key deleted, a value of another type, an extreme number, an odd value for a field
vggnp reads, deep nesting (JSON_EDITS); or the whole text replaced (:func:`whole_config`).

:func:`edit_config` does one of them to the text of config.json.
"""

import json

try:  # under pytest, and in the worker (tests/ on the path)
    from fuzz_bytes import pick
except ImportError:  # imported as tests.fuzz_json by python -m scripts.fuzz
    from tests.fuzz_bytes import pick


class Raw:
    """JSON text to put in place of a value as it is (1e400, NaN, deep nesting)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text if len(self.text) < 40 else f"{self.text[:20]}...({len(self.text)} chars)"


def _json_nodes(node, path=()):
    """(path, value) of every value in a parsed JSON document, the root first."""
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        yield from _json_nodes(value, path + (key,))


def _set(config, path, value):
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


FIELD_VALUES = {  # odd values for the config fields vggnp reads
    "strides": [0, -1, [0, 0], [1], [2, 0], [100000, 100000], "2", [1.5, 1.5], [True, True]],
    "pool_size": [0, [0, 0], [100000, 100000], [65, 65], [3], None, [2, 2, 2]],
    "kernel_size": [0, [0, 0], [1], [1000, 1000], [65, 65], -3, [3, 3, 3]],
    "filters": [0, -1, 1, 100000, 2**31, 1.5, "16"],
    "units": [0, -1, 1, 100000, 10**9, "3"],
    "batch_shape": [None, [], [None, 0, 0, 3], [None, 1, 1, 3], [None, 100000, 100000, 3],
                    [None, 64, 64], [None, 64, 64, 4], [None, 64, 64, 1], [64, 64, 3],
                    [None, -64, 64, 3], [None, 64, 64, 0], [None, 3, 3, 3], [None, 7, 200, 3]],
    "padding": ["reflect", "causal", "SAME", "full", 1, None, ""],
    "activation": ["nope", "softmax", "linear", "sigmoid", "tanh", None, 3, "", {"a": 1}],
    "class_name": ["Foo", "Dense", "Conv2D", "MaxPooling2D", "Flatten", "Functional",
                   "Sequential", "InputLayer", None, 0, "Lambda", "BatchNormalization"],
    "name": ["", None, 5, "conv2d_6", "dense_1", "../x", "a/b"],
    "data_format": ["channels_first", None, "x"],
    "dilation_rate": [[2, 2], 0, [0, 0]],
    "groups": [0, 2, 16],
    "use_bias": [False, None, "yes"],
    "scale": [Raw("1e400"), Raw("NaN"), 1e30, 0, -1, "x", [1, 2]],
    "offset": [Raw("-1e400"), 1e30, "x"],
    "layers": [[], None, "x", {}, [None], [1, 2]],
    "config": [None, [], "x", 0],
    "input_shape": [[None, 0, 0, 3], [None, 100000, 100000, 3], None],
    "dtype": ["float16", "int8", "complex64", None, "x", 0],
}
OTHER_VALUES = [None, True, 0, -1, 2.5, "", "x", [], {}, [0], {"x": 0}]
NUMBERS = [0, -1, -7, 1, 2**31, 2**63, 10**6, 100000, 0.5, 1e-45, 1e308, Raw("1e400"),
           Raw("-1e400"), Raw("NaN"), Raw("Infinity"), Raw("1" + "0" * 5000)]


def delete_key(config, rng):
    """Delete one key of one object (class_name, name, config, layers, strides...)."""
    path, node = pick(rng, [(p, n) for p, n in _json_nodes(config) if isinstance(n, dict) and n])
    key = pick(rng, node)
    del node[key]
    return f"delete {'/'.join(map(str, path + (key,)))}"


def swap_type(config, rng):
    """Replace one value by a value of another type (null, a list, a string...)."""
    path, node = pick(rng, list(_json_nodes(config))[1:])
    value = pick(rng, [v for v in OTHER_VALUES if type(v) is not type(node)])
    _set(config, path, value)
    return f"{'/'.join(map(str, path))} = {json.dumps(value)}"


def odd_number(config, rng):
    """Replace one number by an extreme one (0, negative, huge, 1e400, NaN, 5000 digits) or
    by a string."""
    path, node = pick(rng, [(p, n) for p, n in _json_nodes(config) if p and
                            isinstance(n, (int, float)) and not isinstance(n, bool)])
    value = pick(rng, NUMBERS + [str(node), f"{node}x"])
    _set(config, path, value)
    return f"{'/'.join(map(str, path))} = {value!r}"


def odd_field(config, rng):
    """Give a field vggnp reads (strides, pool_size, batch_shape, padding, ...) an odd value."""
    fields = [(p, n) for p, n in _json_nodes(config) if p and p[-1] in FIELD_VALUES]
    path, _ = pick(rng, fields)
    value = pick(rng, FIELD_VALUES[path[-1]])
    _set(config, path, value)
    return f"{'/'.join(map(str, path))} = {value!r}"


def nest(config, rng):
    """Replace one value by lists or objects nested 50 to 100,000 deep."""
    path, _ = pick(rng, list(_json_nodes(config))[1:])
    depth = pick(rng, [50, 1000, 100_000])
    text = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "0" + "}" * depth
    _set(config, path, Raw(text))
    return f"{'/'.join(map(str, path))} = nesting {depth} deep"


JSON_EDITS = [delete_key, swap_type, odd_number, odd_field, odd_field, nest]


def _dumps(config):
    """JSON text of ``config``, each Raw value written as its text."""
    raws = {}

    def mark(node):
        if isinstance(node, Raw):
            key = f"\x00raw{len(raws)}\x00"
            raws[json.dumps(key)] = node.text
            return key
        if isinstance(node, dict):
            return {k: mark(v) for k, v in node.items()}
        return [mark(v) for v in node] if isinstance(node, list) else node
    text = json.dumps(mark(config))
    for key, raw in raws.items():
        text = text.replace(key, raw)
    return text.encode()


def whole_config(text, rng):
    """The whole config.json replaced: not an object, invalid JSON, not UTF-8, a BOM, 9 MB
    of whitespace (over the cap), or the layers 500 times over."""
    choices = {"null": lambda: b"null", "a list": lambda: b"[]", "a string": lambda: b'"x"',
               "a number": lambda: b"0", "invalid JSON": lambda: b"{", "empty": lambda: b"",
               "an empty object": lambda: b"{}",
               "no config": lambda: b'{"class_name": "Sequential"}',
               "a BOM": lambda: b"\xef\xbb\xbf" + text,
               "not UTF-8": lambda: text.replace(b'"', b"\xff", 1),
               "trailing text": lambda: text + b" x",
               "UTF-16": lambda: text.decode().encode("utf-16"),
               "9 MB": lambda: b" " * (9 << 20) + text,
               "the layers 500 times": lambda: _many_layers(json.loads(text), 500)}
    what = pick(rng, choices)
    return choices[what](), what


def _many_layers(config, times):
    config["config"]["layers"] *= times
    return _dumps(config)


def edit_config(text, rng):
    """config.json's text edited as JSON (JSON_EDITS), or replaced whole; (text, what)."""
    if rng.random() < 0.15:
        return whole_config(text, rng)
    config = json.loads(text)
    what = pick(rng, JSON_EDITS)(config, rng)
    return _dumps(config), what
