"""``genrecast run``: the long-running classifier service (flags override GENRECAST_* env over the TOML file)."""

from __future__ import annotations

import argparse
import logging
import os

from genrecast.c_stderr import divert_c_stderr
from genrecast.logs import configure_logging


def register(sub) -> None:
    p = sub.add_parser("run", help="classify a live source and publish genre events over MQTT",
                       description="Classify audio continuously and publish genre events over MQTT. "
                                   "Settings: TOML file < GENRECAST_* environment < flags.")
    add_identity(p)
    add_run_settings(p)
    p.set_defaults(func=handler, flag_names=flag_names(p))


def add_run_settings(p) -> None:
    """The rest of ``run``'s settings. ``ha-cleanup`` takes them too, so that the command line ``run`` is given works
    there as it is (it reads only :func:`add_identity`'s; the rest are checked alike)."""
    from .config import LOG_LEVELS, PCM_FORMATS, SMOOTHING, RunSettings
    from .model import HEARD
    from .sources import RAW_PCM_RATE

    defaults = RunSettings()
    p.add_argument("--model", help="ONNX model (default: the bundled genrecast-gtzan.onnx)")
    p.add_argument("--qos", type=int, choices=(0, 1, 2),
                   help=f"MQTT QoS of predictions and genre messages (statuses and discovery: 1; default "
                        f"{defaults.qos})")
    p.add_argument("--speed", type=float, help="file sources: times real time, 0 = as fast as possible (default 1); "
                   "stdin and pipe: 0 = a recording, waited for and never dropped (a file redirected to stdin "
                   "always is)")
    p.add_argument("--loop", action="store_true", default=None, help="file sources: start again at the end")
    p.add_argument("--format", choices=tuple(PCM_FORMATS),
                   help=f"stdin and pipe: sample format (default {defaults.format})")
    p.add_argument("--rate", type=int, help=f"stdin and pipe: the PCM's sample rate in Hz (default {RAW_PCM_RATE}); "
                                           "mic: the rate to open the device at (default its own)")
    p.add_argument("--channels", type=int, help="stdin and pipe: interleaved channels (default 1)")
    p.add_argument("--hop", dest="hop_seconds", type=float, help="seconds between windows (default 1)")
    p.add_argument("--smoothing", choices=SMOOTHING, help=f"(default {defaults.smoothing})")
    p.add_argument("--smoothing-windows", dest="smoothing_windows", type=int, help="windows smoothed over (5)")
    p.add_argument("--silence-rms", dest="silence_rms", type=float,
                   help=f"below this RMS a window is quiet (default {defaults.silence_rms:g})")
    p.add_argument("--silence-windows", dest="silence_windows", type=int,
                   help=f"quiet windows in a row that make silence; fewer are a dip inside the sound, which holds "
                        f"(default {defaults.silence_windows})")
    p.add_argument("--min-confidence", dest="min_confidence", type=float,
                   help=f"smoothed probability to enter a genre (default {defaults.min_confidence}; the leave and "
                        "first confidences follow it unless set)")
    p.add_argument("--leave-confidence", dest="leave_confidence", type=float,
                   help=f"a genre holds until its smoothed probability drops below this "
                        f"(default {defaults.leave_confidence})")
    p.add_argument("--dwell-windows", dest="dwell_windows", type=int,
                   help=f"windows a new state must hold before it is announced (default {defaults.dwell_windows})")
    p.add_argument("--first-confidence", dest="first_confidence", type=float,
                   help=f"a stream's first window at least this sure is announced without the dwell (default "
                        f"{defaults.first_confidence}; 0: the first answer waits the dwell too)")
    p.add_argument("--music-margin", dest="music_margin", type=float,
                   help="music once heard holds until the smoothed music probability falls this far below the "
                        f"model's music threshold (default {defaults.music_margin:g}; 0: no hysteresis)")
    p.add_argument("--heard", choices=HEARD,
                   help="room: a microphone hears the music through the air; direct: the recording itself (a file, a "
                        "decoder's pipe, a radio stream); a model with a direct genre head uses it for direct audio "
                        f"(default {defaults.heard}: a mic source is a room; others are judged from the sound by a "
                        "model with a room detector, else direct)")
    p.add_argument("--ha-discovery", dest="ha_discovery", action="store_true", default=None,
                   help="announce the process and its streams to Home Assistant (MQTT discovery)")
    p.add_argument("--refresh", dest="refresh_seconds", type=float,
                   help=f"retained states are republished this often; Home Assistant expires them after 3 periods "
                        f"(default {defaults.refresh_seconds:g} s)")
    p.add_argument("--dashboard-url", dest="dashboard_url", metavar="URL",
                   help="the dashboard's address, linked from the Home Assistant devices")
    p.add_argument("--buffer-messages", dest="buffer_messages", type=int,
                   help="messages kept while the broker is unreachable (1000)")
    p.add_argument("--batch", type=int, help=f"most windows per model call (default {defaults.batch})")
    p.add_argument("--stall", dest="stall_seconds", type=float,
                   help=f"a live source with no audio this long is stalled and reopened ({defaults.stall_seconds:g} s)")
    p.add_argument("--threads", type=int, help="model calls at once (default: every usable core)")
    p.add_argument("--log-level", dest="log_level", choices=LOG_LEVELS, help=f"(default {defaults.log_level})")


