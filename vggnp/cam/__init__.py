"""python -m vggnp.cam: the main job, one photo or a folder of ten thousand (``run.py``).

Reading order: ``args.py`` (the options and the checks that refuse), ``run.py`` (plan,
prepare, stream the images, finish), ``image.py`` (one image's result to its outputs and
lines), ``outputs.py`` (output names and pictures), ``run_io.py`` (inputs, the results
file, stdout lines, progress).
"""

from .run import main

__all__ = ["main"]
