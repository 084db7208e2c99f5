"""Daemon settings from three layers: a TOML file, then ``GENRECAST_*`` environment variables, then flags.

Every key is a typed dataclass field; an unknown key or a value of the wrong type or range is refused
with the key named, so a typo in ``/etc/genrecast/kitchen.toml`` stops the service instead of being
silently ignored. The dashboard reads the same settings with :func:`load_settings` (its ``[broker]``, ``prefix``
and ``[api]``); the ``[api]`` table is the dashboard's alone, but the daemon checks it too, so one file (and one set
of ``GENRECAST_*`` variables) serves both and a mistake in it stops both.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import tomllib
import types
import typing
import unicodedata
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property

from genrecast.dsp.audio import MAX_CHANNELS, PCM_FORMATS, RATE_RANGE

from genrecast.contract import DAEMON_TOPIC
from genrecast.errors import UserError
from genrecast.paths import path_problem
from genrecast.text import listed

from .broker import KEEPALIVE_RANGE, BrokerConfig, tls_context
from .decision import MAX_MUSIC_MARGIN, SMOOTHING, DecisionConfig
from .model import HEARD
from .sources import default_stream_id

ENV_PREFIX = "GENRECAST_"
# Set by the units to the file LoadCredential= copies (/etc/genrecast/<name>.toml): a config error names that file,
# the one to edit, rather than only systemd's copy under $CREDENTIALS_DIRECTORY, which is all the daemon is given.
CONFIG_SOURCE = ENV_PREFIX + "CONFIG_SOURCE"
STREAM_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # always fullmatch: "$" would let a trailing newline through
# <prefix>/_daemon/<name>/status: the process's availability, and HA's process device _daemon_<name>: so no stream id
# may start with it
SOURCE_RE = re.compile(r"(file|pipe):.+|mic(:.*)?|stdin")
LOG_LEVELS = ("debug", "info", "warning", "error")
# most windows per model call, daemon and classify alike: musicnn's big activations make larger batches cost more per
# window (docs/daemon.md, *Scale*); with two threads classify ran 371 audio-s per s at 2, 323 at 8 (issue 19)
MODEL_BATCH = 2
SPEED_RANGE = (0.01, 1000.0)  # slower than 1/100 real time never finishes a window; 0 means as fast as possible
SOURCE_HINT = "file:PATH, pipe:PATH, mic, mic:DEVICE or stdin"
ID_HINT = "1-64 of A-Z a-z 0-9 _ -"
PREFIX_RULE = "non-empty, no + or #, no control characters, not starting with $ (the broker's), no trailing /"


class ConfigError(UserError):
    """A setting that cannot be used; the message names the key and where it came from. ``key``: the setting a
    range check refused (its message starts with it), so :func:`load_settings` can add where it was set."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key

    def set_in(self, where: str) -> ConfigError:
        """The same error, saying where its key was set: a service's user otherwise looks in the wrong place."""
        return ConfigError(f"{self.key} (from {where}){str(self)[len(self.key):]}", self.key)


def _refuse_bad(settings: object, checks: Mapping[str, tuple[bool, str]]) -> None:
    """``checks``: key -> (its value is good, what is allowed); the first bad key is refused with both named."""
    for key, (ok, allowed) in checks.items():
        if not ok:
            raise ConfigError(f"{key}: bad value {getattr(settings, key)!r} ({allowed})", key)


def valid_hop(seconds: float) -> bool:
    """Seconds between windows, for ``run`` and ``classify`` alike: (0, 60]; NaN and infinity fail."""
    return 0 < seconds <= 60


def valid_prefix(prefix: object) -> bool:
    """A topic prefix both the daemon and the dashboard accept: MQTT wildcards would break subscriptions, a control
    character makes the broker drop the whole connection as malformed, and topics under $ (such as $SYS) are the
    broker's own, where what we publish is lost."""
    return (isinstance(prefix, str) and bool(prefix) and not any(c in prefix for c in "+#")
            and not prefix.endswith("/") and not prefix.startswith("$")
            and not any(unicodedata.category(c) == "Cc" for c in prefix))


