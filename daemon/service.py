"""The daemon's loop: N sources -> pipelines -> one model -> decisions -> one publisher, until every source ends.

Each stream's source is read on its own thread into a bounded backlog (:mod:`daemon.intake`). One loop takes what
every stream has each tick, cuts windows, classifies the windows of all streams that are ready in one batched model
call, and publishes each stream's messages on its own topics over the process's one MQTT connection. Side effects
(MQTT, systemd notifications, signals, logs) stay at the edges; the loop itself only moves typed values along.
"""

from __future__ import annotations

import gc
import itertools
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from genrecast.dsp import AudioError
from genrecast.dsp.windows import MIN_SECONDS, frame_seconds, hop_too_short

from genrecast.contract import daemon_status_topic, stream_topic
from genrecast.logs import say_due, say_held_back
from genrecast.text import counted

from .config import ConfigError, RunSettings, StreamSettings
from .decision import Decider, State, announces_tags
from .events import (
    WILL_REASON,
    DaemonStatus,
    GenreChange,
    Prediction,
    Status,
    UnpublishableError,
    utc_now,
)
from .ha_birth import BirthWatch
from .ha_discovery import Discovery, legacy_retraction
from .ha_leftovers import LeftoverWatch
from .inference import Inference
from .intake import Intake
from .model import GenreModel, describe_head, genre_head, load_model
from .notify import Notifier
from .pace import PaceCheck
from .peers import PeerWatch, client_id
from .pipeline import Pipeline, Window
from .publisher import RECONNECT_MAX_SECONDS, Publisher
from .sources import MicSource, Source, open_source

log = logging.getLogger("genrecast.run")

# A finished file waits this long for the broker to take its last messages: longer than paho's longest wait between
# tries, so a broker that is back gets at least one try, however long the file took (the backoff grew meanwhile).
END_FLUSH_SECONDS = RECONNECT_MAX_SECONDS + 10.0
STOP_FLUSH_SECONDS = 1.0  # after SIGTERM: the backlog gets this long, then the goodbye at most GOODBYE_SECONDS,
GOODBYE_SECONDS = 0.5  # 1.5 s in all, inside the 2 s promised (the rest is for the interpreter to exit)
TAKE_SECONDS = 1.0  # audio taken from one stream per tick: a stream with a backlog cannot starve the others
DROP_STATUS_EVERY = 5.0  # seconds between status messages (and log lines) that report a growing drop count
FLAT_SECONDS = 60.0  # a live source's digital silence this long is named in the log
FLAT_RMS = 1e-6  # below this a window's samples do not move
GIVE_UP_STALLS = 3  # every live stream stalled this many stall periods: stop feeding systemd's watchdog


class StopRequest(threading.Event):
    """Set by SIGTERM, SIGINT or SIGHUP, naming which for the log line written later by the main loop.

    A signal handler must not log: it runs between two bytecodes of the main thread, possibly inside a write
    to the very stream the log uses, and that buffer is not reentrant (RuntimeError, then a hang at exit).
    """

    signal_name: str | None = None


def install_signal_handlers(stop: StopRequest) -> None:
    def handle(signum, frame):
        stop.signal_name = signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    # There is no reload (settings are read at the start). SIGHUP (a closed terminal, `systemctl kill -s HUP`)
    # killed the process outright: its streams' retained statuses stood online behind the process's will. Started
    # under nohup (SIGHUP ignored), it still outlives its terminal.
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, handle)


NOT_YET_KNOWN = State("uncertain", None, 0.0)  # before its first window: genrecast.contract.not_yet_known


@dataclass
class _Tracker:
    """The current smoothed state, when it began (at first: when the stream started), and whether it was decided
    from provisional windows only."""

    state: State | None = None
    since: str = ""
    provisional: bool = False

    def changed(self, state: State, provisional: bool) -> bool:
        """Whether the state is new, or the same state confirmed by the first full window (``since`` kept)."""
        if state.same_as(self.state):
            confirmed = self.provisional and not provisional
            self.provisional = self.provisional and provisional
            return confirmed
        # the same kind and genre, judged music at last (uncertain either way): news, but the state began when it began
        if self.state is None or (state.kind, state.genre) != (self.state.kind, self.state.genre):
            self.since = utc_now()
        self.state, self.provisional = state, provisional
        return True


