"""Kept so that ``from vggnp.keras_model import load_keras_model`` goes on working; the
reader lives in ``vggnp.files.model_files``."""

from .files.model_files import KerasConvNet, ModelError, load_keras_model

__all__ = ["KerasConvNet", "ModelError", "load_keras_model"]