def valid_threads(n: int) -> bool:
    """Model calls at once (:mod:`daemon.inference`), for ``run`` and ``classify`` alike."""
    return 1 <= n <= 64


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container or systemd's CPUAffinity= narrows it), at
    most 64: the default for ``threads``."""
    return min(64, len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class BrokerSettings:
    """The ``[broker]`` table (env ``GENRECAST_BROKER_*``)."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    keepalive: int = 30

    def check(self) -> None:
        try:
            broker = self.to_broker()
        except ValueError as exc:
            raise ConfigError(f"broker.url: {exc}", "broker.url") from None
        if broker.password and not broker.username:  # MQTT sends a password only with a user name: it was dropped
            raise ConfigError("broker.password: given without a username (set broker.username, or the URL's "
                              "user@)", "broker.password")
        low, high = KEEPALIVE_RANGE
        if not low <= self.keepalive <= high:
            raise ConfigError(f"broker.keepalive: must be {low} to {high} seconds, got {self.keepalive}",
                              "broker.keepalive")
        if self.ca_file is not None:
            if not broker.tls:  # it would be read by nothing: the password sent in the clear by one who thinks not
                raise ConfigError(f"broker.ca_file: set, but the broker URL {broker.url} is not TLS: use mqtts:// to "
                                  "connect over TLS with this CA, or leave ca_file out", "broker.ca_file")
            if problem := path_problem(self.ca_file, "CA file"):
                raise ConfigError(f"broker.ca_file: {self.ca_file!r}: {problem}", "broker.ca_file")
            try:
                tls_context(self.ca_file)
            except OSError as exc:  # ssl.SSLError is an OSError: not PEM, or no certificate in it
                reason = getattr(exc, "reason", None) or exc.strerror or exc
                raise ConfigError(f"broker.ca_file: {self.ca_file} is not a usable CA certificate ({reason})",
                                  "broker.ca_file") from None

    def to_broker(self) -> BrokerConfig:
        return BrokerConfig.from_url(
            self.url, username=self.username, password=self.password, ca_file=self.ca_file, keepalive=self.keepalive
        )


@dataclass(frozen=True)
class ApiSettings:
    """The ``[api]`` table (env ``GENRECAST_API_*``): the dashboard's HTTP API; the daemon only checks it."""

    token: str | None = field(default=None, repr=False)  # the page's and the API's; never logged, never repr'd
    max_mb: float = 50.0  # largest request body for POST /api/v1/classify, in MB (10^6 bytes)
    allow_open: bool = False  # serve beyond loopback without a token (the dashboard refuses to, otherwise)

    def check(self) -> None:
        if self.token is not None and not valid_token(self.token):
            raise ConfigError(f"api.token: {TOKEN_RULE}", "api.token")  # the value itself is a secret: never echoed
        if not 0 < self.max_mb <= 10_000:
            raise ConfigError(f"api.max_mb: must be more than 0 and at most 10000, got {self.max_mb}", "api.max_mb")


TOKEN_RULE = "must be 16 to 512 printable ASCII characters without spaces"


def valid_token(token: str) -> bool:
    """Long enough to resist guessing, and sendable as an HTTP ``Authorization: Bearer`` value."""
    return 16 <= len(token) <= 512 and all("!" <= c <= "~" for c in token)