class StreamRun:
    """One stream's per-window work and its availability: pipeline, decider, status, stall and drop accounting."""

    def __init__(self, cfg: StreamSettings, source: Source | AudioError, settings: RunSettings, model: GenreModel,
                 publisher: Publisher, daemon: str, instance: str, phase: float = 0.0,
                 wake: threading.Event | None = None) -> None:
        """``source``: open, or why a microphone could not be opened yet (it is then retried with backoff, and the
        pipeline, which needs the device's rate, is built once it opens). ``phase`` in [0, 1): a live stream skips
        that part of its first hop, so that the windows of streams started together are spread over the hop
        instead of all reaching the model in one tick."""
        self.cfg, self.id = cfg, cfg.stream_id
        self.model, self.publisher, self.prefix = model, publisher, settings.prefix
        self.daemon, self.instance = daemon, instance
        kind, _, device = cfg.source.partition(":")
        # Live: a pause means something is wrong. A recording read as fast as possible waits for us (no drops).
        self.live = kind == "mic" if isinstance(source, AudioError) else source.live
        self.reopenable = kind == "mic"
        self.live_pipe = self.live and kind in ("stdin", "pipe")  # a radio's decoder, arecord: its pace is telling
        self.restart_helps = kind != "pipe"  # a named pipe's silence is its writer's: no restart of ours can end it
        opener = (lambda rate: MicSource(device or None, rate=rate)) if self.reopenable else None
        self.intake = Intake(self.id, str(source) if isinstance(source, AudioError) else source, opener,
                             settings.backlog_seconds, drop_oldest=self.live, wake=wake, description=cfg.source)
        self.skip_seconds = phase * cfg.hop_seconds if self.live else 0.0
        self.pipeline: Pipeline | None = None  # built once the source is open and its rate known
        self.pace: PaceCheck | None = None  # a live pipe's: are its --rate and --channels right?
        self.take_samples = self.window_samples = 0  # input samples taken per tick; a whole window needs
        self.decider = Decider.for_model(model.spec, cfg.decision(), cfg.hop_seconds)
        self.head = genre_head(model.spec, cfg.heard, cfg.recorded)  # which genre head (or both weighed); else None
        self.tracker = _Tracker(NOT_YET_KNOWN, utc_now())  # as published at the start: an unsure 1st window is no news
        self.current = NOT_YET_KNOWN  # the latest window's state (its confidence moves with every window)
        self.announced: dict[str, float] | None = {} if model.spec.has_tags else None  # the state's tags
        self.state, self.reason = "online", None
        self.stall_seconds = settings.stall_seconds
        self.stalled_since = self.last_reopen = 0.0
        self.quiet_from = 0.0  # when its last audio came before the stall began
        self.resuming = False  # stalled: the first audio after the gap starts the analysis afresh
        self.device_missing_at = -math.inf  # when the loop last saw its microphone missing
        self.dropped_reported, self.drop_status_at = 0, 0.0
        self.consumed = 0  # input samples taken so far
        self.windowed = 0  # of those, the ones up to the end of the latest full window (or a fresh start's)
        self.cut_off = 0  # input samples taken but never in a window: a drop came before the next window was whole
        self.windows_before_gap = 0  # full windows classified by the pipelines before the latest gap
        self.last_label = ""
        self.flat_windows = 0  # full windows in a row without a sound at all (digital silence), live streams only
        if not self.ready():
            self.state, self.stalled_since = "stalled", time.monotonic()
            self.reason = self._waiting_reason()
        elif gone := self.intake.device_problem:  # a named pipe not made yet: stalled from the start, not online first
            self.state, self.stalled_since, self.reason = "stalled", time.monotonic(), self._gone(gone)
            self.resuming = True

    def ready(self) -> bool:
        """Whether the source is open, building the pipeline at its rate the first time it is."""
        if self.pipeline is None and self.intake.opened:
            rate = self.intake.sample_rate
            # A live stream answers from 1 s of audio on, provisionally; a file read as fast as possible has its first
            # full window a moment later anyway.
            self.pipeline = self._new_pipeline(skip_seconds=self.skip_seconds, provisional=self.live)
            self.take_samples = round(TAKE_SECONDS * rate)
            if self.live_pipe:
                self.pace = PaceCheck(rate)
            self.window_samples = self._new_pipeline().samples_to_next_window()
            self.windowed = round(self.skip_seconds * rate)  # the phase's skip is no window's, by design
            if self.live:  # else a stream that fell behind, dropping before every take, could never complete a window
                self.intake.hold_at_least(self.take_samples + self.window_samples,
                                          f"a whole window and {TAKE_SECONDS:g} s of audio")
        return self.pipeline is not None

    def _new_pipeline(self, **kw) -> Pipeline:
        """Windows of this stream's model at its hop, from audio at its source's rate."""
        return Pipeline(self.model.spec, self.cfg.hop_seconds, self.intake.sample_rate, **kw)

    def _after_gap(self, chunks: list) -> list:
        """A stall began: what comes before the gap is dropped, and at the first audio after it the windows and the
        smoothing start afresh, as at the start (a provisional answer from 1 s on). Windows that mixed the audio
        from before and after the gap, and smoothing that remembered the former, held the old genre for 8 s after
        the audio came back. The state is silence until the new audio decides one (the stall said so)."""
        before = [c for c in chunks if c.handed_at <= self.quiet_from]
        self.consumed += sum(c.samples.shape[0] for c in before)
        after = chunks[len(before):]
        if after:
            self._new_windows(provisional=True)
            self.decider.restart()
            self.flat_windows = 0  # a minute of digital silence is a minute without a stall (a drop keeps it)
            self.resuming = False
        return after

    def _new_windows(self, provisional: bool) -> None:
        """Windows afresh from the next sample, which comes after a gap in the audio: its offset counts what the
        gap left out, and no window joins the two sides. After a stall (``provisional``: as at a start) the level
        is followed afresh too; over a drop it carries on, as the music did (a stream behind for good drops before
        most takes, and each window set by its own level was the design the card rejects)."""
        self.windows_before_gap += self.pipeline.windows_out
        self.windowed = self.consumed
        self.pipeline = self._new_pipeline(provisional=provisional,
                                           offset_seconds=self.consumed / self.intake.sample_rate,
                                           level=None if provisional else self.pipeline.level)

    def samples_wanted(self) -> int:
        """Input samples worth a push: a window's worth, or, after a gap, any (its first audio starts afresh)."""
        return 1 if self.resuming else self.pipeline.samples_to_next_window()

    def _waiting_reason(self) -> str:
        return _retrying(self.intake.open_error)

    def _gone(self, why: str) -> str:
        """The reason while its device is gone: a microphone is reopened; a named pipe waits for its next writer,
        as its own reason says."""
        return _retrying(why) if self.reopenable else why

    @property
    def _no_audio(self) -> str:
        return f"no audio for {self.stall_seconds:g} s"

    def started(self) -> None:
        """The source is open and its reading thread running: say so in the log."""
        log.info("stream %s: %s at %d Hz, a window every %.3f s, topics %s/%s/#%s", self.id, self.intake.description,
                 self.intake.sample_rate, self.pipeline.hop_seconds, self.prefix, self.id,
                 f", {describe_head(self.head)} (heard = {self.cfg.heard})" if self.head else "")
        rate, dsp = self.intake.sample_rate, self.model.spec.dsp
        if rate / 2 < dsp.fmax_hz:  # a Bluetooth headset's 8000 Hz: nothing above 4 kHz, cymbals and most timbre gone
            log.warning("stream %s: %s gives %d-Hz audio, which holds nothing above %g kHz, where the model hears up "
                        "to %g kHz: its genres are less accurate than its card says (a device or a --rate of at least "
                        "%d Hz)", self.id, self.intake.description, rate, rate / 2000, dsp.fmax_hz / 1000,
                        math.ceil(2 * dsp.fmax_hz))

    def take(self) -> list[tuple[Window, float]]:
        """This tick's audio from the intake, pushed. Audio dropped before it (processing fell behind) is a gap:
        the windows start afresh after it, from a whole window's worth of audio taken at once. The smoothing carries
        on over a gap shorter than a window, as the music did (a stream behind for good drops a little before
        most takes); a longer one starts it afresh too, as a stall does: after 18 s dropped, a country intro's
        windows had the classical after the gap confirmed as country."""
        chunks, dropped = self.intake.take(self.take_samples, self.take_samples + self.window_samples)
        if dropped:
            if not self.resuming:  # else the first audio after the stall starts afresh anyway
                self.cut_off += max(0, self.consumed - self.windowed)  # audio no window will hold now
            self.consumed += dropped
            if not self.resuming:
                self._new_windows(provisional=False)
                if dropped >= self.window_samples:
                    self.decider.restart()
        return self.push(chunks) if chunks else []

    def push(self, chunks: list) -> list[tuple[Window, float]]:
        """Several chunks in one pipeline push; each window is paired with when the chunk completing it came."""
        if self.resuming:
            chunks = self._after_gap(chunks)
            if not chunks:
                return []
        samples = np.concatenate([c.samples for c in chunks]) if len(chunks) > 1 else chunks[0].samples
        ends = self.consumed + np.cumsum([c.samples.shape[0] for c in chunks])
        self.consumed = int(ends[-1])
        rate = self.intake.sample_rate
        out = []
        for w in self.pipeline.push(samples):
            i = min(int(np.searchsorted(ends, w.end_s * rate - 0.5)), len(chunks) - 1)
            out.append((w, chunks[i].handed_at))
            if not w.provisional:
                self.windowed = max(self.windowed, round(w.end_s * rate))
        return out

    def status(self) -> Status:
        return Status(self.state, self.model.model_id, self.intake.description, self.reason, self.daemon,
                      self.instance, self.dropped_seconds, self.head)

    def publish_status(self) -> None:
        self.publisher.publish(self.status().message(self.prefix, self.id))

    def publish_genre(self) -> None:
        """The current state, retained: on a change, at the start (not yet known: no old genre may stand as
        current), and every ``refresh_seconds`` (HA's expire_after, and a live confidence). Until the first change
        that is still "not yet known", confidence 0: a refresh during the first dwell sent the latest unsure window
        (0.4 sure, say), which Home Assistant shows as `uncertain`, not unknown."""
        state = NOT_YET_KNOWN if self.tracker.state is NOT_YET_KNOWN else self.current
        self.publisher.publish(GenreChange(self.model.model_id, state, self.tracker.since, self.announced,
                                           self.tracker.provisional).message(self.prefix, self.id))

    def classified(self, window: Window, p: np.ndarray, music: float, handed_at: float,
                   tags: np.ndarray | None = None) -> None:
        """One window's model outputs (``tags``: its tag probabilities, from a model with tags)."""
        self._check_flat(window)
        state = self.current = self.decider.update(p, music, window.rms)
        spec = self.model.spec
        quiet = self.decider.quiet(window.rms)  # a dip's window too: its answer was left out
        announced = None
        if spec.has_tags:
            announced = spec.announced_tags(tags) if not quiet and announces_tags(
                state.kind, float(music), spec.music_threshold) else {}
        try:
            self.publisher.publish(Prediction(
                self.model.model_id, window.start_s, window.end_s, dict(zip(spec.labels, map(float, p), strict=True)),
                state, window.rms, (time.monotonic() - handed_at) * 1000.0,
                float(music) if spec.has_music_head else None, announced, window.provisional, quiet,
            ).message(self.prefix, self.id))
        except UnpublishableError as exc:  # the contract is JSON numbers: refuse rather than send NaN
            log.warning("stream %s: %s; not sent", self.id, exc)
            return
        confirmed = state.same_as(self.tracker.state)
        # held against this window's own answer: no confirmation of a provisional state (nor a provisional one anew)
        if self._take_state(state, window.provisional or (self.tracker.provisional and self.decider.contested),
                            announced):
            log.info("stream %s: %s %s %.1f s%s", self.id, self.last_label, "confirmed at" if confirmed else "from",
                     window.start_s if not confirmed else window.end_s, " (provisional)" if window.provisional else "")

    def _take_state(self, state: State, provisional: bool = False, announced: dict[str, float] | None = None) -> bool:
        """The decider's state as the current one, published if it is news (a change, or a provisional one
        confirmed): whether it was."""
        self.current = state
        # systemd's STATUS follows every window's confidence, as the genre's refreshes do (it kept the change's: disco
        # (0.64) while the genre message said 0.88)
        what = state.genre or ("uncertain music" if state.judged else state.kind)
        self.last_label = f"{what} ({state.confidence:.2f})"
        if not self.tracker.changed(state, provisional):
            return False
        self.announced = announced if announced is not None or not self.model.spec.has_tags else {}
        self.publish_genre()
        return True

    def check(self, now: float) -> None:
        """Stall and drop accounting, once per tick: say it in the log and the status, reopen what can be."""
        if self.pipeline is None:
            self._check_waiting()
            return
        last_audio = self.intake.last_audio  # read once: audio coming meanwhile would count as before the gap
        silent = now - last_audio
        # A device known gone is stalled at once, not after stall_seconds; but not while a whole window of its audio
        # still waits: a pipe's writer that sent a burst and closed it had the burst dropped as audio from before the
        # gap. A whole window, not what a stalled stream wants (any): a microphone's late chunk is no sign it is back.
        waiting = self.intake.held > 0 and self.intake.held >= self.pipeline.samples_to_next_window()
        gone = None if waiting else self.intake.device_problem
        if self.live and self.state == "online" and not waiting and (gone or silent > self.stall_seconds):
            self.state, self.stalled_since, self.quiet_from = "stalled", now, last_audio
            self.resuming = True  # the first audio after the gap starts the analysis afresh (push)
            # No audio is what silence says: the state ends here (it stood through the stall and came back as
            # current with the audio), and the audio that comes back is judged as after a silence. Home Assistant
            # shows silence -> the new genre, which its users' not_from: [unknown, unavailable] guard lets through.
            self._take_state(self.decider.forget())
            if gone:
                self.reason, self.last_reopen = self._gone(gone), now
                log.warning("stream %s: %s %s", self.id, self.intake.description,
                            f"is gone ({gone}): stalled until it is back" if self.reopenable else f"stalled: {gone}")
            else:
                self.reason = self._no_audio
                log.warning("stream %s: no audio from %s for %.0f s: stalled%s", self.id, self.intake.description,
                            silent, "; reopening it" if self.reopenable else "")
                self._reopen(now)
            self.publish_status()
        elif self.state == "stalled" and not gone and self.intake.last_audio > self.stalled_since:
            log.info("stream %s: audio again after %.0f s", self.id, now - self.quiet_from)
            self.state, self.reason = "online", None
            if self.pace is not None:  # perhaps another writer (a decoder restarted with other flags): measured afresh
                self.pace = PaceCheck(self.pace.sample_rate)
            # Its genre was not renewed while stalled, so Home Assistant may have expired it: renewed now, before the
            # status says online (as at the start), not up to refresh_seconds later
            self.publish_genre()
            self.publish_status()
        elif self.state == "stalled" and gone:
            # The device reopens itself meanwhile (the microphone, or our reopen's retries): a reopen of ours would
            # only replace a source that has just come back. Counted from the last tick it was gone.
            self.last_reopen = now
            if self.reason != self._gone(gone):  # gone after a silence, or for another reason now
                self.reason = self._gone(gone)
                self.publish_status()
        elif self.state == "stalled" and now - self.last_reopen > self.stall_seconds:
            if self.reason != self._no_audio:  # its device came back, but has been silent since
                self.reason = self._no_audio
                self.publish_status()
            self._reopen(now)
        if self.pace is not None:
            self._check_pace(now)
        if self.dropped > self.dropped_reported and now - self.drop_status_at >= DROP_STATUS_EVERY:
            self.dropped_reported, self.drop_status_at = self.dropped, now  # the log says it for all (_say_drops)
            self.publish_status()

    def _check_flat(self, window: Window) -> None:
        """A live source whose samples have not moved for a minute says so, once until they do (or it stalls): a
        muted or wrong input sends digital silence, which read as `silence` for as long as it ran, unsaid."""
        if not (self.reopenable or self.live_pipe) or window.provisional:
            return  # a file's silence is its own, whatever its pace
        if window.rms > FLAT_RMS:  # a constant resampled from 44.1 kHz is not quite 0; dither of 1 LSB is 1.4e-5
            self.flat_windows = 0
            return
        self.flat_windows += 1
        if self.flat_windows == math.ceil(FLAT_SECONDS / self.pipeline.hop_seconds):
            log.warning("stream %s: %s has sent digital silence (samples that never change) for %.0f s: is it "
                        "muted, or the wrong input?", self.id, self.intake.description, FLAT_SECONDS)

    def _check_pace(self, now: float) -> None:
        if (pace := self.pace.check(now, self.intake.received, self.intake.last_audio)) is not None:
            log.warning("stream %s: %s delivers %.2f s of audio a second, where a live pipe delivers 1: if it is real "
                        "time, --rate, --channels or --format is wrong (%s)", self.id, self.intake.description, pace,
                        "stereo read as mono, 44.1 kHz read as 22.05, or s32le read as s16le, gives 2" if pace > 1
                        else "22.05 kHz read as 44.1, mono read as stereo, or s16le read as s32le, gives 0.5")

    def _check_waiting(self) -> None:
        """A microphone not opened yet: online once it opens, else a status whenever the reason changes."""
        if self.ready():
            self.state, self.reason = "online", None
            self.started()
            self.publish_status()
        elif self._waiting_reason() != self.reason:
            self.reason = self._waiting_reason()
            self.publish_status()

    def _reopen(self, now: float) -> None:
        if self.reopenable:
            self.last_reopen = now
            self.intake.reopen()

    def stalled_for(self, now: float) -> float:
        return now - self.stalled_since if self.state == "stalled" else 0.0

    @property
    def dropped(self) -> int:
        """Input samples left unclassified because processing fell behind: dropped from the backlog, and what the
        windows after each drop could not join to (the audio since the last whole window, before the drop)."""
        return self.intake.dropped + self.cut_off

    @property
    def dropped_seconds(self) -> float:
        rate = self.intake.sample_rate
        return round(self.dropped / rate, 3) if rate else 0.0

    @property
    def windows_classified(self) -> int:
        """Full windows classified so far, across gaps."""
        return self.windows_before_gap + (self.pipeline.windows_out if self.pipeline is not None else 0)

    def end(self, reason: str, alone: bool = False) -> None:
        """``alone``: the process's only stream, whose error is the process's last line (exit 2): not logged too."""
        # stalled, then audio again and its end in one tick (the check that says "audio again" comes after)
        resumed = self.state == "stalled" and self.intake.last_audio > self.stalled_since
        if (self.state == "online" or resumed) and self.windows_classified:
            # The last answer stays retained: a file read at --speed 0 ended before the first refresh, and its
            # genre stood at the first window's confidence (0.37 for a file that ended 0.99 sure)
            self.publish_genre()
        self.state, self.reason = "offline", reason
        if reason == "end of stream" and self.pipeline is not None and not self.windows_classified:
            log.warning("stream %s: the source ended after %.2f s, under the %g s minimum: nothing classified",
                        self.id, self.pipeline.seconds_in, MIN_SECONDS)
        self.intake.close()
        if self.dropped:  # the warnings along the way are rate-limited: say the total the status has
            log.info("stream %s: %.1f s of its audio dropped in all (processing fell behind)", self.id,
                     self.dropped_seconds)
        if reason == "end of stream" and self.live_pipe:
            # a radio's decoder that died looked like a file that ended: one info line, exit 0
            log.warning("stream %s: %s ended: the program writing to it closed it", self.id,
                        self.intake.description)
        elif not reason.startswith("error"):
            log.info("stream %s: %s", self.id, reason)
        elif not alone:
            log.error("stream %s: %s", self.id, reason)
        self.publish_status()


