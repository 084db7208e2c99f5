"""Samples at the source's rate in, the model's classification windows out, each with its loudness.

Shared by ``run`` (streaming) and ``classify`` (whole files) so both cut windows the same way. An input that
ends before its first window is complete, but lasted at least ``dsp.windows.MIN_SECONDS``, is repeated to one
window (:func:`dsp.windows.pad_short_clip`, as the trainer does), so a 2-s clip still gets an answer.

A live stream also wants an answer before its first window is complete: with ``provisional``, the audio so far is
repeated to one window by the same rule at each hop before the first window's end, from ``MIN_SECONDS`` on (at 1.02
and 2.02 s for the default model, whose first window ends at 3.01 s). These windows are marked ``provisional``; they
come at the same points whatever the sizes of the pushes, like the full windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from genrecast.dsp import LogMelStream, ModelSpec, StreamResampler
from genrecast.dsp.dcblock import FINGERPRINT as DC_BLOCK
from genrecast.dsp.dcblock import DCBlockStream
from genrecast.dsp.level import FINGERPRINT as LEVEL
from genrecast.dsp.level import LevelStream, normalise, shift_for, window_rms
from genrecast.dsp.windows import (
    MIN_SECONDS,
    WindowStream,
    frame_seconds,
    hop_frames,
    hop_too_short,
    pad_short_clip,
    window_samples,
)

from genrecast.errors import UserError


@dataclass(frozen=True)
class Window:
    start_s: float  # stream offset of the first sample, at the model's rate
    end_s: float  # stream offset just past the last sample (a padded short input's: the input's end)
    logmel: np.ndarray  # [n_mels, n_frames] float32, through the model's stages (the graph does the rest)
    rms: float  # root mean square of the window's samples about their mean (a DC offset is no sound), full scale = 1
    provisional: bool = False  # the audio so far repeated to one window, before the first full window


class Pipeline:
    """DC block -> resample -> incremental log-mel -> overlapping windows, a quiet stream's raised (:mod:`dsp.level`),
    plus each window's RMS for the silence gate; the DC block and the raising where the model's ``stages`` name
    them (every model written before they were named does)."""

    def __init__(self, spec: ModelSpec, hop_seconds: float, input_rate: int, skip_seconds: float = 0.0,
                 provisional: bool = False, offset_seconds: float = 0.0, level: LevelStream | None = None) -> None:
        """``skip_seconds``: audio discarded at the start (offsets still count from the source's start), so
        streams opened together do not all complete their windows in the same instant. ``provisional``: windows
        of the audio so far before the first full one (see the module's docstring). ``offset_seconds``: the
        source's audio before the first sample pushed (a pipeline started afresh after a gap in the audio).
        ``level``: the stream's gain so far, carried over a gap that the stream stayed online through (a fresh one
        after a stall)."""
        cfg = spec.dsp
        self.cfg, self.n_frames = cfg, spec.n_frames
        frame_s = frame_seconds(cfg)
        if hop_too_short(cfg, hop_seconds):
            raise UserError(
                f"--hop {hop_seconds:g} s is shorter than one frame of this model ({frame_s * 1000:.1f} ms)")
        self.hop_seconds = hop_frames(cfg, hop_seconds) * frame_s  # what the hop really is, after rounding
        self._resampler = StreamResampler(input_rate, cfg.sample_rate)
        # before resampling: an offset from the start never reaches it
        self._dc = DCBlockStream(input_rate) if DC_BLOCK in spec.stages else None
        self._raise = LEVEL in spec.stages  # a quiet stream's windows raised (the model names the stages it needs)
        self._logmel = LogMelStream(cfg)
        self._windows = WindowStream(spec.n_frames, hop_frames(cfg, hop_seconds))
        self.level = level or LevelStream(self.hop_seconds)
        self._span = window_samples(cfg, spec.n_frames)  # samples one window covers
        # Where provisional windows end (samples at the model's rate): whole hops before the first window's end.
        hop = hop_frames(cfg, hop_seconds) * cfg.hop_length
        self._provisional = sorted(end for end in range(self._span - hop, 0, -hop)
                                   if end >= MIN_SECONDS * cfg.sample_rate) if provisional else []
        # The last ``span`` samples: every window still to come ends after them, so none starts earlier.
        # Until the first window, that is the whole input, which a short input's padding needs.
        self._recent = np.zeros(0, np.float32)
        self._recent_base = 0  # stream index of self._recent[0]
        self.windows_out = 0  # full windows (not provisional ones)
        self._in_rate = input_rate
        self._fed = 0  # samples at the model's rate given to the log-mel stream so far
        self._skip = round(skip_seconds * input_rate)  # input samples still to discard
        self._offset = offset_seconds + self._skip / input_rate  # seconds before our first sample

    def samples_to_next_window(self) -> int:
        """Input samples still missing before the next window is complete (the resampler's delay aside).

        Pushing audio only once this much is waiting costs one push per window instead of one per chunk.
        """
        cfg = self.cfg
        last_frame = self._windows.next_start + self._windows.win_frames - 1
        need = (self._provisional[0] if self._provisional else last_frame * cfg.hop_length + cfg.n_fft) - self._fed
        return self._skip + max(0, -(-need * self._in_rate // cfg.sample_rate))

    @property
    def seconds_in(self) -> float:
        """Input so far, in seconds."""
        return (self._recent_base + self._recent.shape[0]) / self.cfg.sample_rate

    def push(self, samples: np.ndarray, last: bool = False) -> list[Window]:
        if self._skip:
            drop = min(self._skip, samples.shape[0])
            samples, self._skip = samples[drop:], self._skip - drop
        x = self._resampler.push(self._dc.push(samples) if self._dc else samples, last=last)
        self._fed += x.shape[0]
        self._recent = np.concatenate([self._recent, x])
        out = []
        while self._provisional and self._provisional[0] <= self._fed:  # before any trimming: _recent is all input
            out.append(self._repeated(self._recent[: self._provisional.pop(0)], provisional=True))
        rate = self.cfg.sample_rate
        for first, window in self._windows.push(self._logmel.push(x)):
            start = first * self.cfg.hop_length
            seg = self._recent[start - self._recent_base : start - self._recent_base + self._span]
            rms = window_rms(seg)  # about the mean: a USB microphone's offset kept an idle room from being silence
            out.append(Window(self._offset + start / rate, self._offset + (start + self._span) / rate,
                              normalise(window, self._shift(rms)), rms))
        full = len(out) - sum(w.provisional for w in out)
        if last and not full and self.windows_out == 0 and self._recent.shape[0] >= MIN_SECONDS * rate:
            out.append(self._repeated(self._recent, provisional=False))  # the input, shorter than a window
            full = 1
        drop = self._recent.shape[0] - self._span
        if drop > 0:
            self._recent = self._recent[drop:]
            self._recent_base += drop
        self.windows_out += full
        return out

    def _shift(self, rms: float, provisional: bool = False) -> float:
        """The level normalisation's shift for the next window of the stream (none for a model without it); a
        provisional window is heard at its own level and leaves the stream's (the trainer has no such windows)."""
        if not self._raise:
            return 0.0
        return shift_for(rms) if provisional else self.level.push(rms)

    def _repeated(self, samples: np.ndarray, provisional: bool) -> Window:
        """The window of ``samples`` (the input from its start, at least the minimum, shorter than a window)
        repeated to one window."""
        padded = pad_short_clip(samples, self.cfg, self.n_frames)
        frames = LogMelStream(self.cfg).push(padded)
        window = np.ascontiguousarray(frames[: self.n_frames].T)
        rms = window_rms(padded)
        return Window(self._offset, self._offset + samples.shape[0] / self.cfg.sample_rate,
                      normalise(window, self._shift(rms, provisional)), rms, provisional)