@dataclass(frozen=True)
class StreamDefaults:
    """The settings that may differ per stream, with their defaults: the top-level keys of the TOML file (every
    stream's defaults, :class:`RunSettings`) and the keys a ``[streams.<id>]`` table may override them with."""

    speed: float = 1.0  # file sources: times real time, 0 = as fast as possible
    loop: bool = False
    format: str = "s16le"  # stdin and pipe sources
    # stdin and pipe: the raw PCM's rate (None: sources.RAW_PCM_RATE); mic: the rate it is opened at (None: its own)
    rate: int | None = None
    channels: int = 1
    hop_seconds: float = 1.0
    smoothing: str = SMOOTHING[0]
    smoothing_windows: int = DecisionConfig.windows
    silence_rms: float = DecisionConfig.silence_rms
    silence_windows: int = DecisionConfig.silence_windows  # quiet windows in a row that end a sound
    min_confidence: float = DecisionConfig.min_confidence
    leave_confidence: float = DecisionConfig.leave_confidence
    dwell_windows: int = DecisionConfig.dwell_windows
    first_confidence: float = DecisionConfig.first_confidence  # a first window this sure skips the dwell; 0: never
    music_margin: float = DecisionConfig.music_margin  # music is held this far below the model's music threshold
    area: str | None = None  # Home Assistant's suggested area for the stream's device ("Kitchen")
    # how the audio reaches us: "room" (a microphone hears a loudspeaker through the air), "direct" (the recording
    # itself: a file, a pipe from a decoder, a radio stream), "auto" (a microphone source is a room; others are judged
    # from the sound by a model with a room detector, else direct); a model with a direct genre head uses it for
    # direct audio (the card measures both heads and the detector)
    heard: str = "auto"

    def decision(self) -> DecisionConfig:
        return DecisionConfig(smoothing=self.smoothing, windows=self.smoothing_windows, silence_rms=self.silence_rms,
                              silence_windows=self.silence_windows, min_confidence=self.min_confidence,
                              leave_confidence=self.leave_confidence, dwell_windows=self.dwell_windows,
                              first_confidence=self.first_confidence or None, music_margin=self.music_margin)

    def confidences_following(self, unset: Collection[str]):
        """``leave_confidence`` and ``first_confidence``, where ``unset`` names them (no one set them), their
        defaults kept in step with ``min_confidence``: at most it, and at least it. `--min-confidence 0.7` alone was
        refused, for a ``first_confidence`` of 0.6 that no one had set; a value someone set is never changed."""
        follow = {}
        if "leave_confidence" in unset:
            follow["leave_confidence"] = min(DecisionConfig.leave_confidence, self.min_confidence)
        if "first_confidence" in unset:
            follow["first_confidence"] = max(DecisionConfig.first_confidence, self.min_confidence)
        return replace(self, **follow)


FOLLOW_MIN_CONFIDENCE = frozenset({"leave_confidence", "first_confidence"})


PER_STREAM = tuple(f.name for f in fields(StreamDefaults))


@dataclass(frozen=True, kw_only=True)
class StreamSettings(StreamDefaults):
    """One stream: its id and source, and its per-stream settings (the defaults, overridden by its table)."""

    stream_id: str
    source: str

    @property
    def recorded(self) -> bool:
        """Whether the source is anything but a microphone, what ``heard = "auto"`` goes by
        (:func:`genrecast.daemon.model.genre_head`)."""
        return self.source.partition(":")[0] != "mic"

    def check(self) -> None:
        """Range checks the types alone cannot express."""
        _refuse_bad(self, {
            "stream_id": (STREAM_ID_RE.fullmatch(self.stream_id) is not None
                          and not self.stream_id.startswith(DAEMON_TOPIC), f"{ID_HINT}, not starting {DAEMON_TOPIC}"),
            "source": (SOURCE_RE.fullmatch(self.source) is not None, SOURCE_HINT),
            "speed": (self.speed == 0 or SPEED_RANGE[0] <= self.speed <= SPEED_RANGE[1],
                      f"0 (as fast as possible) or {SPEED_RANGE[0]:g} to {SPEED_RANGE[1]:g} times real time"),
            "format": (self.format in PCM_FORMATS, " or ".join(PCM_FORMATS)),
            "rate": (self.rate is None or RATE_RANGE[0] <= self.rate <= RATE_RANGE[1],
                     f"{RATE_RANGE[0]} to {RATE_RANGE[1]} Hz"),
            "channels": (1 <= self.channels <= MAX_CHANNELS, f"1 to {MAX_CHANNELS}"),
            "hop_seconds": (valid_hop(self.hop_seconds), "more than 0, at most 60 seconds"),
            "smoothing": (self.smoothing in SMOOTHING, " or ".join(SMOOTHING)),
            "smoothing_windows": (1 <= self.smoothing_windows <= 1000, "1 to 1000"),
            "silence_rms": (0 <= self.silence_rms < 1, "0 to less than 1"),
            "silence_windows": (1 <= self.silence_windows <= 1000, "1 to 1000"),
            "min_confidence": (0 <= self.min_confidence <= 1, "0 to 1"),
            "leave_confidence": (0 <= self.leave_confidence <= self.min_confidence,
                                 f"0 to min_confidence ({self.min_confidence}): a genre is left below it, so a "
                                 "lower min_confidence needs a leave_confidence as low"),
            "dwell_windows": (1 <= self.dwell_windows <= 1000, "1 to 1000"),
            "first_confidence": (self.first_confidence == 0 or self.min_confidence <= self.first_confidence <= 1,
                                 f"0 (off) or min_confidence ({self.min_confidence}) to 1: a first answer this sure "
                                 "skips the dwell, so a higher min_confidence needs a first_confidence as high, "
                                 "or 0"),
            "music_margin": (0 <= self.music_margin <= MAX_MUSIC_MARGIN, f"0 to {MAX_MUSIC_MARGIN}"),
            "area": (self.area is None or 0 < len(self.area.strip()) <= 100, "1-100 characters"),
            "heard": (self.heard in HEARD, " or ".join(HEARD)),
        })


