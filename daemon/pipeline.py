"""Samples at the source's rate in, the model's classification windows out, each with its loudness.

Shared by ``run`` (streaming) and ``classify`` (whole files) so both cut windows the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp import LogMelStream, ModelSpec, StreamResampler
from dsp.windows import WindowStream, hop_frames


@dataclass(frozen=True)
class Window:
    start_s: float  # stream offset of the first sample, at the model's rate
    end_s: float  # stream offset just past the last sample
    logmel: np.ndarray  # [n_mels, n_frames] float32, raw (the graph normalises)
    rms: float  # root mean square of the window's samples, full scale = 1


class Pipeline:
    """Resample -> incremental log-mel -> overlapping windows, plus each window's RMS for the silence gate."""

    def __init__(self, spec: ModelSpec, hop_seconds: float, input_rate: int) -> None:
        cfg = spec.dsp
        self.cfg = cfg
        self._resampler = StreamResampler(input_rate, cfg.sample_rate)
        self._logmel = LogMelStream(cfg)
        self._windows = WindowStream(spec.n_frames, hop_frames(cfg, hop_seconds))
        self._span = (spec.n_frames - 1) * cfg.hop_length + cfg.n_fft  # samples one window covers
        # The last ``span`` samples: every window still to come ends after them, so none starts earlier.
        self._recent = np.zeros(0, np.float32)
        self._recent_base = 0  # stream index of self._recent[0]

    def push(self, samples: np.ndarray, last: bool = False) -> list[Window]:
        x = self._resampler.push(samples, last=last)
        self._recent = np.concatenate([self._recent, x])
        out = []
        for first, window in self._windows.push(self._logmel.push(x)):
            start = first * self.cfg.hop_length
            seg = self._recent[start - self._recent_base : start - self._recent_base + self._span]
            rms = float(np.sqrt(np.mean(np.square(seg, dtype=np.float64))))
            rate = self.cfg.sample_rate
            out.append(Window(start / rate, (start + self._span) / rate, window, rms))
        drop = self._recent.shape[0] - self._span
        if drop > 0:
            self._recent = self._recent[drop:]
            self._recent_base += drop
        return out