def _retrying(why: str) -> str:
    """A stream's reason while its device cannot be opened (missing since the start, or gone since)."""
    return f"{why}; retrying"


def _open(cfg: StreamSettings) -> Source:
    return open_source(cfg.source, cfg.speed, cfg.loop, cfg.format, cfg.rate, cfg.channels)  # rate None: the default


def run_service(settings: RunSettings, stop: threading.Event, notifier: Notifier | None = None) -> int:
    """Classify every configured stream until all end (exit 0 once everything is delivered) or ``stop`` is set."""
    notifier = notifier or Notifier()
    configs = settings.stream_settings()
    model = load_model(settings.model)
    _check_hops(settings, configs, model)
    if not model.spec.direct_head and ("heard" in settings.set_keys or any("heard" in t for t in
                                                                         settings.streams.values())):
        log.warning("heard: set, but %s has one genre head, which every source reads: not used", model.model_id)
    inference = Inference(model, settings.threads)
    _warm_up(model)
    sources: dict[str, Source | AudioError] = {}
    for cfg in configs:
        try:
            sources[cfg.stream_id] = _open(cfg)
        except AudioError as exc:
            # The one-stream form at a terminal: a source that cannot open is exit 2, at once (a mistyped device is
            # better told there). Under systemd, a microphone not there yet (a USB one after a reboot) is waited
            # for, as in the many-stream form: exit 2 is not restarted, so the unit stayed failed for good.
            if len(configs) == 1 and not (notifier.managed and cfg.source.partition(":")[0] == "mic"):
                raise
            sources[cfg.stream_id] = exc  # this stream reports it in its status; the others go on
    # A microphone that is not there yet (a USB one not plugged in, a PulseAudio source loaded later) is retried
    # until it appears, like one that vanishes while running; any other source that cannot open is that stream's end.
    unopened = {c.stream_id: sources[c.stream_id] for c in configs
                if isinstance(sources[c.stream_id], AudioError) and c.source.partition(":")[0] != "mic"}
    if len(unopened) == len(configs):
        raise AudioError("no stream's source could be opened: " + "; ".join(f"{k}: {v}" for k, v in unopened.items()))
    name, prefix, model_id = settings.daemon_name(), settings.prefix, model.model_id
    instance = client_id(name)
    ids = tuple(c.stream_id for c in configs)
    broker = settings.broker.to_broker()
    runs: list[StreamRun] = []
    # A stream whose source did not open is offline with the error for as long as the process runs, renewed like
    # the others' statuses: sent once, Home Assistant expired it (unavailable, the reason hidden) 30 s later.
    unopened_status = {c.stream_id: Status("offline", model_id, c.source, f"error: {unopened[c.stream_id]}", name,
                                           instance, genre_head=genre_head(model.spec, c.heard, c.recorded))
                       for c in configs if c.stream_id in unopened}
    wake = threading.Event()  # set by a stream's intake once it holds a whole window
    publisher = Publisher(
        broker, instance,
        # The streams' statuses before the process's: Home Assistant's stream Status, available once the process
        # is, showed the previous run's retained `offline` (reason "stopped") in between, at every start.
        hello=lambda since: [*(r.status().message(prefix, r.id) for r in runs),  # after the genres (Publisher)
                             *(status.message(prefix, i) for i, status in unopened_status.items()),
                             DaemonStatus("online", instance, ids, since=since).message(prefix, name)],
        will=lambda since: DaemonStatus("offline", instance, ids, WILL_REASON, since).message(prefix, name),
        qos=settings.qos, buffer_messages=settings.buffer_messages,
    )
    for cfg in configs:
        source = sources[cfg.stream_id]
        if cfg.stream_id in unopened:
            log.error("stream %s: %s", cfg.stream_id, source)  # its status is in the statuses sent at connect
            continue
        runs.append(StreamRun(cfg, source, settings, model, publisher, name, instance, phase=len(runs) / len(configs),
                              wake=wake))
    configs_sent: list[str] = []  # the discovery configs' topics, sent again at Home Assistant's birth message
    if settings.ha_discovery:
        discovery = Discovery(prefix, name, model_id, model.spec.labels, settings.refresh_seconds,
                              settings.discovery_prefix, settings.dashboard_url, model.spec.has_music_head)
        publisher.publish(discovery.process())
        configs_sent.append(discovery.process_topic)
        for cfg in configs:  # a stream that failed to open too: its device shows offline, and why
            publisher.publish(legacy_retraction(cfg.stream_id))  # first: the new Genre entity takes the old one's id
            publisher.publish(discovery.stream(cfg.stream_id, cfg.area))
            configs_sent.append(discovery.topic(cfg.stream_id))
    for run in runs:
        run.publish_genre()  # "not yet known" before the status says online: the last run's genre is not current
        run.publish_status()

    def refresh() -> None:
        for run in runs:
            if run.state == "online":  # a stalled stream's last genre is not current: not renewed as if it were
                run.publish_genre()
        publisher.refresh()
        peers.check_echo(publisher.connected_for)
    # What another process publishing our ids also overwrote, won back with the status: a stream's genre, and the
    # Home Assistant devices whose availability then named the other process (its goodbye left the stream
    # unavailable in Home Assistant while we kept publishing it)
    overwritten = {daemon_status_topic(prefix, name): configs_sent[:1],
                   **{stream_topic(prefix, i, "status"): [stream_topic(prefix, i, "genre"),
                                                          *([discovery.topic(i)] if settings.ha_discovery else [])]
                      for i in ids}}

    def reassert(topic: str) -> None:
        publisher.resend_kept(overwritten.get(topic, []))
        publisher.resend(topic)

    peers = PeerWatch(instance, {daemon_status_topic(prefix, name): f"process {name}",
                                 **{stream_topic(prefix, i, "status"): f"stream {i}" for i in ids}}, reassert)
    leftovers = LeftoverWatch(settings) if settings.ha_discovery else None
    birth = (BirthWatch(settings.discovery_prefix, lambda: publisher.resend_kept(configs_sent))
             if settings.ha_discovery else None)

    def watched(topic: str, payload: bytes, retained: bool) -> None:
        peers.on_message(topic, payload, retained)
        if leftovers is not None:
            leftovers.on_message(topic, payload, retained)
        if birth is not None:
            birth.on_message(topic, payload, retained)

    publisher.watch([*peers.topics, *([leftovers.filter, *birth.topics] if settings.ha_discovery else [])], watched)
    publisher.start()
    for run in runs:
        run.intake.start()
        if run.pipeline is not None:
            run.started()
    log.info("process %s (client id %s): %d stream(s)%s, model %s, broker %s", name, instance, len(runs),
             f" ({len(unopened)} more did not open: {', '.join(unopened)})" if unopened else "", model_id, broker.url)
    # as the loop will say it: a microphone not there yet read "classifying mic:USB" until the loop's first status
    now = time.monotonic()
    _mark_waiting(runs, now)
    ready = _status(runs, runs, now, multi=len(configs) > 1, unopened=len(unopened))
    notifier.ready(ready)

    # What start-up made (numba, onnxruntime and their modules: about 126,000 objects) lives as long as the process.
    # Out of the collector's sight, a full collection no longer scans it: that took 47 ms, now and then in the
    # middle of a window, and was the daemon's p99 latency.
    gc.freeze()
    reason, flush_seconds = "stopped", STOP_FLUSH_SECONDS
    try:
        _loop(runs, inference, settings, stop, notifier, multi=len(configs) > 1, wake=wake, refresh=refresh,
              broker_trouble=lambda: publisher.trouble, unopened=len(unopened), said=ready)
        if stop.is_set():
            log.info("%s received: stopping", getattr(stop, "signal_name", None) or "stop request")
        if not stop.is_set():
            reason, flush_seconds = "end of stream", END_FLUSH_SECONDS
            log.info("every source ended; %s still to deliver", counted(publisher.undelivered, "message"))
    except BaseException as exc:
        reason = f"error: {exc}"
        raise
    finally:
        # before the ends below: on an error they give every stream that reason
        failed = [r.id for r in runs if (r.reason or "").startswith("error")] + list(unopened)
        say_held_back()  # before the streams' totals: a drop warning's summary came after its stream's total
        for run in runs:
            if run.state != "offline":
                run.end(reason)
        delivered = publisher.flush(flush_seconds, wait_for_broker=reason == "end of stream", cancel=stop)
        notifier.stopping()
        undelivered = publisher.undelivered  # as the flush ended: acks that come during the goodbye do not count
        reachable = publisher.connected  # else the retained statuses, held aside, are not delivered either
        # acks that came as the wait timed out: delivered all the same (it said "the last messages not delivered",
        # and a finished file exited 1)
        delivered = delivered or (reachable and not undelivered)
        ended = reason if not failed else f"{reason}; failed: {', '.join(failed)}"  # in the status as in the journal
        publisher.close(DaemonStatus("offline", instance, ids, ended, publisher.since).message(prefix, name),
                        GOODBYE_SECONDS)
        inference.close()
        # Back in the collector's sight, so that what start-up made in cycles (the streams) and the native
        # resamplers they reach are freed before the interpreter's teardown, which would report them as leaked.
        gc.unfreeze()
        gc.collect()
        say_held_back()  # the process's last lines say how it ended, not a retry held back since
    if not delivered:
        what = [counted(undelivered, "message")] if undelivered else []
        what += [] if reachable else ["the latest statuses"]  # "0 messages and the latest statuses", it read
        log.warning("%s not delivered to %s", " and ".join(what), broker.url)
    # The one-stream form keeps its contract, broker or not: a bad source is exit 2 (with the broker down it was 1,
    # which systemd restarts, into the same bad file).
    if len(configs) == 1 and failed and runs:
        raise AudioError(runs[0].reason.removeprefix("error: "))
    if not delivered and reason == "end of stream":
        return 1  # a finished file whose last windows never reached the broker has not done its job
    log.info("%s", ended)
    # Stopped on request, the process did what it was asked (systemd would call a non-zero stop a failure); ending
    # by itself with a stream that never ran or broke, it did not.
    return 1 if failed and reason != "stopped" else 0


