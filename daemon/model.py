"""Loading a genre model: an ONNX graph plus the :class:`dsp.ModelSpec` in its metadata.

The daemon computes whatever front end the metadata names. Everything that could make a model silently wrong
(a window length, mel count or label count the graph was not built for, a promised music head or tags output that is
missing) is checked once at load time and refused with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from genrecast.dsp import (
    DIRECT_OUTPUT,
    GENRE_OUTPUT,
    METADATA_KEY,
    MUSIC_OUTPUT,
    ROOM_OUTPUT,
    TAGS_OUTPUT,
    ModelSpec,
    ModelSpecError,
    weigh_heads,
)

from genrecast.paths import EMPTY_PATH, path_problem

# Shipped inside this package (daemon/models links to the repository's models/, where the trainer writes), so a
# wheel installed anywhere finds it; importlib.resources rather than a path built from the checkout's layout.
DEFAULT_MODEL = Path(str(resources.files(__package__) / "models" / "genrecast-gtzan.onnx"))


GENRE_HEADS = ("room", "direct")  # how audio reaches a model with two genre heads: through a room, or as recorded
# What a user says about it (``heard``): one of those, or ``auto``: a microphone is in a room, and any other source
# (a file, a pipe, a stream, which may hold a room's recording) is judged from the sound by a model with a room
# detector, else taken as recorded.
HEARD = ("auto", *GENRE_HEADS)
WEIGHED = "auto"  # the genre head reported where the room detector weighs the two


def genre_head(spec: ModelSpec, heard: str, recorded: bool = True) -> str | None:
    """What a model reads for audio ``heard`` so (:data:`HEARD`) from a source that is ``recorded`` (anything but a
    microphone): ``room``, ``direct``, or ``auto`` (both weighed by its room detector, window by window); None for
    a model with one genre head, which reads it for any audio. A microphone with ``auto`` reads the room head: the
    detector weighs it a few tracks in 589 worse through rooms (the model card), and a room is what a microphone
    hears."""
    if heard not in HEARD:
        raise ValueError(f"heard must be one of {', '.join(HEARD)}, got {heard!r}")
    if not spec.direct_head:
        return None
    if heard != "auto":
        return heard
    if not recorded:
        return "room"
    return WEIGHED if spec.room_detector else "direct"


def describe_head(head: str | None) -> str:
    """How logs and reports name what :func:`genre_head` chose."""
    return "both genre heads weighed by the room detector" if head == WEIGHED else f"the {head} genre head"


@dataclass(frozen=True)
class Output:
    """What the model says about a batch of windows."""

    genre: np.ndarray  # [batch, n_labels] probabilities
    music: np.ndarray  # [batch] probability that the window holds music; ones for a model without a music head
    tags: np.ndarray | None = None  # [batch, n_tags] style tag probabilities; None for a model without tags
    direct: np.ndarray | None = None  # [batch, n_labels] the direct genre head's; None for a model without one
    room: np.ndarray | None = None  # [batch] probability the window was heard through a room; None without a detector

    def genre_for(self, head: str | None) -> np.ndarray:
        """The genre probabilities the head :func:`genre_head` names gives: the direct head's, the room head's, or
        for ``auto`` each window's two weighed by its room probability (the room head as far as the window sounds
        heard through a room); a model with one genre head's for ``None``, ``room`` and ``direct`` alike."""
        if head == WEIGHED:
            if self.direct is None or self.room is None:
                raise ValueError("auto weighs a direct head against the other by a room detector: this model lacks one")
            return weigh_heads(self.genre, self.direct, self.room)
        if head not in (None, *GENRE_HEADS):
            raise ValueError(f"no genre head {head!r}")
        return self.direct if head == "direct" and self.direct is not None else self.genre


@dataclass
class GenreModel:
    spec: ModelSpec
    path: Path
    _session: object
    _input: str
    _outputs: list[str]  # the genre output, then the music, tags, direct genre and room outputs the model has

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    def predict(self, windows: np.ndarray) -> Output:
        """``[batch, n_mels, n_frames]`` log-mel (:class:`~daemon.pipeline.Window`'s) -> genre probabilities (both
        heads' for a model with a direct head), music probability, tags and room probability per window."""
        results = dict(zip(self._outputs, self._session.run(
            self._outputs, {self._input: np.ascontiguousarray(windows, np.float32)}), strict=True))
        genre = results[GENRE_OUTPUT]
        music = results[MUSIC_OUTPUT].reshape(-1) if MUSIC_OUTPUT in results else np.ones(genre.shape[0], np.float32)
        room = results.get(ROOM_OUTPUT)
        return Output(genre, music, results.get(TAGS_OUTPUT), results.get(DIRECT_OUTPUT),
                      None if room is None else room.reshape(-1))


def _check_dims(what: str, dims: list, expected: list) -> str | None:
    """Compare static dims to ``expected`` (``None`` = any); symbolic dims pass."""
    if len(dims) != len(expected):
        return f"{what} has rank {len(dims)}, expected {len(expected)} {expected}"
    for got, want in zip(dims, expected, strict=True):
        if want is not None and isinstance(got, int) and got != want:
            return f"{what} shape {dims} does not fit {expected}"
    return None


def shipped_models() -> list[str]:
    return sorted(p.name for p in DEFAULT_MODEL.parent.glob("*.onnx"))