@dataclass(frozen=True)
class RunSettings(StreamDefaults):
    """Top-level keys of the daemon's TOML file (env ``GENRECAST_<KEY>``, flag ``--<key>``).

    The per-stream keys (:class:`StreamDefaults`, :data:`PER_STREAM`) here are every stream's defaults; a
    ``[streams.<id>]`` table overrides them for its stream. Without ``streams``, ``source`` and ``stream_id``
    describe the one stream.
    """

    source: str | None = None  # the one-stream shorthand; "mic" when no stream is configured at all
    stream_id: str | None = None  # derived from the source when unset
    streams: dict = field(default_factory=dict)  # id -> {"source": ..., per-stream keys}
    name: str | None = None  # the process's name in <prefix>/_daemon/<name>/status (default: see daemon_name)
    model: str | None = None  # the bundled default model when unset
    prefix: str = "genrecast"
    qos: int = 1
    ha_discovery: bool = False
    discovery_prefix: str = "homeassistant"  # Home Assistant's MQTT discovery prefix (its MQTT settings)
    refresh_seconds: float = 10.0  # retained states republished this often; HA expires them after 3 periods
    dashboard_url: str | None = None  # the dashboard's address, as Home Assistant's link to configure the devices
    buffer_messages: int = 1000  # kept while the broker is unreachable; oldest dropped beyond this
    batch: int = MODEL_BATCH
    tick_seconds: float = 0.05  # windows of all streams ready within a tick share one model call
    backlog_seconds: float = 10.0  # audio a stream may hold unprocessed; its oldest is dropped beyond this
    stall_seconds: float = 10.0  # a live source silent (no audio at all) this long is marked stalled and reopened
    threads: int = field(default_factory=usable_cores)  # model calls at once (default: every usable core)
    log_level: str = "info"
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)  # not used by the daemon; see ApiSettings
    # Not a setting: each key the file, environment or flags set (load_settings) -> where ("file X", "env", "--hop"):
    # a stream's table may not move them (see confidences_following), and a check made once the model is known
    # names where a refused value came from. ``streams.<id>``: a stream that --stream gave (its id and source).
    set_in: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False, metadata={"setting": False})

    @property
    def set_keys(self) -> frozenset:
        return frozenset(self.set_in)

    def check(self) -> None:
        """Range checks the types alone cannot express."""
        _refuse_bad(self, {
            "source": (self.source is None or SOURCE_RE.fullmatch(self.source) is not None, SOURCE_HINT),
            "stream_id": (self.stream_id is None or STREAM_ID_RE.fullmatch(self.stream_id) is not None, ID_HINT),
            "name": (self.name is None or STREAM_ID_RE.fullmatch(self.name) is not None, ID_HINT),
            "prefix": (valid_prefix(self.prefix), PREFIX_RULE),
            "discovery_prefix": (valid_prefix(self.discovery_prefix), PREFIX_RULE),
            "refresh_seconds": (1 <= self.refresh_seconds <= 3600, "1 to 3600 seconds"),
            "dashboard_url": (self.dashboard_url is None
                              or re.match(r"^https?://[^\s/]+(/\S*)?$", self.dashboard_url) is not None,
                              "http://host[:port][/path] or https://..."),
            "qos": (self.qos in (0, 1, 2), "0, 1 or 2"),
            "buffer_messages": (1 <= self.buffer_messages <= 1_000_000, "1 to 1000000"),
            "batch": (1 <= self.batch <= 4096, "1 to 4096 windows"),
            "tick_seconds": (0.001 <= self.tick_seconds <= 1, "0.001 to 1 seconds"),
            "backlog_seconds": (1 <= self.backlog_seconds <= 3600, "1 to 3600 seconds"),
            "stall_seconds": (1 <= self.stall_seconds <= 3600, "1 to 3600 seconds"),
            "threads": (valid_threads(self.threads), "1 to 64"),
            "log_level": (self.log_level in LOG_LEVELS, " or ".join(LOG_LEVELS)),
        })
        self.broker.check()
        self.api.check()
        streams = self.stream_settings()
        if self.ha_discovery:
            _refuse_lookalikes([s.stream_id for s in streams], self.daemon_name())

    def stream_settings(self) -> list[StreamSettings]:
        """Every stream, its table laid over the top-level defaults; refuses mixing the forms and a second stdin."""
        return list(self._stream_settings)

    @cached_property
    def _stream_settings(self) -> tuple[StreamSettings, ...]:
        """Worked out once: the start reads it five times (80 ms each with 500 streams); settings never change."""
        if self.streams and (self.source is not None or self.stream_id is not None):
            # named as typed too: a user of --source and --stream saw only the config's keys
            raise ConfigError("source/stream_id (--source, --stream-id) and streams (--stream, [streams.<id>]): use "
                              "one form (several streams need streams only)")
        defaults = {k: getattr(self, k) for k in PER_STREAM}
        if not self.streams:
            source = self.source or "mic"
            tables = {self.stream_id or default_stream_id(source): {"source": source}}
        else:
            tables = self.streams
        # where the tables were set, for their errors: the file (its name); a table's id and source may be --stream's
        where = self._origin("streams")
        out = []
        for stream_id, table in tables.items():
            name = f"streams.{stream_id}"
            named = self._origin(name) or where
            if not isinstance(table, Mapping):
                raise ConfigError(f"{name}{where}: expected a table")
            if "source" not in table:
                raise ConfigError(f"{name}{where}: no source")
            if "stream_id" in table:  # it used to be dropped in silence
                raise ConfigError(f"{name}.stream_id{where}: not a per-stream setting (the table's name, "
                                  f"{stream_id!r}, is the stream's id)")
            process_wide = sorted(set(table) & TOP_LEVEL - set(PER_STREAM) - {"source"})
            if process_wide:
                raise ConfigError(f"{name}.{process_wide[0]}{where}: not a per-stream setting (it is the "
                                  "process's: set it at the top level)")
            unknown = sorted(set(table) - TOP_LEVEL)
            if unknown:
                raise ConfigError(f"{name}.{unknown[0]}{where}: unknown setting"
                                  f"{_did_you_mean(unknown[0], {'source', *PER_STREAM}, f'{name}.')} (a "
                                  f"[streams.<id>] table takes source and {', '.join(PER_STREAM)})")
            base = StreamSettings(stream_id=str(stream_id), source="mic", **defaults)
            stream = _apply(base, table, self.set_in.get("streams", "config file"), scope=f"{name}.")  # the file's
            if "min_confidence" in table:  # the stream's own: what no one set, here or at the top, follows it
                stream = stream.confidences_following(FOLLOW_MIN_CONFIDENCE - set(table) - self.set_keys)
            try:
                stream.check()
            except ConfigError as exc:
                if exc.key == "stream_id" and self.streams:  # the table's name: it said only "stream_id: bad value"
                    raise ConfigError(f"{name}{named}: the table's name is the stream's id: {exc}") from None
                if not self.streams or not (exc.key in table or (exc.key in FOLLOW_MIN_CONFIDENCE
                                                                  and "min_confidence" in table)):
                    raise  # a top-level key (every stream's default): load_settings says where it was set
                # the table's own value, or a default at odds with the table's min_confidence: its own origin
                origin = named if exc.key == "source" else where if exc.key in table else self._origin(exc.key)
                rest = str(exc)[len(exc.key):] if exc.key and str(exc).startswith(exc.key) else f": {exc}"
                raise ConfigError(f"{name}.{exc.key}{origin}{rest}") from None
            out.append(stream)
        if sum(s.source == "stdin" for s in out) > 1:
            raise ConfigError("streams: at most one stream may read stdin (pipe:PATH reads a named pipe, as many as "
                              "you like)")
        pipes = Counter(os.path.realpath(s.source[5:]) for s in out if s.source.startswith("pipe:"))
        if twice := [path for path, n in pipes.items() if n > 1]:  # two readers would take turns at its bytes
            raise ConfigError(f"streams: pipe:{twice[0]} is read by {pipes[twice[0]]} streams; a pipe feeds one")
        return tuple(out)

    def _origin(self, key: str) -> str:
        """`` (from <where>)`` for a key someone set, else ``""``."""
        return f" (from {self.set_in[key]})" if key in self.set_in else ""

    def daemon_name(self) -> str:
        """``name``, else the only stream's id (a one-stream process per instance), else the host's name."""
        if self.name:
            return self.name
        streams = self.stream_settings()
        if len(streams) == 1:
            return streams[0].stream_id
        import socket

        return re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname())[:64].strip("-") or "genrecast"


