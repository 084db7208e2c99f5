"""The daemon's loop: source -> pipeline -> model -> decision -> publisher, one way, until the source ends or a signal.

Side effects (MQTT, systemd notifications, signals, logs) stay at the edges; the loop itself only
moves typed values along.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

from dsp.windows import MIN_SECONDS

from .config import RunSettings
from .decision import Decider, State
from .events import GenreChange, Prediction, Status, UnpublishableError, ha_discovery, utc_now
from .model import load_model
from .notify import Notifier
from .pipeline import Pipeline, Window
from .publisher import RECONNECT_MAX_SECONDS, Publisher
from .sources import default_stream_id, open_source

log = logging.getLogger("genrecast.run")

# A finished file waits this long for the broker to take its last messages: longer than paho's longest wait between
# tries, so a broker that is back gets at least one try, however long the file took (the backoff grew meanwhile).
END_FLUSH_SECONDS = RECONNECT_MAX_SECONDS + 10.0
STOP_FLUSH_SECONDS = 1.0  # after SIGTERM: the backlog gets this long, then the goodbye at most GOODBYE_SECONDS,
GOODBYE_SECONDS = 0.5  # 1.5 s in all, inside the 2 s promised (the rest is for the interpreter to exit)


def install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum, frame):
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@dataclass
class _Tracker:
    """The current smoothed state and when it began."""

    state: State | None = None
    since: str = ""

    def changed(self, state: State) -> bool:
        if state.same_as(self.state):
            return False
        self.state, self.since = state, utc_now()
        return True


def run_service(settings: RunSettings, stop: threading.Event, notifier: Notifier | None = None) -> int:
    """Classify ``settings.source`` until it ends (exit 0 once everything is delivered) or ``stop`` is set."""
    notifier = notifier or Notifier()
    model = load_model(settings.model, settings.threads)
    source = open_source(settings.source, settings.speed, settings.loop, settings.format, settings.rate,
                         settings.channels)
    pipeline = Pipeline(model.spec, settings.hop_seconds, source.sample_rate)  # refuses a hop under one frame
    stream_id = settings.stream_id or default_stream_id(settings.source)
    prefix, model_id = settings.prefix, model.model_id
    broker = settings.broker.to_broker()
    publisher = Publisher(
        broker, f"genrecast-{stream_id}",
        hello=lambda: Status("online", model_id, source.description).message(prefix, stream_id),
        will=Status("offline", reason="connection lost").message(prefix, stream_id),
        qos=settings.qos, buffer_messages=settings.buffer_messages,
    )
    if settings.ha_discovery:
        publisher.publish(ha_discovery(prefix, stream_id, model_id))
    publisher.start()
    decider = Decider(model.spec.labels, settings.decision(), model.spec.music_threshold)
    tracker = _Tracker()
    log.info("stream %s: %s at %d Hz, model %s, a window every %.3f s, broker %s, topics %s/%s/#", stream_id,
             source.description, source.sample_rate, model_id, pipeline.hop_seconds, broker.url, prefix, stream_id)
    notifier.ready(f"classifying {source.description}")

    def handle(windows: list[Window], handed_at: float) -> None:
        if not windows:
            return
        out = model.predict(np.stack([w.logmel for w in windows]))
        for window, p, music in zip(windows, out.genre, out.music, strict=True):
            state = decider.update(p, music, window.rms)
            try:
                publisher.publish(Prediction(
                    model_id, window.start_s, window.end_s, dict(zip(model.spec.labels, map(float, p), strict=True)),
                    state, window.rms, (time.monotonic() - handed_at) * 1000.0,
                    float(music) if model.spec.has_music_head else None,
                ).message(prefix, stream_id))
            except UnpublishableError as exc:  # the contract is JSON numbers: refuse rather than send NaN
                log.warning("stream %s: %s; not sent", stream_id, exc)
                continue
            if tracker.changed(state):
                publisher.publish(GenreChange(model_id, state, tracker.since).message(prefix, stream_id))
                label = state.genre or state.kind
                log.info("stream %s: %s (%.2f) from %.1f s", stream_id, label, state.confidence, window.start_s)
                notifier.status(f"{label} ({state.confidence:.2f})")

    reason, flush_seconds = "stopped", STOP_FLUSH_SECONDS
    try:
        for chunk in source.chunks(stop):  # an idle live source yields empty chunks: the watchdog sees the loop
            handle(pipeline.push(chunk.samples), chunk.handed_at)
            notifier.watchdog()
        if not stop.is_set():
            handle(pipeline.push(np.zeros(0, np.float32), last=True), time.monotonic())
            if not pipeline.windows_out:
                log.warning("stream %s: the source ended after %.2f s, under the %g s minimum: nothing classified",
                            stream_id, pipeline.seconds_in, MIN_SECONDS)
            reason, flush_seconds = "end of stream", END_FLUSH_SECONDS
            log.info("stream %s: source ended; %d messages still to deliver", stream_id, publisher.undelivered)
    except BaseException as exc:
        reason = f"error: {exc}"
        raise
    finally:
        notifier.stopping()
        delivered = publisher.flush(flush_seconds)
        publisher.close(Status("offline", model_id, source.description, reason).message(prefix, stream_id),
                        GOODBYE_SECONDS)
    if not delivered:
        log.warning("stream %s: %d messages not delivered to %s", stream_id, publisher.undelivered, broker.url)
        if reason == "end of stream":
            return 1  # a finished file whose last windows never reached the broker has not done its job
    log.info("stream %s: %s", stream_id, reason)
    return 0
