"""``genrecast classify FILE...``: offline, as fast as possible, one track-level answer per file.

The track's answer follows :func:`daemon.decision.track_state` over its windows (cut exactly as the daemon cuts
them): ``genre`` (the top of the mean probabilities), ``no_music`` (a model with a music head, mean music
probability below its threshold) or ``silence`` (every window silent). A file between 1 s and one window long is
repeated to one window; a shorter one, or a bad file, gets one line on stderr and the others are still
classified; the exit status is 2 if any failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FileWindows:
    seconds: float
    starts: list[float]  # each window's start offset, seconds
    ends: list[float]  # each window's end: start + its length, or the file's end for a file shorter than a window
    probabilities: np.ndarray  # [n_windows, n_labels]
    music: np.ndarray  # [n_windows] music probability (ones for a model without a music head)
    rms: np.ndarray  # [n_windows]
    tags: np.ndarray | None = None  # [n_windows, n_tags] tag probabilities; None for a model without tags
    genre_head: str | None = None  # "room" | "direct" | "auto": which of a model's two genre heads scored them, or
    # both weighed by its room detector; None for a model with one
    room: np.ndarray | None = None  # [n_windows] the room detector's probabilities; None for a model without one

    def track(self, spec):
        """The file's answer, by the one track-level rule."""
        from .decision import track_state

        return track_state(self.probabilities, self.music, self.rms, spec.labels, spec.music_threshold)

    def window_kinds(self, spec) -> list[str]:
        """Each window alone, by the track rule: ``genre``, ``no_music`` or ``silence`` (the page's player, the API's
        windows and the tags a window announces all read it)."""
        from .decision import track_state

        return [track_state(self.probabilities[i:i + 1], self.music[i:i + 1], self.rms[i:i + 1], spec.labels,
                            spec.music_threshold).kind for i in range(len(self.starts))]

    def window_tags(self, spec) -> list[dict[str, float]] | None:
        """Each window's announced tags (none for a silent window, or one whose music probability is below the
        model's threshold); None for a model without tags."""
        from .decision import announces_tags

        if self.tags is None:
            return None
        return [spec.announced_tags(row) if announces_tags(kind, music, spec.music_threshold) else {}
                for row, kind, music in zip(self.tags, self.window_kinds(spec), self.music, strict=True)]


@dataclass(frozen=True)
class TrackResult:
    file: str
    kind: str  # "genre" | "no_music" | "silence"
    genre: str | None  # null unless kind is "genre"
    probability: float  # of the answer: the genre's mean probability, 1 - music for no_music, 1 for silence
    probabilities: dict[str, float]
    music: float | None  # mean music probability; null for a model without a music head
    windows: int
    seconds: float
    tags: dict[str, float] | None = None  # announced style tags, likeliest first; null for a model without tags
    genre_head: str | None = None  # "room" | "direct" | "auto" for a model with two genre heads; null for one
    room: float | None = None  # mean probability it was heard through a room, by a room detector; null without one


def register(sub) -> None:
    from .model import HEARD

    p = sub.add_parser("classify", help="classify audio files offline (track-level genre)",
                       description="Classify each audio file (WAV, FLAC, OGG, AIFF, MP3, ...) with the model, cut into "
                                   "windows exactly as the daemon cuts a stream, and print one line per file: "
                                   "FILE<TAB>ANSWER<TAB>PROBABILITY, where ANSWER is a genre, no_music or silence "
                                   "(--json: one JSON object per file). Exit 2 if any file failed; the others still "
                                   "print.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", help="ONNX model (default: the bundled genrecast-gtzan.onnx)")
    p.add_argument("--hop", type=float, default=1.0, help="seconds between windows (default 1)")
    p.add_argument("--threads", type=int, help="model calls at once (default: every core this process may use)")
    p.add_argument("--heard", choices=HEARD, default="auto",
                   help="how the files were made, for a model with two genre heads: direct: the recordings "
                        "themselves; room: taped by a microphone in a room; auto (default): judged from the sound by "
                        "a model with a room detector, window by window (else direct)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per file, one per line (for a file that failed: file and error)")
    p.set_defaults(func=handler)


