"""Export VGG16 weights from Keras to an .h5 file that vggnp loads (needs tensorflow).

    python scripts/export_keras_weights.py -o weights/vgg16.h5             # ImageNet VGG16
    python scripts/export_keras_weights.py my_model.keras -o weights/mine.h5

Without a model file it exports ``keras.applications.VGG16(weights="imagenet")`` (Keras
downloads it). With one (.keras, .h5), it takes the layers named like VGG16's
(block1_conv1 ... block5_conv3, and fc1, fc2, predictions if present), wherever they are
nested. The output uses the legacy Keras HDF5 layout (``layer_names``, ``weight_names``),
which vggnp and Keras' ``load_weights`` both read. The file is checked by loading it with
vggnp before the command reports success.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def vgg16_layers(model):
    """{name: layer} for every layer of ``model``, nested models included."""
    found = {}
    for layer in model.layers:
        found[layer.name] = layer
        if hasattr(layer, "layers"):
            found.update(vgg16_layers(layer))
    return found


def write_h5(path, weights):
    """weights: {name: (kernel, bias)} in VGG16 order -> legacy Keras HDF5 layout."""
    import h5py
    import numpy as np
    tmp = path + ".part"
    with h5py.File(tmp, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in weights])
        f.attrs["backend"] = b"tensorflow"
        for name, (kernel, bias) in weights.items():
            group = f.create_group(name)
            names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            group.create_dataset(names[0], data=np.asarray(kernel, dtype=np.float32))
            group.create_dataset(names[1], data=np.asarray(bias, dtype=np.float32))
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a Keras model file (.keras, .h5); "
                        "default: keras.applications.VGG16(weights='imagenet')")
    parser.add_argument("-o", "--output", required=True, help="the .h5 file to write")
    args = parser.parse_args(argv)

    import keras

    from vggnp import read_vgg16_weights

    from vggnp.nn import spec

    if args.model:
        model = keras.models.load_model(args.model, compile=False)
    else:
        model = keras.applications.VGG16(weights="imagenet")
    layers = vgg16_layers(model)
    missing = [n for n in spec.CONV_NAMES if n not in layers]
    if missing:
        sys.exit(f"{args.model}: no VGG16 layers named {', '.join(missing[:3])}...")
    names = spec.CONV_NAMES + [n for n in spec.DENSE_NAMES if n in layers]
    weights = {n: tuple(layers[n].get_weights()) for n in names}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    write_h5(args.output, weights)
    read_vgg16_weights(args.output)  # raises WeightsError if vggnp could not use it
    top = "with" if "fc1" in weights else "without"
    print(f"wrote {args.output}: VGG16 {top} the classifier, {len(weights)} layers")


if __name__ == "__main__":
    main()
