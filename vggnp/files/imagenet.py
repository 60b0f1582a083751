"""The 1000 ImageNet classes, from the bundled copy of Keras' ``imagenet_class_index.json``.

The file is byte-identical to the one Keras downloads (md5
c2c37ea517e94d9795004a39431a14cb); ``scripts/build_class_index.py`` shows how it was built.
"""

import json
import os

import numpy as np

from .errors import did_you_mean

_INDEX_PATH = os.path.join(os.path.dirname(__file__), "..", "data", "imagenet_class_index.json")
_classes = None


def classes():
    """[(wnid, name), ...] for class indices 0..999, e.g. classes()[386] == ('n02504458',
    'African_elephant')."""
    global _classes
    if _classes is None:
        with open(_INDEX_PATH, encoding="utf-8") as f:
            index = json.load(f)
        _classes = [tuple(index[str(i)]) for i in range(len(index))]
    return _classes


def class_index(name_or_index):
    """Class index from an int, a numeric string ("386"), a name ("African_elephant", or
    with spaces, any case) or a WordNet id ("n02504458"). Raises ValueError otherwise."""
    table = classes()
    text = str(name_or_index).strip()
    if text.isdigit():
        index = int(text)
        if index < len(table):
            return index
        raise ValueError(f"class index {index} out of range 0..{len(table) - 1}")
    key = text.replace(" ", "_").lower()
    matches = [i for i, (wnid, name) in enumerate(table) if key in (wnid, name.lower())]
    if not matches:
        raise ValueError(f"unknown ImageNet class {text!r}"
                         f"{did_you_mean(text.replace(' ', '_'), [n for _, n in table])}")
    return matches[0]  # "crane" and "maillot" name two classes each: the first is taken


def decode_predictions(probs, top=5):
    """probs: (N, 1000) -> for each image, the top-k [(index, wnid, name, score), ...],
    highest score first (Keras' ``decode_predictions`` with the class index added)."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != len(classes()):
        raise ValueError(f"expected (N, {len(classes())}) class scores, got {probs.shape}")
    return top_classes(probs, classes(), top)


def top_classes(probs, table, k):
    """probs: (N, K) -> for each image, the top-k [(index, wnid, name, score), ...]."""
    best = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(int(i), *table[i], float(row[i])) for i in order]
            for row, order in zip(probs, best)]

