"""Classify an uploaded audio file with the daemon's model and windowing, for the page's "check a file" panel.

It cuts windows with the daemon's :class:`daemon.pipeline.Pipeline` and runs the same model, so a file shows
what the daemon would have said while playing it. Unlike ``genrecast classify``, it keeps every window's
probabilities, for the timeline.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .jobs import BoundedPool

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from genrecast.daemon.classify_cmd import FileWindows
    from genrecast.daemon.decision import State
    from genrecast.daemon.model import GenreModel

# The page's "check a file" limit, its own (the API has [api] max_mb): the browser sends the file base64-encoded
# (4/3) inside a JSON request that the server parses in memory, so this bounds what each page upload costs.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Bytes alone do not bound the work: 50 MiB of 8-bit 1 kHz audio is 14 hours. The header's length is checked
# before anything is decoded, so no upload costs more than this much audio's worth of CPU.
MAX_UPLOAD_SECONDS = 30 * 60


@dataclass(frozen=True)
class FileResult:
    name: str
    model_id: str
    seconds: float
    labels: tuple[str, ...]
    starts: tuple[float, ...]  # each window's start offset in the file, in seconds
    probabilities: tuple[tuple[float, ...], ...]  # per window, aligned with labels
    mean: tuple[float, ...]  # over windows: the track-level probabilities, as `genrecast classify` gives them
    kind: str  # the track-level answer, as `genrecast classify` gives it: "genre" | "no_music" | "silence"
    genre: str | None  # a label exactly when kind is "genre"
    confidence: float  # of that answer
    music: float | None  # mean music probability; None for a model without a music head
    ends: tuple[float, ...]  # each window's end (a file shorter than a window: the file's end)
    states: tuple[str, ...] = ()  # per window, the stream state the daemon would have said (daemon.decision.Decider)
    state_names: tuple[str, ...] = ()  # the same states by name: the genre where there is one, else the kind
    window_kinds: tuple[str, ...] = ()  # per window, its own answer's kind: "genre" | "no_music" | "silence"
    window_tags: tuple[tuple[str, ...], ...] = ()  # per window, its announced tags, likeliest first (none: no tags)


class OfflineClassifier:
    """Loads the model on first use (watching streams needs none) and classifies on a bounded worker pool.

    The page's "check a file" and the HTTP API share one pool, so together they never take more than its
    workers' share of the CPU; when it is full they get :class:`dashboard.jobs.Busy`.
    """

    def __init__(self, model_path: str | None = None, hop_seconds: float = 1.0, pool: BoundedPool | None = None):
        self.model_path = model_path
        self.hop_seconds = hop_seconds
        self.pool = pool or BoundedPool()
        self._model = None
        self._load_failed = False
        self._lock = threading.Lock()

    def windows(self, audio: bytes | str, name: str, heard: str = "auto") -> tuple[GenreModel, FileWindows]:
        """Decode ``audio`` (bytes, or a file's path; any format the reader knows) and run every window through the
        model (``heard``: how the audio was made, :data:`daemon.model.HEARD`: which genre head of a model with two,
        or both weighed by its room detector).

        Raises :class:`dashboard.jobs.Busy`, or :class:`dsp.AudioError` / :class:`dsp.ModelSpecError` with a
        one-line message that names ``name``, never the temporary file.
        """
        return self.pool.run(self._windows, audio, name, heard)

    def classify(self, audio: bytes | str, name: str) -> FileResult:
        """The page's view of an upload (bytes, or a file's path): the track-level answer and every window, for the
        timeline."""
        from genrecast.dsp import AudioError

        size = len(audio) if isinstance(audio, bytes) else os.path.getsize(audio)
        if size > MAX_UPLOAD_BYTES:
            raise AudioError(f"{name}: {math.ceil(size * 10 / 2**20) / 10:.1f} MiB is over the page's "
                             f"{MAX_UPLOAD_BYTES / 2**20:g} MiB limit")  # up to a tenth: never "20 MiB is over 20"
        model, result = self.windows(audio, name)
        states = stream_states(model.spec, result, self.hop_seconds)
        probs = result.probabilities
        track = result.track(model.spec)
        return FileResult(
            name=name,
            model_id=model.model_id,
            seconds=result.seconds,
            labels=tuple(model.spec.labels),
            starts=tuple(result.starts),
            ends=tuple(result.ends),
            probabilities=tuple(tuple(float(p) for p in row) for row in probs),
            mean=tuple(float(p) for p in track.probabilities),
            kind=track.kind,
            genre=track.genre,
            confidence=track.confidence,
            music=track.music if model.spec.has_music_head else None,
            states=tuple(state.kind for state in states),
            state_names=tuple(state.genre or state.kind for state in states),
            window_kinds=tuple(result.window_kinds(model.spec)),
            window_tags=tuple(tuple(t) for t in result.window_tags(model.spec) or [() for _ in result.starts]),
        )

    def _load(self) -> GenreModel:
        from genrecast.daemon.model import load_model
        from genrecast.dsp import ModelSpecError

        with self._lock:
            if self._model is None:
                try:
                    self._model = load_model(self.model_path)
                except ModelSpecError as exc:  # every upload will get this 503: say why once, where admins look
                    if not self._load_failed:
                        log.error("cannot check files: %s", exc)
                    self._load_failed = True
                    raise
            return self._model

    def _windows(self, audio: bytes | str, name: str, heard: str = "auto") -> tuple[GenreModel, FileWindows]:
        from genrecast.daemon.classify_cmd import classify_windows
        from genrecast.dsp import AudioError, AudioFile

        if isinstance(audio, bytes):
            with tempfile.NamedTemporaryFile(prefix="genrecast-upload-") as f:
                f.write(audio)
                f.flush()
                return self._windows(f.name, name, heard)
        model = self._load()
        with AudioFile(audio, name=name) as decoded:  # errors name the user's file, not our temporary one
            if decoded.seconds > MAX_UPLOAD_SECONDS:
                raise AudioError(f"{name}: {decoded.seconds / 60:.0f} min of audio is over the "
                                 f"{MAX_UPLOAD_SECONDS // 60} min limit")
            return model, classify_windows(model, decoded, self.hop_seconds, name, heard=heard)


def stream_states(spec, result: FileWindows, hop_seconds: float) -> tuple[State, ...]:
    """The state after each window, as a daemon with the default decision settings would have said it while the
    file played: the page shades the periods without a genre on the file's timeline as on a stream's."""
    from genrecast.daemon.decision import Decider, DecisionConfig

    decider = Decider.for_model(spec, DecisionConfig(), hop_seconds)
    return tuple(decider.update(p, m, r) for p, m, r in zip(result.probabilities, result.music, result.rms,
                                                             strict=True))