def _setting_names(cls) -> list[str]:
    """A settings dataclass's keys: its fields but those marked ``setting: False`` (RunSettings.set_in)."""
    return [f.name for f in fields(cls) if f.metadata.get("setting", True)]


SOURCE_ONLY = {"format": ("stdin", "pipe"), "rate": ("stdin", "pipe", "mic"), "channels": ("stdin", "pipe"),
               "loop": ("file",), "speed": ("file", "stdin", "pipe")}  # settings that only these kinds of source read


def unused_settings(settings: RunSettings) -> list[str]:
    """Settings someone set that no stream of these reads (`--rate` with a file source), one line each: they were
    taken in silence and changed nothing."""
    kinds = {s.stream_id: s.source.partition(":")[0] for s in settings.stream_settings()}
    lines = [f"{key}: set, but only {listed(wanted)} sources read it and no stream here is one: not used"
             for key, wanted in SOURCE_ONLY.items()
             if key in settings.set_keys and not set(kinds.values()) & set(wanted)]
    for stream_id, kind in kinds.items():
        table = settings.streams.get(stream_id, {})
        lines += [f"streams.{stream_id}.{key}: set, but only {listed(wanted)} sources read it and this "
                  f"one is {kind}: not used"
                  for key, wanted in SOURCE_ONLY.items() if key in table and kind not in wanted]
    # a pipe is not paced: its speed only tells a recording (0) from a live pipe
    paced = {s.stream_id: (s.speed, kinds[s.stream_id]) for s in settings.stream_settings()
             if kinds[s.stream_id] in ("stdin", "pipe") and s.speed not in (0, 1)}
    for stream_id, (speed, kind) in paced.items():
        key = f"streams.{stream_id}.speed" if "speed" in settings.streams.get(stream_id, {}) else "speed"
        lines.append(f"{key}: {speed:g} for {kind}, which is not paced: 0 waits for the model (a recording), any "
                     "other speed reads a pipe live" + (" (a file redirected to stdin is always waited for)"
                                                         if kind == "stdin" else ""))
    return lines


