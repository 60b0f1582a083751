"""The input scaling a Keras model file expects, when the command line is not told
(``--preprocess``): Keras Applications bases are known by the name Keras gives each model,
and each was trained with one of ``keras.applications.imagenet_utils``' modes.

    caffe  VGG16, VGG19, ResNet50/101/152 (BGR minus the ImageNet means)
    tf     ResNet50V2..., MobileNet, MobileNetV2, Xception, InceptionV3,
           InceptionResNetV2, NASNet (to [-1, 1])
    torch  DenseNet (ImageNet mean and standard deviation)
    none   a model whose first layer rescales its input itself (EfficientNet,
           EfficientNetV2 and MobileNetV3 do; a book model's Rescaling(1/255))
    rescale   anything else: x / 255, the book's ImageDataGenerator(rescale=1./255)
"""

import re

from ..nn.convnet_layers import Rescaling

# The names Keras Applications give their models (lower-cased), exactly: a user's own model
# called "vgg_cats" and trained on x / 255 must not be taken for VGG16.
APPLICATIONS = ((r"vgg(16|19)|resnet(50|101|152)", "caffe"),
                (r"resnet(50|101|152)v2|mobilenet(v2)?_\d\.\d\d_\d+|xception|inception_v3"
                 r"|inception_resnet_v2|nasnet", "tf"),
                (r"densenet(121|169|201)", "torch"))


def model_names(config, depth=0):
    """The names of the model in a Keras config and of every model nested in it."""
    if depth > 64 or not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        return []
    name = config["config"].get("name")
    names = [name.lower()] if isinstance(name, str) else []
    for layer in config["config"].get("layers", []) or []:
        if isinstance(layer, dict) and isinstance(layer.get("config"), dict) \
                and "layers" in layer["config"]:
            names += model_names(layer, depth + 1)
    return names


def application_mode(names):
    """The mode of the first Keras Applications model among ``names``, or None."""
    for name in names:
        for pattern, mode in APPLICATIONS:
            if re.fullmatch(pattern, name):
                return mode
    return None


def default_preprocess(first_layer, names):
    """``none`` if the model's first layer rescales, else the mode of a Keras Applications
    model among ``names`` (the model's and its nested models'), else ``rescale`` (a guess:
    ``preprocess_guessed``)."""
    if isinstance(first_layer, Rescaling):  # Keras' Normalization is read as one too
        return "none"
    return application_mode(names) or "rescale"


def preprocess_guessed(first_layer, names):
    """True where the model says nothing of how its inputs were scaled (no rescaling first
    layer, no Keras Applications model inside): ``rescale`` is then a guess."""
    return not isinstance(first_layer, Rescaling) and application_mode(names) is None
