"""vggnp: VGG16 in NumPy with a hand-written backward pass, explained by Grad-CAM."""

from .download import DownloadError, official_weights
from .gradcam import grad_cam
from .imagenet import class_index, decode_predictions
from .model import VGG16
from .overlay import overlay
from .preprocess import load_image, load_img, preprocess_input
from .weights import WeightsError, read_vgg16_weights

__all__ = ["VGG16", "DownloadError", "WeightsError", "class_index", "decode_predictions",
           "grad_cam", "load_image", "load_img", "official_weights", "overlay",
           "preprocess_input", "read_vgg16_weights"]
__version__ = "0.1.0"
