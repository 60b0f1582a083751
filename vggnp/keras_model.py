"""Kept for one release so that ``from vggnp.keras_model import load_keras_model`` goes on
working; import ``load_keras_model`` from ``vggnp`` (the reader lives in
``vggnp/models/keras_convnet.py``)."""

from .models.keras_convnet import KerasConvNet, ModelError, load_keras_model

__all__ = ["KerasConvNet", "ModelError", "load_keras_model"]
