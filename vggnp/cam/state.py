"""The two records of a ``vggnp.cam`` run, each built once: what the run was asked to do
and resolved before the first image (``RunSettings``), and what it has done so far
(``RunState``, which the main thread updates as images finish)."""

from dataclasses import dataclass, field

from ..nn.network import Network
from .outputs import UniqueNames


@dataclass(frozen=True)
class RunSettings:
    """The run's settings, resolved from the command line and the model before the first
    image: nothing here changes during the run.

    model: the network the stream's workers run (their replicas); own_model: a replica for
    the work this thread does beside the stream (--metric, --diagnose,
    --report-all-methods), whose worker threads hold the layer caches of ``model``.
    table: the class table [(wnid, name), ...]; mode: the preprocessing; layer: the conv
    layer explained (None for the input methods); target: the score explained;
    chosen_class: --class as an index, or None (each image's top-1); began: time.time()
    at the start; command: the command line as typed (for the report); threads: the
    BLAS threads (--threads); stop_wait: seconds a stopped run waits for a batch under way
    (its result is not written): none where the process ends next (``cam.command``), the
    stream's CLOSE_WAIT in a caller's process, so that its BLAS threads are given back.
    """
    model: Network
    own_model: Network
    table: list
    mode: str
    weights_path: str
    layer: str
    target: str
    chosen_class: int
    began: float
    command: str
    threads: int = 1
    stop_wait: float = 0


@dataclass
class RunState:
    """What the run has done so far, and where it says it.

    lines: the stdout lines (``run_io.StdoutLines``); results: the results file; progress:
    the progress line; failed, written: counts of images; refused: inputs that are not
    images to explain (a folder with no images, a named pipe), each said when found;
    stop: the exit code that stops the run early, or None; debug: --debug; taken: output
    names given to this run's images (``UniqueNames``);
    scale: --scale raw's shared scale {"max": ...}; inputs: file ids of the inputs (an
    output must never replace one); own: {absolute path of a file in --out that vggnp
    wrote: (the input it was made from, its stamp)} (``files.results.own_outputs``: the
    same input's outputs, unchanged, are replaced without --overwrite); replaced: those
    this run replaced (said at the end); trace: --trace's Tee, or None; messages: None
    (lines are said on stderr), or on a cluster's worker the list that keeps them for the
    client (``cluster_worker``).
    """
    lines: object
    results: object
    progress: object
    failed: int = 0
    written: int = 0
    refused: int = 0
    stop: int = None
    debug: bool = False
    taken: UniqueNames = field(default_factory=UniqueNames)
    scale: dict = field(default_factory=dict)
    inputs: set = field(default_factory=set)
    own: dict = field(default_factory=dict)
    replaced: list = field(default_factory=list)
    trace: object = None
    messages: list = None

    def counts(self, total, verb):
        """The run's tally: 'W of T image(s) VERB, F failed[, R other input(s) refused]'."""
        refused = f", {self.refused} other input(s) refused" if self.refused else ""
        return f"{self.written} of {total} image(s) {verb}, {self.failed} failed{refused}"



@dataclass
class Pictures:
    """What one image's picture outputs are drawn from (``outputs.save_pictures``).

    original: the photo (PIL); raw_map: the method's map as saved with --save-heatmap;
    heatmap: (h, w) in [0, 1], drawn over the photo; cls: the class explained; top_k: the
    top classes [(index, wnid, name, score)]; written: {output key: path}; box: --box's
    box or None; scale: --scale raw's {"max", "units"} or None; method_maps:
    --report-all-methods' {"map_<method>": picture} or None; replace: the paths of
    ``written`` that may replace a file (all with --overwrite, else vggnp's own).
    """
    original: object
    raw_map: object
    heatmap: object
    cls: int
    top_k: list
    written: dict
    box: tuple = None
    scale: dict = None
    method_maps: dict = None
    replace: frozenset = frozenset()


