"""What a genre model expects and promises, stored as JSON inside the ONNX file.

The trainer writes a :class:`ModelSpec` into the model's ``metadata_props`` under
:data:`METADATA_KEY`; the daemon reads it back and refuses the model when its DSP config differs
from the one the daemon would run. Labels, window length and input normalisation live here only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .config import DEFAULT_DSP, DSPConfig

METADATA_KEY = "genrecast.spec"
SPEC_FORMAT = 1

GTZAN_GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)


# JSON types of each stored field, checked on load: a spec is the contract, not a hint.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "version": str, "labels": list, "dsp": dict, "window_seconds": (int, float),
    "hop_seconds": (int, float), "input_norm": dict, "training": dict,
}


class ModelSpecError(ValueError):
    """A model whose metadata is missing, malformed, or does not match what the caller runs."""


@dataclass(frozen=True)
class ModelSpec:
    """The contract between a trained model and the code that feeds it.

    The ONNX graph takes raw log-mel windows ``[batch, n_mels, n_frames]`` exactly as
    :class:`dsp.LogMelStream` produces them and applies ``input_norm`` itself; it outputs
    ``[batch, len(labels)]`` probabilities.
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

    def __post_init__(self) -> None:
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ModelSpecError(f"labels must be non-empty and unique, got {list(self.labels)}")
        if self.window_seconds <= 0 or self.hop_seconds <= 0:
            raise ModelSpecError("window_seconds and hop_seconds must be positive")
        if self.n_frames < 1:
            raise ModelSpecError(f"a {self.window_seconds}s window holds no full {self.dsp.n_fft}-sample frame")

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
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ModelSpecError(f"malformed model spec: a JSON object expected, got {type(data).__name__}")
            if data.get("format") != SPEC_FORMAT:
                raise ModelSpecError(f"unsupported model spec format {data.get('format')!r} (expected {SPEC_FORMAT})")
            missing = sorted({f.name for f in fields(cls)} - set(data))
            if missing:
                raise ModelSpecError(f"malformed model spec: lacks {', '.join(missing)}")
            for key, kinds in _FIELD_TYPES.items():
                if isinstance(data[key], bool) or not isinstance(data[key], kinds):
                    raise ModelSpecError(f"malformed model spec: {key} has the wrong type ({data[key]!r:.60})")
            if not all(isinstance(label, str) for label in data["labels"]):
                raise ModelSpecError("malformed model spec: labels must be strings")
            data["labels"] = tuple(data["labels"])
            data["dsp"] = DSPConfig.from_dict(data["dsp"])
            return cls(**data)
        except ModelSpecError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelSpecError(f"malformed model spec: {exc}") from None

    def require_dsp(self, expected: DSPConfig) -> None:
        """Refuse a model trained on features other than the ones ``expected`` computes."""
        if self.dsp == expected:
            return
        ours, theirs = expected.to_dict(), self.dsp.to_dict()
        diffs = [f"{k}: model {theirs[k]!r} vs {ours[k]!r}" for k in ours if ours[k] != theirs[k]]
        raise ModelSpecError(f"model {self.model_id} was trained on other features ({'; '.join(diffs)})")
