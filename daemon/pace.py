"""Whether a live pipe's audio comes at the pace its declared rate, channels and format say, as a radio's decoder
delivers.

Raw PCM on stdin carries no header, so a stream declared at the wrong ``--rate``, ``--channels`` or ``--format`` is
read without an error: 44.1 kHz read as 22.05, or stereo as mono, is classified an octave down at twice real time,
and an hour of wrong genres follows in silence. A live pipe delivers real time, so over a couple of minutes its
samples per second say whether the declaration is right. Bursts (network jitter) even out over that span. A pause
of a few seconds starts it afresh, as a stall does: an outage is not the declaration's fault, and the burst that
may follow it is then counted against the time it took.
"""

from __future__ import annotations

from dataclasses import dataclass

SPAN_SECONDS = 120.0  # measured over this long, without a pause
PAUSE_SECONDS = 5.0  # no audio for this long starts the span afresh
TOLERANCE = (0.6, 1.6)  # paces outside this are named: a wrong declaration gives 2 or 0.5 (or 4, 0.25)


@dataclass
class PaceCheck:
    """Fed each tick with the samples received so far; says once what is wrong, if anything."""

    sample_rate: int
    started: tuple[float, int] | None = None  # (when, samples received then)
    done: bool = False  # measured once over a whole span: a pipe's declaration does not change

    def check(self, now: float, received: int, last_audio: float) -> float | None:
        """The pace (audio seconds per second) once a span has passed and it is off; else None."""
        if self.done or not received:
            return None
        if now - last_audio >= PAUSE_SECONDS:  # a pause (or a stall): the silence is not the pipe's pace
            self.started = None
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
