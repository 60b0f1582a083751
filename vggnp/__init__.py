"""vggnp: VGG16 in NumPy with a hand-written backward pass, explained by Grad-CAM."""

from .files.download import DownloadError, official_weights
from .files.imagenet import class_index, decode_predictions
from .files.images import ImageError, read_image
from .files.preprocess import load_image, load_img, preprocess_input
from .files.weights import WeightsError, read_vgg16_weights
from .gradcam import grad_cam
from .model import VGG16
from .overlay import overlay
from .stream import explain_files

__all__ = ["VGG16", "DownloadError", "ImageError", "WeightsError", "class_index",
           "decode_predictions", "explain_files", "grad_cam", "load_image", "load_img",
           "official_weights", "overlay", "preprocess_input", "read_image",
           "read_vgg16_weights"]
__version__ = "0.1.0"