# the keys a file's top level, or GENRECAST_<KEY>, sets
TOP_LEVEL = frozenset(_setting_names(RunSettings))


def parse_stream_flag(text: str) -> tuple[str, str]:
    """``--stream kitchen=mic:USB`` -> ``("kitchen", "mic:USB")``."""
    stream_id, sep, source = text.partition("=")
    if not sep or not stream_id or not source:
        raise ConfigError(f"--stream: expected ID=SOURCE, got {text!r}")
    return stream_id, source


def _coerce(key: str, value: object, hint: object, origin: str) -> object:
    """A TOML value or an environment string -> the field's type, or a ConfigError naming ``key``."""
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = next(t for t in typing.get_args(hint) if t is not type(None)) if optional else hint
    if isinstance(value, str) and origin == "env":
        if optional and value == "":
            return None
        try:
            if base is bool:
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes", "on")
            return base(value)
        except ValueError:
            raise ConfigError(f"{key} (from {origin}): expected {base.__name__}, got {value!r}") from None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)  # TOML's true, not Python's True
        raise ConfigError(f"{key} (from {origin}): expected {base.__name__}, got {shown}")
    return value


def _did_you_mean(key: str, known: set[str], scope: str) -> str:
    """The key a user likely meant: a flag's name is not always its key (``--hop`` sets ``hop_seconds``)."""
    close = [k for k in sorted(known) if k.startswith(f"{key}_")] or difflib.get_close_matches(key, known, 1)
    return f"; did you mean {scope + close[0]!r}?" if close else ""


