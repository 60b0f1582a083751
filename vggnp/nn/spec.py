"""The VGG16 architecture (Simonyan & Zisserman, configuration "D"), as Keras names it.

Five blocks of 3x3 "same" convolutions with ReLU, each closed by a 2x2 max-pool, then
flatten and three dense layers. Names match ``keras.applications.VGG16`` exactly, so a
user can look up any layer in either library by the same name.
"""

# (filters, number of convs) for each block
BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]

CONV_NAMES = [f"block{b}_conv{i}" for b, (_, n) in enumerate(BLOCKS, 1) for i in range(1, n + 1)]
POOL_NAMES = [f"block{b}_pool" for b in range(1, len(BLOCKS) + 1)]
DENSE_NAMES = ["fc1", "fc2", "predictions"]

# Every layer in order: block1_conv1, block1_conv2, block1_pool, ..., block5_pool,
# flatten, fc1, fc2, predictions.
LAYER_NAMES = [name for b, (_, n) in enumerate(BLOCKS, 1)
               for name in [f"block{b}_conv{i}" for i in range(1, n + 1)] + [f"block{b}_pool"]]
LAYER_NAMES += ["flatten"] + DENSE_NAMES

INPUT_SIZE = (224, 224)          # (height, width) the ImageNet weights were trained on
DENSE_UNITS = [4096, 4096, 1000]  # fc1, fc2, predictions (1000 ImageNet classes)


def standard_shapes():
    """{layer name: (kernel shape, bias shape)} of the ImageNet VGG16 (138,357,544 parameters)."""
    shapes, c_in = {}, 3
    for b, (filters, n) in enumerate(BLOCKS, 1):
        for i in range(1, n + 1):
            shapes[f"block{b}_conv{i}"] = ((3, 3, c_in, filters), (filters,))
            c_in = filters
    d_in = (INPUT_SIZE[0] // 32) * (INPUT_SIZE[1] // 32) * c_in  # 7 * 7 * 512 = 25088
    for name, units in zip(DENSE_NAMES, DENSE_UNITS):
        shapes[name] = ((d_in, units), (units,))
        d_in = units
    return shapes
