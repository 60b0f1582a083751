"""A dataset audit on a Dask cluster: the same maps as ``python -m vggnp.cam``, spread over
workers, each loading the model once.

    from dask.distributed import Client
    from scripts.dask_audit import audit
    client = Client("scheduler:8786")                  # or LocalCluster(n_workers=...)
    rows = audit(client, paths, "weights/vgg16.h5")    # [{"image", "class", "score", "map"}]

The paths are cut into ``dask.bag`` partitions; a worker runs ``vggnp.explain_files`` over
its partition (batches, a reader thread) and returns one small row per image: the class,
its score and the map at the layer's resolution (14x14 for VGG16), or the error. The
model is loaded once per worker process (``_model`` is cached there), not once per task.
Paths must be readable by the workers (a shared file system). Needs ``pip install
"dask[bag,distributed]"``.
"""

import functools
import os

import numpy as np

from vggnp.models.keras_convnet import load_keras_model
from vggnp import VGG16
from vggnp.stream.batches import explain_files


@functools.lru_cache(maxsize=2)
def _model(model_path):
    """The model, loaded once per worker process: a Keras model file (``.keras``, or an
    ``.h5`` with a model config) through ``--model``'s reader, else VGG16 weights."""
    if model_path.endswith(".keras"):
        return load_keras_model(model_path)
    try:
        return load_keras_model(model_path)
    except ValueError:
        return VGG16.load(model_path, need_top=True)


def explain_partition(paths, model_path, method="gradcam", batch_size=8, mode=None):
    """The rows of one partition: {"image", "class", "score", "map"} or {"image", "error"}."""
    model = _model(model_path)
    mode = mode or model.default_preprocess
    rows = []
    for result in explain_files(model, list(paths), method, mode=mode, batch_size=batch_size):
        if result.error is not None:
            rows.append({"image": result.source, "error": str(result.error)})
        else:
            rows.append({"image": result.source, "class": result.class_index,
                         "score": float(result.probs[result.class_index]),
                         "map": np.asarray(result.map, dtype=np.float32)})
    return rows


def audit(client, paths, model_path, partitions=None, method="gradcam", batch_size=8):
    """Explain every path on the cluster of ``client``; rows in the order of ``paths``.
    partitions: default two per worker, so a slow partition does not idle the others."""
    import dask.bag as db

    workers = len(client.scheduler_info()["workers"]) if client is not None else 1
    bag = db.from_sequence([os.fspath(p) for p in paths],
                           npartitions=partitions or max(1, 2 * workers))
    return bag.map_partitions(explain_partition, model_path, method, batch_size).compute()