def _apply(settings, values: Mapping[str, object], origin: str, scope: str = ""):
    """Overlay ``values`` onto a settings dataclass, refusing unknown keys."""
    hints = typing.get_type_hints(type(settings))
    known = set(_setting_names(settings))
    changes = {}
    for key, value in values.items():
        name = f"{scope}{key}"
        if key not in known:
            hint = _did_you_mean(key, known, scope)
            if "file" in origin and scope in (f"{t}." for t in TABLES) and key in TOP_LEVEL:  # below [api]
                hint = (f"; {key!r} is a top-level setting: in TOML a key belongs to the [table] above it, so put it "
                        "above the file's first table")
            raise ConfigError(f"unknown setting {name!r} (from {origin}){hint}")
        if key == "streams":
            if not isinstance(value, Mapping) or not all(isinstance(t, Mapping) for t in value.values()):
                raise ConfigError(f"{name} (from {origin}): expected tables [streams.<id>]")
            if not value:  # an empty [streams] used to fall back to the microphone
                raise ConfigError(f"{name} (from {origin}): no [streams.<id>] table in it; give one per stream")
            changes[key] = {**settings.streams, **{str(k): dict(t) for k, t in value.items()}}
        elif hints[key] in TABLES.values():
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name} (from {origin}): expected a table")
            changes[key] = _apply(getattr(settings, key), value, origin, scope=f"{key}.")
        else:
            changes[key] = _coerce(name, value, hints[key], origin)
    return replace(settings, **changes)


def config_name(path: str | os.PathLike, environ: Mapping[str, str]) -> str:
    """How a config file is named in errors: as given, or, for systemd's credential copy of it, as the file the unit
    copies (:data:`CONFIG_SOURCE`), the copy beside it."""
    source, credentials = environ.get(CONFIG_SOURCE), environ.get("CREDENTIALS_DIRECTORY")
    if source and credentials and os.path.dirname(os.path.abspath(path)) == os.path.abspath(credentials):
        return f"{source} (systemd's copy: {os.fspath(path)})"
    return os.fspath(path)