def _loop(runs: list[StreamRun], inference: Inference, settings: RunSettings, stop: threading.Event,
          notifier: Notifier, multi: bool, wake: threading.Event, refresh: Callable[[], None],
          broker_trouble: Callable[[], str | None], unopened: int = 0, said: str = "") -> None:
    """Tick until every stream has ended or ``stop``: take audio, cut windows, classify in batches, publish.

    Between ticks the loop sleeps until a stream holds a whole window (its intake sets ``wake``), so a window is
    classified when its last sample arrives, not up to a tick later; the tick bounds the sleep for the checks.
    ``refresh()`` republishes the retained states every ``refresh_seconds``; ``unopened``: streams whose source
    did not open at the start (not in ``runs``), counted as failed in systemd's status; ``said``: the status READY
    carried, not sent again (it went twice at every start)."""
    summary = said
    refresh_at = time.monotonic() + settings.refresh_seconds
    drops_said: dict[str, int] = {}
    drops_at = 0.0
    while not stop.is_set():
        wake.clear()
        started = time.monotonic()
        work: list[tuple[StreamRun, Window, float]] = []
        behind = False
        for run in runs:
            if run.state == "offline" or run.pipeline is None:
                continue  # ended, or its microphone is not open yet (check() builds its pipeline once it is)
            waiting, need = run.intake.held, run.samples_wanted()
            run.intake.wake_at = min(need, run.intake.limit // 2)
            if waiting < run.intake.wake_at and run.intake.end_reason is None:
                continue  # not enough for a window yet: one push per window, not one per chunk
            work += [(run, w, handed_at) for w, handed_at in run.take()]
            if run.intake.finished:
                work += [(run, w, time.monotonic()) for w in run.pipeline.push(np.zeros(0, np.float32), last=True)]
            else:
                behind = behind or run.intake.held >= run.pipeline.samples_to_next_window()
        _classify(work, inference, settings.batch)
        now = time.monotonic()
        if any(r.state != "offline" and r.intake.finished for r in runs):  # what is due before their last lines
            _say_drops(runs, drops_said)
            say_held_back()
        for run in runs:
            if run.state != "offline" and run.intake.finished:
                run.end(run.intake.end_reason, alone=not multi)
            elif run.state != "offline":
                run.check(now)
        live = [r for r in runs if r.state != "offline"]
        if not live:
            return
        if now >= refresh_at:
            refresh_at = now + settings.refresh_seconds
            refresh()
        if now - drops_at >= DROP_STATUS_EVERY:
            drops_at = now
            _say_drops(runs, drops_said)
            say_due()  # and the rate limit's summaries that are due, though no line has come to check them
        # The whole loop is healthy while it turns and some stream is not stuck; one stalled microphone among many
        # is that stream's business (status, reopen), but a process whose every source is dead needs a restart.
        give_up = GIVE_UP_STALLS * settings.stall_seconds
        # A microphone waiting for its device (missing since the start, or gone since) is left out: a restart cannot
        # bring a device that is not there. Once the device is back its stream has a whole give-up period to sound.
        # So is a named pipe while it stalls: it waits on its writer.
        _mark_waiting(live, now)
        opened = [r for r in live if now - r.device_missing_at > give_up and (r.restart_helps or r.state != "stalled")]
        stuck = bool(opened) and all(r.live and r.stalled_for(now) > give_up for r in opened)
        if stuck:
            text = f"every open stream stalled for over {give_up:g} s: watchdog not fed"
            if text != summary:
                log.error("%s; systemd's watchdog (if any) will restart the service", text)
        else:
            text = _status(runs, live, now, multi, unopened)
            if trouble := broker_trouble():  # classifying on, but nothing reaches anyone: `systemctl status` says so
                text += f"; {trouble}"
        if text != summary:
            summary = text
            notifier.status(text)
        if not stuck:
            notifier.watchdog()
        if not behind and not stop.is_set():
            wake.wait(max(0.0, settings.tick_seconds - (time.monotonic() - started)))


def _say_drops(runs: list[StreamRun], said: dict[str, int]) -> None:
    """One line for the running streams whose dropped audio grew since the last (``said``: each one's count then).
    Said per stream, an overloaded process of 80 streams logged 395 lines in 95 s for one cause, the processor."""
    running = [r for r in runs if r.state != "offline"]  # an ended stream's total is its last line
    grown = [r for r in running if r.dropped > said.get(r.id, 0)]
    hint = " (a pipe is read live: for a recording, --speed 0 waits instead)" \
        if any(r.live_pipe and not said.get(r.id) for r in grown) else ""
    if len(grown) == 1:
        log.warning("stream %s: processing fell behind; %.1f s of its audio dropped so far%s", grown[0].id,
                    grown[0].dropped_seconds, hint)
    elif grown:
        names = ", ".join(r.id for r in grown[:3]) + (f" and {len(grown) - 3} more" if len(grown) > 3 else "")
        log.warning("processing fell behind: %d of %d streams dropped audio (%s); %.1f s of theirs dropped so far%s",
                    len(grown), len(running), names, sum(r.dropped_seconds for r in grown), hint)
    said.update((r.id, r.dropped) for r in grown)


def _check_hops(settings: RunSettings, configs: list[StreamSettings], model: GenreModel) -> None:
    """A hop under half a frame of the model's front end would round to none: refused at the start, naming the key
    and where it was set (the file, a stream's table, the environment, --hop), not when the source opens."""
    cfg = model.spec.dsp
    for stream in configs:
        if not hop_too_short(cfg, stream.hop_seconds):
            continue
        in_table = "hop_seconds" in settings.streams.get(stream.stream_id, {})
        key = f"streams.{stream.stream_id}.hop_seconds" if in_table else "hop_seconds"
        where = settings.set_in.get("streams" if in_table else key)  # a table's hop is the file's (--stream: sources)
        raise ConfigError(f"{key}{f' (from {where})' if where else ''}: {stream.hop_seconds:g} s is shorter than "
                          f"one frame of {model.model_id} ({frame_seconds(cfg) * 1000:.1f} ms)", key)


def _warm_up(model: GenreModel) -> None:
    """One window of silence through the front end before any stream opens: otherwise the first real window pays
    numba's cache load (about 250 ms here, with onnxruntime's first run, which ``load_model``'s check of the
    outputs has already made)."""
    spec = model.spec
    pipeline = Pipeline(spec, 1.0, spec.dsp.sample_rate)
    pipeline.push(np.zeros(pipeline.samples_to_next_window(), np.float32))


def _classify(work: list[tuple[StreamRun, Window, float]], inference: Inference, batch: int) -> None:
    """Model calls of at most ``batch`` windows, whichever streams they come from, run on every core: the windows
    are shared out over at least as many calls as there are threads (two windows: two calls at once, not one call
    of two). Then every window's decision and messages, in order."""
    n = max(-(-len(work) // batch), min(inference.threads, len(work)))
    cuts = [len(work) * k // n for k in range(n + 1)] if work else [0]
    parts = [work[a:b] for a, b in itertools.pairwise(cuts)]
    outputs = inference.predict([np.stack([w.logmel for _, w, _ in part]) for part in parts])
    for part, out in zip(parts, outputs, strict=True):
        tags = out.tags if out.tags is not None else [None] * len(part)
        for i, ((run, window, handed_at), music, t) in enumerate(zip(part, out.music, tags, strict=True)):
            run.classified(window, out.genre_for(run.head)[i], music, handed_at, t)


def _mark_waiting(live: list[StreamRun], now: float) -> None:
    """A microphone waiting for its device (missing since the start, or gone since) is marked missing as of ``now``."""
    for r in live:
        if r.pipeline is None or r.intake.waiting_for_device:
            r.device_missing_at = now


def _status(runs: list[StreamRun], live: list[StreamRun], now: float, multi: bool, unopened: int = 0) -> str:
    """systemd's status while the streams are not stuck: a summary of several, or the one stream's state."""
    one = runs[0]
    if multi or one.device_missing_at == now or one.state == "stalled":
        failed = unopened + sum(r.state == "offline" and (r.reason or "").startswith("error") for r in runs)
        ended = sum(r.state == "offline" for r in runs) + unopened - failed
        return _summary(live, now, failed, ended)
    return one.last_label or f"classifying {one.intake.description}"


def _summary(live: list[StreamRun], now: float, failed: int = 0, ended: int = 0) -> str:
    """``failed``: streams that ended with an error or never opened (`systemctl status` looked healthy without);
    ``ended``: the others no longer running (a radio whose decoder exited went from 2 running to 1, unexplained)."""
    absent = [r.device_missing_at == now for r in live]  # microphones not there, as the loop saw them this tick
    waiting = sum(absent)
    stalled = sum(r.state == "stalled" and not gone for r, gone in zip(live, absent, strict=True))
    # a stalled stream is not running: a stalled one alone read "1 stream(s) running, 1 stalled"
    parts = [f"{len(live) - waiting - stalled} stream(s) running", f"{stalled} stalled" if stalled else "",
             f"{waiting} waiting for their device" if waiting else "", f"{failed} failed" if failed else "",
             f"{ended} ended" if ended else ""]
    return ", ".join(p for p in parts if p)
