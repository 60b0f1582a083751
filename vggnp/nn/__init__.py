"""The lesson: VGG16's layers, network, im2col, gradient checks and traces in their textbook
form, NumPy only; nothing here is there for speed (that is ``vggnp/fast/``)."""
