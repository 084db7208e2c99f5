"""What a genre model expects and promises, stored as JSON inside the ONNX file.

The trainer writes a :class:`ModelSpec` into the model's ``metadata_props`` under
:data:`METADATA_KEY`; the daemon reads it back and computes exactly the front end it names, so a model
trained on other features (another rate, FFT, hop or mel count) runs as trained. Labels, window length, input
normalisation, the music threshold and the style tags' names live here only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .config import DEFAULT_DSP, DSPConfig
from .dcblock import FINGERPRINT as DC_BLOCK
from .level import FINGERPRINT as LEVEL

METADATA_KEY = "genrecast.spec"
SPEC_FORMAT = 1
# The graph's input and outputs by name: the trainer exports them; the daemon reads the outputs by these names (and
# feeds the graph's one input, which it checks by shape).
INPUT_NAME = "logmel"
GENRE_OUTPUT = "probabilities"
MUSIC_OUTPUT = "music"
TAGS_OUTPUT = "tags"
DIRECT_OUTPUT = "direct_probabilities"
ROOM_OUTPUT = "room"

GTZAN_GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)


# JSON types of each stored field, checked on load: a spec is the contract, not a hint.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "version": str, "labels": list, "dsp": dict, "window_seconds": (int, float),
    "hop_seconds": (int, float), "input_norm": dict, "training": dict,
}
# Fields added after SPEC_FORMAT 1 shipped: a file written before them lacks the key and reads the default.
_OPTIONAL_FIELDS = ("music_threshold", "tags", "tag_origin", "tag_threshold", "direct_head", "room_detector",
                    "stages")
# The stages around the log-mel that this genrecast computes, in their order: the DC block before it, the level
# normalisation after it. A model names those its windows go through (``stages``); the trainer applies both.
STAGES = (DC_BLOCK, LEVEL)
# What a file written before ``stages`` was stored runs with, as it did then: both, as they were on 2026-12-07. Frozen:
# a later change to either stage's fingerprint refuses such a file rather than feed it another front end.
UNSTAMPED_STAGES = ("dc-onepole-10hz", "level-up-to-0.1-5s-0.003-40db")
TOP_TAGS = 5  # at most this many tags are announced per window or file, the likeliest first


def weigh_heads(room_head, direct_head, room):
    """What ``heard = auto`` reads from a model with a room detector for any source but a microphone: ``[n, labels]``
    probabilities of each genre head and the ``room`` output ``[n]`` -> their mixture per window, the room head as far
    as the window sounds heard through a room and the direct head for the rest (the trainer's figures and the daemon
    compute it here)."""
    return room[:, None] * room_head + (1.0 - room[:, None]) * direct_head


class ModelSpecError(ValueError):
    """A model whose metadata is missing, malformed, or does not match what the caller runs."""


@dataclass(frozen=True)
class ModelSpec:
    """The contract between a trained model and the code that feeds it.

    The ONNX graph takes log-mel windows ``[batch, n_mels, n_frames]`` as :class:`dsp.LogMelStream` produces them
    (for ``dsp``, whatever front end that names), through the ``stages`` it names: the DC block
    (:mod:`dsp.dcblock`) before them, a quiet stream's raised (:mod:`dsp.level`) after them; it applies
    ``input_norm`` itself; it outputs ``probabilities`` ``[batch, len(labels)]``. A model with a music head
    (``music_threshold`` set) also outputs ``music`` ``[batch]``, the probability that a window holds music;
    the daemon says ``no_music`` when its smoothed value falls below ``music_threshold``. A model with style
    tags (``tags`` non-empty) also outputs ``tags`` ``[batch, len(tags)]``, each tag's probability (independent
    sigmoids, not a distribution); ``tag_origin`` says where the names come from, and a tag is announced at
    ``tag_threshold`` or more (:meth:`announced_tags`). A model with a direct genre head (``direct_head``) also
    outputs ``direct_probabilities`` ``[batch, len(labels)]``: a genre head that never learned audio heard through
    a room, for audio that reaches the model as recorded (a file, a pipe, a stream); ``probabilities`` is then the
    head for a microphone in a room. Such a model with a room detector (``room_detector``) also outputs ``room``
    ``[batch]``, the probability that a window was heard through a room (a loudspeaker, a room, a microphone) rather
    than as recorded, which weighs the two heads under ``heard = auto`` for any source but a microphone.
    """

    name: str
    version: str
    labels: tuple[str, ...] = GTZAN_GENRES
    dsp: DSPConfig = DEFAULT_DSP
    window_seconds: float = 3.0
    hop_seconds: float = 1.0
    input_norm: dict = field(default_factory=dict)  # e.g. {"mean": [...], "std": [...]} as baked into the graph
    training: dict = field(default_factory=dict)  # data fingerprint, split, tracks used, caveats
    format: int = SPEC_FORMAT
    music_threshold: float | None = None  # None: no music head, every window counts as music
    tags: tuple[str, ...] = ()  # names of the ``tags`` output, in its order; empty: no tags output
    tag_origin: str | None = None  # where the tag names and their meaning come from
    tag_threshold: float | None = None  # a tag is announced at this probability or more
    direct_head: bool = False  # the graph also outputs ``direct_probabilities``
    room_detector: bool = False  # the graph also outputs ``room`` (only beside a direct head)
    stages: tuple[str, ...] = STAGES  # the stages around the log-mel its windows go through (:data:`STAGES`)

    def __post_init__(self) -> None:
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ModelSpecError(f"labels must be non-empty and unique, got {list(self.labels)}")
        if self.window_seconds <= 0 or self.hop_seconds <= 0:
            raise ModelSpecError("window_seconds and hop_seconds must be positive")
        if self.n_frames < 1:
            raise ModelSpecError(f"a {self.window_seconds}s window holds no full {self.dsp.n_fft}-sample frame")
        if self.music_threshold is not None and not 0 < self.music_threshold < 1:
            raise ModelSpecError(f"music_threshold must lie strictly between 0 and 1, got {self.music_threshold}")
        if len(set(self.tags)) != len(self.tags) or not all(isinstance(t, str) and t for t in self.tags):
            raise ModelSpecError("tags must be unique non-empty names")
        if self.tags and (self.tag_threshold is None or not 0 < self.tag_threshold < 1 or not self.tag_origin):
            raise ModelSpecError(f"a model with tags needs their origin and a tag_threshold strictly between 0 and 1, "
                                 f"got {self.tag_origin!r} and {self.tag_threshold}")
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise ModelSpecError(f"needs the front-end stage {unknown[0]!r}, which this genrecast does not compute (it "
                                 f"has {', '.join(STAGES)}): the model was trained by another version of genrecast")
        if list(self.stages) != [stage for stage in STAGES if stage in self.stages]:
            raise ModelSpecError(f"stages must be some of {', '.join(STAGES)}, in that order, each once; got "
                                 f"{', '.join(self.stages)}")
        if self.room_detector and not self.direct_head:
            raise ModelSpecError("a room detector weighs a direct genre head against the other: direct_head must be "
                                 "true with room_detector")

    @property
    def has_music_head(self) -> bool:
        return self.music_threshold is not None

    @property
    def has_tags(self) -> bool:
        return bool(self.tags)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The graph's outputs in the order the trainer's network returns them."""
        names = [GENRE_OUTPUT]
        if self.has_music_head:
            names.append(MUSIC_OUTPUT)
        if self.has_tags:
            names.append(TAGS_OUTPUT)
        if self.direct_head:
            names.append(DIRECT_OUTPUT)
        if self.room_detector:
            names.append(ROOM_OUTPUT)
        return tuple(names)

    def announced_tags(self, probabilities) -> dict[str, float]:
        """One window's (or a file's mean) tag probabilities -> the announced tags: at most :data:`TOP_TAGS` of
        those at ``tag_threshold`` or more, the likeliest first, each with its probability (5 decimals)."""
        if not self.tags:
            return {}
        ranked = sorted(zip(self.tags, map(float, probabilities), strict=True), key=lambda kv: -kv[1])
        return {name: round(p, 5) for name, p in ranked[:TOP_TAGS] if p >= self.tag_threshold}

    @property
    def model_id(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def n_frames(self) -> int:
        """Frames per classification window."""
        return self.dsp.frames_for_seconds(self.window_seconds)

    def to_json(self) -> str:
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["tags"] = list(self.tags)
        data["stages"] = list(self.stages)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ModelSpecError(f"malformed model spec: a JSON object expected, got {type(data).__name__}")
            if data.get("format") != SPEC_FORMAT:
                raise ModelSpecError(f"unsupported model spec format {data.get('format')!r} (expected {SPEC_FORMAT})")
            missing = sorted({f.name for f in fields(cls)} - set(data) - set(_OPTIONAL_FIELDS))
            if missing:
                raise ModelSpecError(f"malformed model spec: lacks {', '.join(missing)}")
            for key, kinds in _FIELD_TYPES.items():
                if isinstance(data[key], bool) or not isinstance(data[key], kinds):
                    raise ModelSpecError(f"malformed model spec: {key} has the wrong type ({data[key]!r:.60})")
            threshold = data.get("music_threshold")
            if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
                raise ModelSpecError(f"malformed model spec: music_threshold has the wrong type ({threshold!r:.60})")
            if not all(isinstance(label, str) for label in data["labels"]):
                raise ModelSpecError("malformed model spec: labels must be strings")
            tags, tag_threshold = data.get("tags", []), data.get("tag_threshold")
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ModelSpecError("malformed model spec: tags must be a list of strings")
            if tag_threshold is not None and (isinstance(tag_threshold, bool) or not isinstance(tag_threshold,
                                                                                                int | float)):
                raise ModelSpecError(f"malformed model spec: tag_threshold has the wrong type ({tag_threshold!r:.60})")
            for flag in ("direct_head", "room_detector"):
                if not isinstance(data.get(flag, False), bool):
                    raise ModelSpecError(f"malformed model spec: {flag} must be true or false")
            if not isinstance(data.get("tag_origin", ""), str | None):
                raise ModelSpecError("malformed model spec: tag_origin must be a string")
            stages = data.get("stages", UNSTAMPED_STAGES)
            if not isinstance(stages, list | tuple) or not all(isinstance(x, str) for x in stages):
                raise ModelSpecError("malformed model spec: stages must be a list of strings")
            data["labels"], data["tags"], data["stages"] = tuple(data["labels"]), tuple(tags), tuple(stages)
            data["dsp"] = DSPConfig.from_dict(data["dsp"])
            return cls(**data)
        except ModelSpecError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelSpecError(f"malformed model spec: {exc}") from None
