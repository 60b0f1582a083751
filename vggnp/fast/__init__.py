"""The same sums as ``vggnp/nn/``, computed faster (shifted GEMMs, the in-place BLAS call,
Winograd, batch splitting, shared BLAS threads); each is tested against the lesson."""
