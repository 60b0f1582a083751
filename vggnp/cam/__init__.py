"""python -m vggnp.cam: the main job, one photo or a folder of ten thousand (``run.py``).

Reading order: ``args.py`` (the options and the checks that refuse), ``run.py`` (plan,
prepare, stream the images, finish), ``image.py`` (one image's result to its outputs and
lines), ``outputs.py`` (output names and pictures), ``run_io.py`` (inputs, the results
file, stdout lines, progress).
"""

from ..startup import end_process, guard, started

__all__ = ["command", "main"]


def main(argv=None, client=None, process_ends=False):
    """The main job, from Python or as a command (``command``): the start-up guard
    (``startup.py``) is up while ``run.py`` and NumPy load, then ``run.main`` runs (client:
    a ``dask.distributed.Client`` to run on, as ``--dask ADDRESS`` does)."""
    previous = guard("vggnp.cam", environment=process_ends)  # a command's process only
    from .run import main as run_main
    started(previous)
    return run_main(argv, client=client, process_ends=process_ends)


def command():
    """The command line's entry point (``python -m vggnp.cam``, ``vggnp-cam``): ``main``
    in a process that ends when it returns (``startup.end_process``)."""
    return end_process(main(process_ends=True))
