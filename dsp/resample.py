"""Sample-rate conversion to the model's rate (soxr, high quality), whole-signal and streaming."""

from __future__ import annotations

import numpy as np
import soxr


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Whole-signal conversion; a no-op copy-free pass when the rates already match."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate_in == rate_out:
        return samples
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    return soxr.resample(samples, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


class StreamResampler:
    """Chunked conversion with filter state carried across chunks (for microphones and pipes)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = None if rate_in == rate_out else soxr.ResampleStream(
            rate_in, rate_out, 1, dtype="float32", quality="HQ"
        )

    def push(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=last)