def read_toml(path: str | os.PathLike | None, name: str | None = None) -> dict:
    """``path``'s settings; errors call it ``name`` (:func:`config_name`), or ``path``."""
    if path is None:
        return {}
    if not os.fspath(path):
        raise ConfigError("config file: the path is empty (GENRECAST_CONFIG set to nothing?); unset it for no file")
    name = name or os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
        # Windows' Notepad saves UTF-8 with a byte-order mark, which TOML refuses
        return tomllib.loads(data.removeprefix(codecs.BOM_UTF8).decode())
    except FileNotFoundError:
        raise ConfigError(f"config file {name}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {name}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        at = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
        raise ConfigError(f"config file {name}: not UTF-8 text ({exc.reason} at byte {at})") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise ConfigError(f"config file {name}: cannot read ({exc.strerror or exc})") from None


TABLES = {"broker": BrokerSettings, "api": ApiSettings}  # TOML tables: ``[name]``, env ``GENRECAST_<NAME>_<KEY>``


def env_values(environ: Mapping[str, str]) -> dict:
    """``GENRECAST_HOP_SECONDS`` -> ``{"hop_seconds": "1.5"}``; ``GENRECAST_BROKER_URL`` -> ``{"broker": {...}}``."""
    out: dict = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in (ENV_PREFIX + "CONFIG", CONFIG_SOURCE):
            continue
        if name == ENV_PREFIX + "API_TOKEN" and not value:  # a secret set empty is a mistake, not "no token"
            raise ConfigError(f"api.token (from env): {name} is set but empty; unset it for no token")
        key = name[len(ENV_PREFIX) :].lower()
        table = next((t for t, cls in TABLES.items() if key.startswith(f"{t}_")
                      and key[len(t) + 1 :] in {f.name for f in fields(cls)}), None)
        if table:
            out.setdefault(table, {})[key[len(table) + 1 :]] = value
        elif key in TABLES or key not in TOP_LEVEL:  # a table's keys are a variable each, never the table whole
            raise ConfigError(f"{name} (from env): no such setting; " + _env_names(key.split("_", 1)[0]))
        else:
            out[key] = value
    return out


def _env_names(table: str) -> str:
    """The variables a table's keys are set by, for a message about a misspelt one."""
    if table in TABLES:
        return f"[{table}] takes " + ", ".join(f"{ENV_PREFIX}{table}_{f.name}".upper() for f in fields(TABLES[table]))
    return f"a top-level key is {ENV_PREFIX}<KEY>, such as {ENV_PREFIX}HOP_SECONDS"


def load_settings(
    path: str | os.PathLike | None = None,
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> RunSettings:
    """Defaults < TOML file < ``GENRECAST_*`` environment < flags (``None`` flags are not given). ``flag_names``: a
    flag's dest -> the flag as typed (``--hop``), for saying where a refused value came from."""
    environ = os.environ if environ is None else environ
    name = None if path is None else config_name(path, environ)
    file_values, env = read_toml(path, name), env_values(environ)
    settings = _apply(RunSettings(), file_values, f"file {name}")
    settings = _apply(settings, env, "env")
    set_in = {**dict.fromkeys(_keys(file_values), f"file {name}"), **dict.fromkeys(_keys(env), "env")}
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    names, from_flag = flag_names or {}, {}
    broker_flags = {k: given.pop(f"broker_{k}") for k in ("url", "username", "password", "ca_file")
                    if f"broker_{k}" in given}
    if broker_flags:
        given["broker"] = broker_flags
    if "streams" in given:  # --stream ID=SOURCE, repeated: added to the file's streams, replacing an id's source
        pairs = [parse_stream_flag(t) for t in given.pop("streams")]
        twice = sorted(i for i, n in Counter(i for i, _ in pairs).items() if n > 1)
        if twice:
            raise ConfigError(f"--stream: the same stream id given twice: {', '.join(twice)}")
        given["streams"] = {i: {**settings.streams.get(i, {}), "source": src} for i, src in pairs}
        from_flag = {f"streams.{i}": names.get("streams", "flags") for i, _ in pairs}  # their sources
    settings = _apply(settings, given, "flags")
    # --stream names sources only: a table's other keys (hop_seconds, ...) stay the file's
    set_in.update({k: names.get(k.replace(".", "_"), "flags") for k in _keys(given)
                   if k != "streams" or k not in set_in})
    set_in.update(from_flag)
    settings = replace(settings.confidences_following(FOLLOW_MIN_CONFIDENCE - set(set_in)), set_in=set_in)
    try:
        settings.check()
    except ConfigError as exc:
        if exc.key in set_in:
            raise exc.set_in(set_in[exc.key]) from None
        raise
    return settings


def _refuse_lookalikes(stream_ids: list[str], daemon: str) -> None:
    """Home Assistant names a device, and makes its entities' ids, from the readable name (``living-room`` and
    ``living_room`` are both "Genrecast Living Room"): the second stream's entities would take ``_2`` ids, one
    device indistinguishable from the other on every card. The process's own device counts too (stream
    ``den-daemon`` beside process ``den``: both have a Status entity)."""
    from .ha_discovery import display_name, process_display_name

    seen = {process_display_name(daemon).lower(): f"the process {daemon}"}  # readable name -> whose
    for sid in stream_ids:
        if (other := seen.setdefault(display_name(sid).lower(), f"stream {sid}")) != f"stream {sid}":
            raise ConfigError(f"{other} and stream {sid} read the same in Home Assistant ({display_name(sid)!r}): "
                              "rename one")


def _keys(values: Mapping[str, object]) -> list[str]:
    """The settings one layer sets, a table's as ``broker.url``."""
    return [f"{k}.{t}" if k in TABLES else k for k, v in values.items()
            for t in (v if k in TABLES and isinstance(v, Mapping) else (None,))]