def classify_windows(model, audio, hop_seconds: float, name: str, inference=None, heard: str = "auto") -> FileWindows:
    """Every window's probabilities for an opened :class:`dsp.AudioFile`, cut exactly as the daemon cuts a stream.
    ``heard`` (:data:`daemon.model.HEARD`): ``direct``, the file is the recording itself, so a model's direct genre
    head (if it has one) is read; ``room``, it was taped through a room, and the genre head that learned rooms is;
    ``auto``, a model with a room detector weighs the two window by window (one without reads the direct head).

    The file is decoded block by block and windows are scored in batches, so memory does not grow with its length
    (beyond one row of probabilities per window). With an :class:`~daemon.inference.Inference` of several threads,
    batches are scored on them while this thread decodes and cuts the next ones.
    """
    from genrecast.dsp import AudioError, ModelSpecError
    from genrecast.dsp.windows import MIN_SECONDS

    from .config import MODEL_BATCH
    from .inference import Inference
    from .model import are_probabilities, genre_head
    from .pipeline import Pipeline

    pipeline = Pipeline(model.spec, hop_seconds, audio.sample_rate)
    inference = inference or Inference(model, 1)
    head = genre_head(model.spec, heard)

    def batches():
        pending: list = []
        for block in itertools.chain(audio.blocks(), [None]):  # None: the end, which a short file's window needs
            pending += pipeline.push(np.zeros(0, np.float32), last=True) if block is None else pipeline.push(block)
            while len(pending) >= MODEL_BATCH or (block is None and pending):
                part, pending = pending[:MODEL_BATCH], pending[MODEL_BATCH:]
                yield np.stack([w.logmel for w in part]), [(w.start_s, w.end_s, w.rms) for w in part]

    genre: list[np.ndarray] = []
    music: list[np.ndarray] = []
    tags: list[np.ndarray] = []
    room: list[np.ndarray] = []
    meta: list[tuple[float, float, float]] = []
    for out, part in inference.ordered(batches()):
        genre.append(out.genre_for(head))
        music.append(out.music)
        if out.tags is not None:
            tags.append(out.tags)
        if out.room is not None:
            room.append(out.room)
        meta += part
    if not meta:
        raise AudioError(f"{name}: {audio.seconds:.2f} s is shorter than the {MIN_SECONDS:g} s minimum")
    if not all(are_probabilities(x) for x in genre + music + tags + room):  # else NaN reaches the JSON and the API
        raise ModelSpecError(f"model {model.path}: gave a probability that is NaN or outside 0-1 for {name}")
    return FileWindows(audio.seconds, [s for s, _, _ in meta], [e for _, e, _ in meta], np.concatenate(genre),
                       np.concatenate(music), np.array([r for _, _, r in meta]), np.concatenate(tags) if tags else None,
                       head, np.concatenate(room) if room else None)


def track_result(model, name: str, result: FileWindows) -> TrackResult:
    """The track-level answer from every window's: what ``classify`` prints and the HTTP API returns."""
    spec = model.spec
    track = result.track(spec)
    return TrackResult(name, track.kind, track.genre, round(track.confidence, 5),
                       {k: round(float(v), 5) for k, v in zip(spec.labels, track.probabilities, strict=True)},
                       round(track.music, 5) if spec.has_music_head else None,
                       len(result.starts), round(result.seconds, 3),
                       track_tags(spec, result.tags, track) if spec.has_tags else None, result.genre_head,
                       None if result.room is None else round(float(result.room.mean()), 5))


def track_tags(spec, window_tags: np.ndarray, track) -> dict[str, float]:
    """A file's announced tags: those of the mean over its windows, for a file whose answer is a genre."""
    from .decision import announces_tags

    return spec.announced_tags(window_tags.mean(axis=0)) if announces_tags(track.kind, track.music,
                                                                           spec.music_threshold) else {}


def track_json(result: TrackResult, model_id: str) -> dict:
    """One ``classify --json`` line: every field of :class:`TrackResult` plus the model id."""
    from dataclasses import asdict

    return {**asdict(result), "model_id": model_id}


def classify_file(model, path: str, hop_seconds: float, inference=None, heard: str = "auto") -> TrackResult:
    from genrecast.dsp import AudioFile

    with AudioFile(path) as audio:
        return track_result(model, path, classify_windows(model, audio, hop_seconds, path, inference, heard))


def handler(args: argparse.Namespace) -> int:
    from genrecast.dsp import AudioError

    from genrecast.errors import UserError, one_line

    from .config import usable_cores, valid_hop, valid_threads
    from .inference import Inference
    from .model import load_model

    if not valid_hop(args.hop):
        raise UserError(f"--hop must be more than 0 and at most 60 seconds, got {args.hop}")
    threads = usable_cores() if args.threads is None else args.threads
    if not valid_threads(threads):
        raise UserError(f"--threads must be 1 to 64, got {threads}")
    model = load_model(args.model)
    inference = Inference(model, threads)
    failed = 0
    try:
        for path in args.files:
            try:
                result = classify_file(model, path, args.hop, inference, args.heard)
            except AudioError as exc:
                print(f"genrecast classify: error: {one_line(exc)}", file=sys.stderr)
                if args.json:  # one object per file given, so a reader can pair every input with its answer
                    print(json.dumps({"file": path, "error": str(exc)}), flush=True)
                failed += 1
                continue
            if args.json:
                print(json.dumps(track_json(result, model.model_id)), flush=True)
            else:
                print(f"{one_line(path)}\t{result.genre or result.kind}\t{result.probability:.3f}", flush=True)
    finally:
        inference.close()
    return 2 if failed else 0
