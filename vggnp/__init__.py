"""vggnp: VGG16 in NumPy with a hand-written backward pass, explained by Grad-CAM."""

from .files.download import DownloadError, official_weights
from .files.imagenet import class_index, decode_predictions
from .files.images import ImageError, read_image
from .files.preprocess import load_image, load_img, preprocess_input
from .files.weights import WeightsError, read_vgg16_weights
from .methods.gradcam import grad_cam
from .models.keras_convnet import load_keras_model
from .models.vgg16 import VGG16
from .stream.batches import explain_files
from .viz.overlay import overlay

__all__ = ["VGG16", "DownloadError", "ImageError", "WeightsError", "class_index",
           "decode_predictions", "explain_files", "grad_cam", "load_image", "load_img",
           "load_keras_model",
           "official_weights", "overlay", "preprocess_input", "read_image",
           "read_vgg16_weights"]
__version__ = "0.1.0"
