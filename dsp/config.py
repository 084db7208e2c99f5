"""The one place for every frame-related number.

The model's ONNX metadata carries a serialised :class:`DSPConfig`; the daemon computes exactly that front
end for the model, so training and inference can never drift apart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class DSPConfig:
    """Log-mel front end parameters (librosa's defaults for Slaney mel scale and norm).

    Parameters
    ----------
    sample_rate : rate every source is converted to before framing, in Hz.
    n_fft : FFT size and frame length in samples (a power of two).
    hop_length : samples between successive frames.
    n_mels : number of mel bands.
    fmin, fmax : band edges of the mel filterbank in Hz; ``fmax=0`` means Nyquist.
    window : analysis window; only the periodic Hann window (librosa's default) is implemented.
    mel_scale, mel_norm : only ``"slaney"`` (librosa's defaults: ``htk=False``, ``norm="slaney"``).
    power : exponent of the magnitude spectrum (2 = power spectrum).
    log_floor : power values are clipped to this before the natural log, so silence stays finite.
    """

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 0.0
    window: str = "hann"
    mel_scale: str = "slaney"
    mel_norm: str = "slaney"
    power: float = 2.0
    log_floor: float = 1e-10

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, got {self.sample_rate}")
        if self.n_fft < 16 or self.n_fft & (self.n_fft - 1):
            problems.append(f"n_fft must be a power of two >= 16, got {self.n_fft}")
        if not 0 < self.hop_length <= self.n_fft:
            problems.append(f"hop_length must be in 1..n_fft, got {self.hop_length}")
        if self.n_mels <= 0:
            problems.append(f"n_mels must be positive, got {self.n_mels}")
        if not 0 <= self.fmin < self.fmax_hz <= self.sample_rate / 2:
            problems.append(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin} fmax={self.fmax}")
        if self.window != "hann":
            problems.append(f"window must be 'hann', got {self.window!r}")
        if self.mel_scale != "slaney" or self.mel_norm != "slaney":
            problems.append("mel_scale and mel_norm must be 'slaney'")
        if self.power <= 0:
            problems.append(f"power must be positive, got {self.power}")
        if self.log_floor <= 0:
            problems.append(f"log_floor must be positive, got {self.log_floor}")
        if problems:
            raise ValueError("invalid DSP config: " + "; ".join(problems))

    @property
    def fmax_hz(self) -> float:
        return float(self.fmax) if self.fmax > 0 else self.sample_rate / 2.0

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def frames_in(self, n_samples: int) -> int:
        """Frames a signal of ``n_samples`` yields without padding (librosa's ``center=False``)."""
        return 0 if n_samples < self.n_fft else 1 + (n_samples - self.n_fft) // self.hop_length

    def frames_for_seconds(self, seconds: float) -> int:
        return self.frames_in(round(seconds * self.sample_rate))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> DSPConfig:
        """Exactly the fields of this class with their types: a model's metadata must state every parameter."""
        if not isinstance(data, dict):
            raise ValueError(f"a DSP config must be a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown, missing = sorted(set(data) - set(known)), sorted(set(known) - set(data))
        if unknown:
            raise ValueError(f"unknown DSP config keys: {', '.join(unknown)}")
        if missing:
            raise ValueError(f"DSP config lacks: {', '.join(missing)}")
        for name, f in known.items():
            want = type(f.default)
            ok = (int, float) if want is float else want
            if isinstance(data[name], bool) or not isinstance(data[name], ok):
                raise ValueError(f"DSP config {name} must be {want.__name__}, got {data[name]!r}")
        return cls(**data)

    def fingerprint(self) -> str:
        """Short stable hash: names feature caches and is checked against model metadata."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


DEFAULT_DSP = DSPConfig()