def model_path(given: str | os.PathLike | None) -> Path:
    """The file ``--model`` names: a path, or the bare name of a model the package ships, with or without
    ``.onnx`` (``genrecast-gtzan-fast`` works from an installed wheel as well as in a checkout)."""
    if given is None:
        return DEFAULT_MODEL
    path = Path(given)
    shipped = path.name if path.suffix == ".onnx" else f"{path.name}.onnx"
    if not path.exists() and path.name == str(given) and shipped in shipped_models():
        return DEFAULT_MODEL.parent / shipped
    return path


def model_file(given: str | os.PathLike | None) -> Path:
    """The file ``--model`` names, refused in one line if there is none: cheap enough to check at start where the
    model itself is loaded only on first use."""
    if given is not None and not os.fspath(given):
        raise ModelSpecError(f"model: {EMPTY_PATH}")
    path = model_path(given)
    if problem := path_problem(path):
        hint = ""
        if problem.kind == "missing":
            hint = " (train one with `genrecast train-transfer`, or pass --model)" if path == DEFAULT_MODEL else \
                f" (the package ships {', '.join(shipped_models())})"
        raise ModelSpecError(f"model {path}: {problem}{hint}")
    return path


def load_model(path: str | os.PathLike | None = None) -> GenreModel:
    """Open ``path`` (default :data:`DEFAULT_MODEL`) with onnxruntime on the CPU, single-threaded: several cores are
    used by running whole calls on several threads at once (:mod:`daemon.inference`)."""
    import onnxruntime as ort

    path = model_file(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # No arena: it keeps the high-water mark of every batch size seen (about 50 MB for a batch of 4 windows of the
    # default model) for a cost of about 1 % per window, measured.
    options.enable_cpu_mem_arena = False
    # No memory pattern either: it holds one block the size of every intermediate of a call for the session's life
    # (0.4.0, batch 2: 124 MB resident against 78 without; daemon_bench 262 MB against 231, over the 250 MB budget).
    # It costs 1-3 % CPU (0.4.0, calls interleaved with a session that has it: 21.1 against 20.8 ms a window, 41.7
    # against 41.4 for two).
    options.enable_mem_pattern = False
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSpecError(f"model {path}: not a loadable ONNX model ({detail[:200]})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelSpecError(f"model {path}: no {METADATA_KEY!r} metadata, so its labels and features are unknown")
    try:
        spec = ModelSpec.from_json(meta[METADATA_KEY])
    except ModelSpecError as exc:
        raise ModelSpecError(f"model {path}: {exc}") from None
    inputs, outputs = session.get_inputs(), {o.name: o for o in session.get_outputs()}
    if len(inputs) != 1 or not outputs:
        raise ModelSpecError(f"model {path}: expected one input and an output, got {len(inputs)} and {len(outputs)}")
    genre = outputs.get(GENRE_OUTPUT)
    if genre is None:
        raise ModelSpecError(f"model {path}: no {GENRE_OUTPUT!r} output among {sorted(outputs)}")
    problem = _check_dims("input", inputs[0].shape, [None, spec.dsp.n_mels, spec.n_frames]) or _check_dims(
        "output", genre.shape, [None, len(spec.labels)]
    )
    # what the metadata promises beside the genre output (a graph's output it does not promise is not read)
    promised = {
        MUSIC_OUTPUT: ("its metadata sets music_threshold", [None]),
        TAGS_OUTPUT: (f"its metadata names {len(spec.tags)} tags", [None, len(spec.tags)]),
        DIRECT_OUTPUT: ("its metadata names a direct genre head", [None, len(spec.labels)]),
        ROOM_OUTPUT: ("its metadata names a room detector", [None]),
    }
    for name in spec.outputs[1:]:
        if problem:
            break
        promise, dims = promised[name]
        problem = (f"{promise} but the graph has no {name!r} output" if name not in outputs
                   else _check_dims(f"{name!r} output", outputs[name].shape, dims))
    if problem:
        raise ModelSpecError(f"model {path}: {problem} (from its metadata)")
    model = GenreModel(spec, path, session, inputs[0].name, list(spec.outputs))
    _check_outputs(model)
    return model


def are_probabilities(values: np.ndarray) -> bool:
    """Finite and within 0-1 (give or take float32's rounding): what every output of a genre model must be."""
    return bool(np.isfinite(values).all() and (values >= -1e-4).all() and (values <= 1 + 1e-4).all())


def _check_outputs(model: GenreModel) -> None:
    """One window through the graph: a graph whose outputs are not probabilities (NaN, or outside 0-1) is refused
    here, by name, rather than turned into NaN in ``classify --json`` or the API's answers."""
    out = model.predict(np.zeros((1, model.spec.dsp.n_mels, model.spec.n_frames), np.float32))
    for name, values in ((GENRE_OUTPUT, out.genre), (MUSIC_OUTPUT, out.music), (TAGS_OUTPUT, out.tags),
                         (DIRECT_OUTPUT, out.direct), (ROOM_OUTPUT, out.room)):
        if values is not None and not are_probabilities(values):
            raise ModelSpecError(f"model {model.path}: its {name!r} output for a test window is not a probability "
                                 f"(NaN, infinite, or outside 0-1: {np.ravel(values)[:3].tolist()})")
