"""Whether a live pipe's audio comes at the pace its declared rate and channels say, as a radio's decoder delivers.

Raw PCM on stdin carries no header, so a stream declared at the wrong ``--rate`` or ``--channels`` is read without
an error: 44.1 kHz read as 22.05, or stereo as mono, is classified an octave down at twice real time, and an hour of
wrong genres follows in silence. A live pipe delivers real time, so over a couple of minutes its samples per second
say whether the declaration is right. Bursts (network jitter) even out over that span; a stall starts it afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

SPAN_SECONDS = 120.0  # measured over this long: a 20-s burst moves the pace by 0.17
TOLERANCE = (0.75, 1.33)  # paces outside this are named (2.0: stereo read as mono, or 44.1 kHz as 22.05)


@dataclass
class PaceCheck:
    """Fed each tick with the samples received so far; says once what is wrong, if anything."""

    sample_rate: int
    started: tuple[float, int] | None = None  # (when, samples received then)
    done: bool = False  # measured once: a pipe's pace does not change

    def restart(self) -> None:
        """A stall: the silence is not the pipe's pace."""
        self.started = None

    def check(self, now: float, received: int) -> float | None:
        """The pace (audio seconds per second) once a span has passed and it is off; else None."""
        if self.done or not received:
            return None
        if self.started is None:  # from the first audio on, leaving out what came with it (a decoder's prebuffer)
            self.started = (now, received)
            return None
        since, first = self.started
        if now - since < SPAN_SECONDS:
            return None
        pace = (received - first) / self.sample_rate / (now - since)
        self.done = True
        return pace if not TOLERANCE[0] <= pace <= TOLERANCE[1] else None
