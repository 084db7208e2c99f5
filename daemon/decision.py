"""From per-window model outputs to the stream's current state: genre, uncertain, no_music or silence.

Single windows flicker; listeners want the genre of the last few seconds, and every change is a retained
message, a journal line and a Home Assistant state change. So:

- **Smoothing** is either an exponential moving average of the probabilities (``ema``, span N) or a vote of the
  last N windows' top genres (``majority``). It starts from no information, the uniform distribution over the
  labels (and a music probability exactly at the threshold), so one window alone never reads as certain.
- **Hysteresis**: a genre is entered when its smoothed probability reaches ``min_confidence`` and, once entered,
  held until it drops below ``leave_confidence`` (or another genre reaches ``min_confidence``).
- **Dwell**: a new state replaces the current one only after it has been the candidate for ``dwell_windows``
  windows in a row, so every state but silence lasts at least that long. Candidates that keep changing, none of
  them the held state, for two dwells in a row replace it too, with what most of their windows were: music with no
  clear genre, or ``no_music``.
- **no_music**: with a model that has a music head, a smoothed music probability below the model's
  ``music_threshold`` is ``no_music``, whatever the genre probabilities say; music once heard holds down to
  ``music_margin`` below it (at most half the threshold, so music can always end).
- **Silence**: ``silence_windows`` windows in a row whose RMS is below ``silence_rms`` are silence (at once when
  nothing judged is held: the start, a silence, a first sound not judged yet) and restart the smoothing, so the
  sound after a pause is judged on its own; silence stands until a state is taken after it (the confident first
  answer, or a state that has held ``dwell_windows`` windows: it read ``uncertain``, music with no clear genre to
  Home Assistant, before every track after a silence). Fewer quiet windows are a dip inside the sound: the held
  state stands and they leave the smoothing alone (one quiet window inside quiet music made silence, then
  ``uncertain``, then the same genre again with a new ``since``). A dip of :data:`PAUSE_WINDOWS` or more is a
  pause between tracks: the sound after it is judged afresh, as after a silence, while the held state stands until
  then; two sure windows in a row that agree replace it at once (one named the next jazz track classical), and never
  with ``no_music`` over music (a quiet intro); a dwell of windows that agree with it confirms it (a drop, audio
  dropped for falling behind, is guarded alike).
- **Uncertain music**: music whose top genre stays under ``min_confidence`` is a candidate too; once it has held
  the dwell the stream is a *judged* ``uncertain`` (music, no clear genre: Home Assistant's Music sensor is on),
  where before it nothing was judged yet (unknown at a start; after a silence, silence stands).
- **A confident first answer**: until the stream (or the sound after a silence) has its first state (a judged
  ``uncertain`` is one), a window
  that alone would make a state with at least ``first_confidence`` (its top genre's probability, or one minus its
  music probability for ``no_music``) makes that state at once, without the dwell. Its confidence is still the
  smoothed one (one window is never certain), and later changes still need the hysteresis and the dwell, so a
  wrong first answer costs one change more, not a flapping (``benchmarks/decision_flips.py``). After a silence
  the windows that still hold some of it (``settle_windows``: those that overlap the last silent one) never make
  it: the music head calls a mostly quiet window not music, and the genres read quiet as classical, so most tracks
  that followed a pause began with a few seconds of ``no_music`` or of classical.

Track-level answers (``classify``, the dashboard's file check, the trainer's accuracy) use
:func:`track_probabilities` and :func:`track_state`, here beside the streaming rule; :func:`announces_tags` says
when style tags are announced, for windows and tracks alike.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
from genrecast.dsp.level import QUIET_RMS
from genrecast.dsp.windows import windows_sharing


@dataclass(frozen=True)
class State:
    kind: str  # one of genrecast.contract.DECISION_KINDS
    genre: str | None  # a label exactly when kind is "genre"
    confidence: float  # genre: its probability; no_music: 1 - music probability; uncertain: the top probability
    # uncertain only: taken after the dwell, so a sound judged music with no clear genre, not one not judged yet
    judged: bool = False

    @property
    def music(self) -> bool | None:
        """Whether the sound is music as far as the decision goes (Home Assistant's Music sensor): a genre and a
        judged ``uncertain`` are, ``no_music`` and silence are not; None while nothing is judged yet."""
        if self.kind == "uncertain":
            return True if self.judged else None
        return self.kind == "genre"

    def same_as(self, other: State | None) -> bool:
        return other is not None and (self.kind, self.genre, self.music) == (other.kind, other.genre, other.music)


SMOOTHING = ("ema", "majority")
# quiet windows in a row, fewer than silence_windows, after which the sound is judged afresh: a pause between tracks
# (4 s or more of quiet at the default hop); a track after a 6-s pause was named 3 s late (music_flips.py: 1 to 3)
PAUSE_WINDOWS = 2
MAX_MUSIC_MARGIN = 0.25  # at the shipped threshold of 0.5, music is left below 0.25 at the most


@dataclass(frozen=True)
class DecisionConfig:
    smoothing: str = "ema"
    windows: int = 5
    silence_rms: float = QUIET_RMS  # the level normalisation's quiet windows are silence
    # quiet windows in a row that end a sound: 1 to 5 measured (benchmarks/music_flips.py, docs/mqtt.md); at 1 a
    # stream at 0.005 RMS changed its Music sensor 183 times an hour, at 5 32
    silence_windows: int = 5
    min_confidence: float = 0.4  # enter a genre at this smoothed probability
    # a genre once entered holds down to this: 0.2 since 2026-12-07, for a microphone in a room (music_flips.py: 29
    # changes an hour through rooms against 42 at 0.3, 69 % of windows on the true genre against 66 %)
    leave_confidence: float = 0.2
    dwell_windows: int = 5  # windows a new state must be the candidate in a row before it is taken
    # a first window this sure of itself needs no dwell (None: always dwell); 0.6 since 0.4.0, whose first windows
    # reach 0.7 on only half the excerpts of benchmarks/daemon_bench.py (first answer 1.58 s there, 1.08 s at 0.6)
    first_confidence: float | None = 0.6
    # music once heard is held until the smoothed music probability falls this far below the model's threshold
    music_margin: float = 0.15  # 0 to 0.25 measured: benchmarks/music_flips.py (docs/mqtt.md)

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"unknown smoothing {self.smoothing!r}")
        if not 0 <= self.leave_confidence <= self.min_confidence <= 1:
            raise ValueError(f"need 0 <= leave_confidence <= min_confidence <= 1, got {self.leave_confidence} "
                             f"and {self.min_confidence}")
        if self.windows < 1 or self.dwell_windows < 1 or self.silence_windows < 1:
            raise ValueError("windows, dwell_windows and silence_windows must be at least 1")
        if not 0 <= self.music_margin <= MAX_MUSIC_MARGIN:
            raise ValueError(f"need 0 <= music_margin <= {MAX_MUSIC_MARGIN}, got {self.music_margin}")
        if self.first_confidence is not None and not self.min_confidence <= self.first_confidence <= 1:
            raise ValueError(f"need min_confidence <= first_confidence <= 1, got {self.min_confidence} and "
                             f"{self.first_confidence}")


class Decider:
    """Feeds on one window at a time; pure apart from its own smoothing state."""

    def __init__(self, labels: tuple[str, ...], cfg: DecisionConfig, music_threshold: float | None = None,
                 settle_windows: int = 0) -> None:
        """``settle_windows``: how many windows after a silent one still share some of its audio
        (:func:`dsp.windows.windows_sharing`)."""
        self.labels, self.cfg, self.music_threshold = labels, cfg, music_threshold
        # music once heard is left below this (a margin over half a low threshold would hold it for good)
        self._music_leave = None if music_threshold is None else \
            music_threshold - min(cfg.music_margin, music_threshold / 2)
        self.settle_windows = settle_windows
        self._alpha = 2.0 / (cfg.windows + 1)
        self._uniform = np.full(len(labels), 1.0 / len(labels))
        self._music_prior = 1.0 if music_threshold is None else music_threshold
        self._state: State | None = None  # None: nothing heard yet
        self._taken = False  # a state taken since the start or the last silence (a dip holds it)
        self._restart()
        self._heard = settle_windows  # a start has no pause in its windows: its first one may answer

    @classmethod
    def for_model(cls, spec, cfg: DecisionConfig, hop_seconds: float) -> Decider:
        """A stream's decider for the model ``spec`` (its labels, music threshold and windows) at this hop."""
        return cls(spec.labels, cfg, spec.music_threshold, windows_sharing(spec.dsp, spec.n_frames, hop_seconds))

    def restart(self) -> None:
        """A gap in the audio that the stream stayed online through (audio dropped for falling behind): the smoothing
        starts afresh, as after a silence, but the state stands until the new audio changes it (guarded as after a
        pause: a drop comes in the middle of the music, where the held state is most likely right)."""
        self._restart()
        self._heard = self.settle_windows  # no pause in the new audio's windows: its first one may answer
        self._after_pause = self._judged_held

    def forget(self) -> State:
        """A stall: no audio came for a while, which is what silence says, so the next audio is judged as after a
        silence (its first window may answer at once: the windows start afresh with it). A state that stood
        through the stall came back as current with the audio (jazz, 45 s after the jazz stopped, while metal
        played), and a `to: jazz` automation fired on it."""
        self._silence()
        self._heard = self.settle_windows  # the windows start afresh with the audio: none holds the pause
        return self._state

    def _restart(self) -> None:
        self._ema, self._ema_music = self._uniform, self._music_prior
        self._recent: deque[tuple[np.ndarray, float]] = deque(maxlen=self.cfg.windows)
        self._clear_pending()
        self._first = True  # no state taken since the start or the last silence
        self._heard = 0  # windows with sound since the last silence
        self._quiet = 0  # quiet windows in a row inside a held sound
        # judged afresh after a pause (or a drop), the judged state held through it neither replaced nor confirmed yet
        self._after_pause = False
        self._sure: State | None = None  # after a pause: the last window's own sure state, if it had one
        self._agree = 0  # windows in a row, since the sound came back, whose candidate was the held state

    def _clear_pending(self) -> None:
        self._pending: tuple[str, str | None] | None = None  # the candidate of the latest windows, if not the state
        self._pending_count = 0
        self._away = self._away_music = 0  # windows in a row whose candidate was not the held state; of them, music

    def quiet(self, rms: float) -> bool:
        """Whether a window this loud is under the silence gate: its answer is left out of the state."""
        return rms < self.cfg.silence_rms

    def update(self, probabilities: np.ndarray, music: float, rms: float) -> State:
        """One window's genre probabilities, music probability (1.0 for a model without a music head) and RMS."""
        if self.quiet(rms):
            self._quiet += 1
            if not self._taken or self._held is None or self._quiet >= self.cfg.silence_windows:
                self._silence()
            return self._state  # a dip inside the sound: what it held stands
        if self._quiet >= PAUSE_WINDOWS:
            self._restart()  # the sound after a pause is judged afresh, as after a silence; the held state stands
            self._after_pause = True
        self._quiet = 0
        p, music = np.asarray(probabilities, np.float64), float(music)
        self._heard += 1
        smoothed, best, m = self._smooth(p, music)
        first = self._confident(p, music) if self._first else None
        if self._after_pause:  # the state held through the pause yields at once only to two sure windows that agree
            sure, self._sure = self._sure, first
            if first is not None and (not first.same_as(sure) or (first.kind == "no_music" and self._held.music)):
                first = None  # one sure window named the next jazz track classical, or a quiet intro no_music
        if first is not None:
            self._after_pause, self._sure, self._taken = False, None, True
            self._clear_pending()
            self._first = False
            self._state = self._restate(first, smoothed, best, m)
            return self._state
        held = self._held
        candidate = self._candidate(smoothed, best, m, held)
        if candidate.same_as(held):
            self._clear_pending()
            if self._first and self._judged_held and self._heard > self.settle_windows:
                self._agree += 1  # the sound after a pause or a drop agrees with what was held: confirmed after a
                if self._agree >= self.cfg.dwell_windows:  # dwell, and no longer replaced by sure windows at once
                    self._first = self._after_pause = False  # (a jazz track minutes on read classical from two)
            self._state = candidate
            return candidate
        self._agree = 0
        key = (candidate.kind, candidate.genre)
        self._pending_count = self._pending_count + 1 if key == self._pending else 1
        self._pending = key
        self._away += 1
        self._away_music += candidate.kind != "no_music"
        if self._pending_count >= self.cfg.dwell_windows:
            self._take(candidate)
        elif self._away >= 2 * self.cfg.dwell_windows and self._pending_count == 1:
            # Two dwells of candidates that keep changing, none of them the held state (which stood as long as they
            # changed: no_music at 0.01 sure while music played, 16 s), and the latest just changed again: what
            # most of those windows were, music with no clear genre or no_music.
            self._take(State("uncertain", None, float(smoothed[best]), judged=self.music_threshold is not None)
                       if 2 * self._away_music >= self._away  # a tie is music
                       else State("no_music", None, 1.0 - min(m, self.music_threshold)))  # not 0.01 sure: the
            # window it fires on is usually music, but most of the run was not
        elif held is not None or self._state is None:
            self._state = self._restate(held, smoothed, best, m)
        # else silence stands until the sound after it is judged: it read "uncertain" (music with no clear genre, to
        # Home Assistant), and the docs' "say each new genre" automation announced it before every track after one
        return self._state

    def _silence(self) -> None:
        self._restart()
        self._state, self._taken = State("silence", None, 1.0), False

    @property
    def _judged_held(self) -> bool:
        """Whether a judged state is held (music or not: what a pause or a drop should not overturn on one window)."""
        return self._held is not None and self._held.music is not None

    @property
    def _held(self) -> State | None:
        """The sound state held (None at the start and in silence): what the hysteresis and the margin keep."""
        return self._state if self._state is not None and self._state.kind != "silence" else None

    @property
    def contested(self) -> bool:
        """Whether the latest window's own candidate differs from the state returned: that state was held through
        the dwell, not agreed with. A provisional answer is confirmed only by a window that agrees (speech then rock:
        the first full window, rock to the music head, "confirmed" the speech's no_music)."""
        return self._pending is not None or self._quiet > 0  # a quiet window's answer was left out

    def _take(self, state: State) -> None:
        self._clear_pending()
        self._state, self._taken = state, True
        if state.kind != "uncertain" or state.judged:  # a judged uncertain is a state too: what changes it keeps
            self._first = self._after_pause = False  # the dwell (an unjudged one is not: a confident first window
            # is still taken)

    def _confident(self, p: np.ndarray, music: float) -> State | None:
        """The state this window alone makes (not uncertain) at least ``first_confidence`` sure, else None; never
        one that may still hold some of a silence just heard (what it says is partly the pause)."""
        if self.cfg.first_confidence is None or self._heard <= self.settle_windows:
            return None
        state = self._candidate(p, int(np.argmax(p)), music, self._held)  # music held through a drop keeps its margin
        return state if state.kind != "uncertain" and state.confidence >= self.cfg.first_confidence else None

    def _smooth(self, p: np.ndarray, music: float) -> tuple[np.ndarray, int, float]:
        """The smoothed probabilities, the winning label and the smoothed music probability."""
        if self.cfg.smoothing == "ema":
            self._ema = self._alpha * p + (1 - self._alpha) * self._ema
            self._ema_music = self._alpha * music + (1 - self._alpha) * self._ema_music
            return self._ema, int(np.argmax(self._ema)), self._ema_music
        self._recent.append((p, music))
        missing = self.cfg.windows - len(self._recent)  # windows not heard yet count as no information
        smoothed = (sum(q for q, _ in self._recent) + missing * self._uniform) / self.cfg.windows
        m = (sum(x for _, x in self._recent) + missing * self._music_prior) / self.cfg.windows
        votes = Counter(int(np.argmax(q)) for q, _ in self._recent)
        best = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
        # the winner's mean probability over all N windows: low when the vote is split or hesitant
        return smoothed, best, m

    def _candidate(self, smoothed: np.ndarray, best: int, m: float, held: State | None) -> State:
        if self.music_threshold is not None and m < (self._music_leave if held is not None and held.music
                                                     else self.music_threshold):
            return State("no_music", None, 1.0 - m)
        if smoothed[best] >= self.cfg.min_confidence:
            return State("genre", self.labels[best], float(smoothed[best]))
        if held is not None and held.kind == "genre":
            p = float(smoothed[self.labels.index(held.genre)])
            if p >= self.cfg.leave_confidence:
                return State("genre", held.genre, p)
        # music with no clear genre: m is at or above the threshold (or held above the margin); a model without a
        # music head cannot say
        return State("uncertain", None, float(smoothed[best]), judged=self.music_threshold is not None)

    def _restate(self, held: State | None, smoothed: np.ndarray, best: int, m: float) -> State:
        """The held state with this window's smoothed confidence (``uncertain`` when nothing is held)."""
        if held is None or held.kind == "uncertain":
            return State("uncertain", None, float(smoothed[best]), judged=held is not None and held.judged)
        if held.kind == "no_music":
            return State("no_music", None, 1.0 - m)
        return State("genre", held.genre, float(smoothed[self.labels.index(held.genre)]))


def track_probabilities(window_probabilities: np.ndarray) -> np.ndarray:
    """A whole recording's genre probabilities: the mean over its windows.

    The one track-level rule: ``classify``, the dashboard's file check and the trainer's track accuracy all use it,
    so the accuracy in the model card is the accuracy of what ``classify`` reports.
    """
    return np.asarray(window_probabilities, np.float64).mean(axis=0)


@dataclass(frozen=True)
class TrackState:
    """A whole recording's answer: ``genre``, ``no_music`` or ``silence`` (``classify`` never says uncertain)."""

    kind: str
    genre: str | None  # a label exactly when kind is "genre"
    confidence: float  # genre: its mean probability; no_music: 1 - mean music probability; silence: 1
    probabilities: np.ndarray  # track_probabilities of the windows
    music: float  # mean music probability of the windows (1.0 for a model without a music head)


def track_state(window_probabilities: np.ndarray, window_music: np.ndarray, window_rms: np.ndarray,
                labels: tuple[str, ...], music_threshold: float | None,
                silence_rms: float = DecisionConfig.silence_rms) -> TrackState:
    """Silence when every window is below ``silence_rms`` (as the stream would say throughout); otherwise
    ``no_music`` when the mean music probability is below the model's threshold; otherwise the top genre of
    :func:`track_probabilities`."""
    probs = track_probabilities(window_probabilities)
    music = float(np.mean(window_music))
    if np.all(np.asarray(window_rms) < silence_rms):
        return TrackState("silence", None, 1.0, probs, music)
    if music_threshold is not None and music < music_threshold:
        return TrackState("no_music", None, 1.0 - music, probs, music)
    best = int(np.argmax(probs))
    return TrackState("genre", labels[best], float(probs[best]), probs, music)


def announces_tags(kind: str, music: float, music_threshold: float | None) -> bool:
    """Style tags describe music: a window or track says none when its state is ``no_music`` or ``silence``, or when
    its own music probability is below the model's threshold (a window of speech while the smoothed state still
    holds the genre)."""
    return kind in ("genre", "uncertain") and (music_threshold is None or music >= music_threshold)
