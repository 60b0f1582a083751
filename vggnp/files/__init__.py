"""Everything that reads or writes files: weights (HDF5 and .keras), Keras model configs
(``vggnp/models/`` builds the networks), the official weights' download and checksum, the
results file, images as a person sees them, preprocessing, the
ImageNet class names, and the safe writing of outputs. The model and the algorithms above
this package work on arrays."""
