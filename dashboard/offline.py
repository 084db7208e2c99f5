"""Classify an uploaded audio file with the daemon's model and windowing, for the page's "check a file" panel.

It cuts windows with the daemon's :class:`daemon.pipeline.Pipeline` and runs the same model, so a file shows
what the daemon would have said while playing it. Unlike ``genrecast classify``, it keeps every window's
probabilities, for the timeline.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # a few minutes of WAV; base64 in the browser makes it 4/3 larger


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


class OfflineClassifier:
    """Loads the model on first use (watching streams needs none) and runs one file at a time (CPU-bound)."""

    def __init__(self, model_path: str | None = None, hop_seconds: float = 1.0) -> None:
        self.model_path = model_path
        self.hop_seconds = hop_seconds
        self._model = None
        self._lock = threading.Lock()

    def classify(self, data: bytes, name: str) -> FileResult:
        """Raise :class:`dsp.AudioError` or :class:`dsp.ModelSpecError` with a message for the page."""
        from daemon.classify_cmd import classify_windows
        from daemon.model import load_model
        from dsp import AudioError, read_audio

        if len(data) > MAX_UPLOAD_BYTES:
            raise AudioError(f"{name}: {len(data) // 2**20} MiB is over the {MAX_UPLOAD_BYTES // 2**20} MiB limit")
        with self._lock:
            if self._model is None:
                self._model = load_model(self.model_path)
            model = self._model
            with tempfile.NamedTemporaryFile(prefix="genrecast-upload-") as f:
                f.write(data)
                f.flush()
                try:
                    audio = read_audio(f.name)
                except AudioError as exc:  # its message names the temporary file, not the user's
                    raise AudioError(f"{name}: not audio this reader understands ({exc})") from None
            result = classify_windows(model, audio, self.hop_seconds, name)
        probs = result.probabilities
        track = result.track(model.spec)
        return FileResult(
            name=name,
            model_id=model.model_id,
            seconds=result.seconds,
            labels=tuple(model.spec.labels),
            starts=tuple(result.starts),
            probabilities=tuple(tuple(float(p) for p in row) for row in probs),
            mean=tuple(float(p) for p in track.probabilities),
            kind=track.kind,
            genre=track.genre,
            confidence=track.confidence,
            music=track.music if model.spec.has_music_head else None,
        )