def flag_names(p: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting's flag as typed (``hop_seconds`` -> ``--hop``), so a refused value names the flag the user gave.
    argparse has no public list of a parser's actions; ``_actions`` is the one every completion library reads."""
    return {a.dest: a.option_strings[0] for a in p._actions if a.option_strings and a.dest != "help"}


def add_identity(p: argparse.ArgumentParser) -> None:
    """What names the process, its streams and their topics, and where the broker is: ``run`` and ``ha-cleanup``."""
    from .config import BrokerSettings

    p.add_argument("--config", default=os.environ.get("GENRECAST_CONFIG"), metavar="TOML",
                   help="settings file (e.g. /etc/genrecast/kitchen.toml; env GENRECAST_CONFIG)")
    p.add_argument("--source", help="file:PATH | pipe:PATH (a named pipe of raw PCM) | mic | mic:DEVICE (index or "
                   "name part) | stdin (default mic)")
    p.add_argument("--stream-id", dest="stream_id", help="topic segment for this stream (default: from the source)")
    p.add_argument("--stream", dest="streams", action="append", metavar="ID=SOURCE",
                   help="one of several streams in this process (repeat it; per-stream settings: [streams.ID])")
    p.add_argument("--name", help="this process's name in <prefix>/_daemon/NAME/status (default: the stream id "
                                  "with one stream, else the host name)")
    p.add_argument("--broker", dest="broker_url", metavar="URL",
                   help=f"mqtt://host:port or mqtts://host:port (default {BrokerSettings().url})")
    p.add_argument("--username", dest="broker_username")
    p.add_argument("--password", dest="broker_password")
    p.add_argument("--ca-file", dest="broker_ca_file", help="CA certificate for mqtts://")
    p.add_argument("--prefix", help="topic prefix (default genrecast)")
    p.add_argument("--discovery-prefix", dest="discovery_prefix",
                   help="Home Assistant's MQTT discovery prefix (default homeassistant)")


def settings_from(args: argparse.Namespace, *not_settings: str):
    """The settings ``run`` (or ``ha-cleanup``, which is given the same) builds from its file, environment and flags;
    ``not_settings``: the command's own flags beside them (``--dry-run``)."""
    from .config import load_settings

    skip = {"func", "command", "config", "flag_names", *not_settings}
    flags = {k: v for k, v in vars(args).items() if k not in skip}
    return load_settings(args.config, flags, flag_names=args.flag_names)


def handler(args: argparse.Namespace) -> int:
    from .config import unused_settings
    from .service import StopRequest, install_signal_handlers, run_service

    settings = settings_from(args)
    configure_logging(settings.log_level.upper())
    divert_c_stderr()  # an MP3's decoder, PortAudio: their own lines on fd 2 are debug lines, never raw in the journal
    for line in unused_settings(settings):
        logging.getLogger("genrecast.run").warning("%s", line)  # the service's logger, as its other lines
    stop = StopRequest()
    install_signal_handlers(stop)
    return run_service(settings, stop)
