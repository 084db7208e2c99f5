"""``genrecast dashboard``: serve the live page, fed by the daemon's MQTT topics."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from genrecast.daemon.broker import BrokerConfig
from genrecast.daemon.config import (
    TOKEN_RULE,
    ApiSettings,
    RunSettings,
    load_settings,
    valid_token,
)

from genrecast.c_stderr import divert_c_stderr
from genrecast.errors import UserError
from genrecast.logs import configure_logging

from .guard import is_loopback

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve the live dashboard in the browser",
        description="Serve a page showing every stream's genre live, fed by the daemon's MQTT messages.",
    )
    p.add_argument("--broker", metavar="URL", help="mqtt://[user:pass@]host:port or mqtts://... (default: config)")
    p.add_argument("--host", type=host_flag, default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1, this machine only; 0.0.0.0 or '' every interface)")
    p.add_argument("--port", type=port_number, default=8050, help="port to serve on (default 8050)")
    p.add_argument("--allow-host", type=host_name_flag, action="append", default=[], metavar="NAME",
                   help="a host name the page may be reached by, besides --host and localhost (repeatable)")
    p.add_argument("--prefix", help=f"MQTT topic prefix (default: $GENRECAST_PREFIX, config, {RunSettings.prefix})")
    p.add_argument("--config", default=os.environ.get("GENRECAST_CONFIG"), metavar="PATH",
                   help="the daemon's TOML config (env GENRECAST_CONFIG), checked whole; its [broker], prefix, "
                        "[api], model and hop_seconds are used")
    p.add_argument("--model", metavar="PATH",
                   help="ONNX model for checking files (default: the config's model, else the bundled one)")
    p.add_argument("--api-token", metavar="TOKEN",
                   help="the token the page (a login form) and the HTTP API (a bearer token) require (default: "
                        "$GENRECAST_API_TOKEN, config [api] token, none); prefer those two: a flag shows in the "
                        "process list")
    p.add_argument("--allow-open", action="store_true", default=None,
                   help="serve on an address other than loopback without a token (default: config [api] "
                        "allow_open, refused): anyone who can reach it may use the page and the API")
    p.add_argument("--api-max-mb", type=float, metavar="MB",
                   help="largest upload to POST /api/v1/classify (default: config [api] max_mb, 50)")
    p.set_defaults(func=run)


def host_flag(text: str) -> str:
    """An address to bind: '' is every interface (as for waitress), anything else one name or address."""
    if any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"expected an address or host name without spaces ('' for every "
                                         f"interface), got {text!r}")
    return text


def host_name_flag(text: str) -> str:
    """A name the page may be reached by: one word, as a ``Host`` header carries it (a blank or spaced name would
    never match a request, so it is refused rather than ignored)."""
    if not text or any(c.isspace() or c in "/?#@" for c in text):
        raise argparse.ArgumentTypeError(f"expected a host name as a browser sends it (kitchen.local), got {text!r}")
    return text


MODEL_CHECK = """import sys
from genrecast.daemon.model import load_model
from genrecast.dsp import ModelSpecError
from genrecast.errors import one_line
try:
    load_model(sys.argv[1])
except ModelSpecError as exc:
    sys.exit(one_line(exc))
"""


def check_model(path: str) -> None:
    """Load ``path`` once in a child process, so a file that is not a model stops the start in one line, while this
    process loads onnxruntime (35 MB) and the model only on the first upload."""
    from genrecast.daemon.model import model_file

    model_file(path)  # a missing file or a folder is said without starting a process
    proc = subprocess.run([sys.executable, "-c", MODEL_CHECK, path], capture_output=True, text=True)
    if proc.returncode != 0:  # the last line: the one-line reason, or a crash's last traceback line
        lines = proc.stderr.strip().splitlines()
        raise UserError(lines[-1] if lines else f"model {path}: its check exited {proc.returncode}")


def port_number(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(text)
    return port


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard takes from the daemon's settings, its own flags laid over them."""

    broker: BrokerConfig
    prefix: str
    api: ApiSettings
    model: str | None = None  # the daemon's (None: the bundled default), for checking files as it would
    hop_seconds: float = 1.0  # the daemon's default hop, likewise


def dashboard_settings(config_path: str | None = None, *, broker: str | None = None, prefix: str | None = None,
                       api_token: str | None = None, api_max_mb: float | None = None,
                       allow_open: bool | None = None, environ: Mapping[str, str] | None = None) -> DashboardSettings:
    """The daemon's settings (file < ``GENRECAST_*``), read and checked whole as ``genrecast run`` checks them, so a
    file or variable the daemon refuses stops the dashboard too; then the flags.

    Credentials written in the ``--broker`` URL win; otherwise the config's apply to the given URL too.
    """
    # a flag mends a bad variable, as for run
    settings = load_settings(config_path, {"prefix": prefix}, environ, flag_names={"prefix": "--prefix"})
    conf = settings.broker.to_broker()
    if broker is not None:
        try:
            given = BrokerConfig.from_url(broker)
        except ValueError as exc:
            raise UserError(f"--broker: {exc}") from None
        if conf.ca_file and not given.tls:  # the config's CA unread, its password sent in the clear (run refuses it)
            raise UserError(f"--broker: {given.url} is not TLS, but the config sets broker.ca_file: use mqtts://")
        if given.username is None:
            given = replace(given, username=conf.username, password=conf.password)
        conf = replace(given, ca_file=conf.ca_file, keepalive=conf.keepalive)
    api = settings.api
    if allow_open is not None:
        api = replace(api, allow_open=allow_open)
    if api_token is not None:
        if not valid_token(api_token):
            raise UserError(f"--api-token: {TOKEN_RULE}")  # never echo the value: it is a secret
        api = replace(api, token=api_token)
    if api_max_mb is not None:
        api = replace(api, max_mb=api_max_mb)
        api.check()
    return DashboardSettings(conf, settings.prefix, api, settings.model, settings.hop_seconds)


def return_freed_memory() -> None:
    """Have glibc hand blocks over 1 MiB back to the system when freed. By default it raises its mmap threshold
    after such a block is freed (up to 32 MiB), so the next upload-sized buffers come from the heap and stay
    resident after the upload: the page's RSS then grew with each burst of uploads (616 -> 706 MB in two)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: its allocator has its own rules
    libc.mallopt(M_MMAP_THRESHOLD, 2**20)  # setting it also stops the dynamic adjustment


def run(args: argparse.Namespace) -> int:
    from .app import create_app, make_server  # Dash is slow to import; only this command needs it
    from .feed import Feed
    from .history import History
    from .offline import OfflineClassifier

    configure_logging(logging.INFO)
    return_freed_memory()
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" at every burst of polls
    settings = dashboard_settings(args.config, broker=args.broker, prefix=args.prefix, api_token=args.api_token,
                                  api_max_mb=args.api_max_mb, allow_open=args.allow_open)
    broker, prefix, api = settings.broker, settings.prefix, settings.api
    if not api.token and not api.allow_open and not is_loopback(args.host):
        where = args.host or "every interface"
        raise UserError(f"serving on {where} without a token would let anyone who can reach it use the page and the "
                        "API: set GENRECAST_API_TOKEN (or [api] token), or pass --allow-open")
    # On loopback behind a reverse proxy, --allow-host names what the network asks for: the proxy opens the page
    # to it, so the same rule holds (before, that set-up, as docs/deployment.md described it, served everyone).
    remote = [h for h in args.allow_host if not is_loopback(h)]
    if remote and not api.token and not api.allow_open:
        raise UserError(f"answering to {remote[0]} (--allow-host) without a token would let anyone who reaches the "
                        "proxy in front use the page and the API: set GENRECAST_API_TOKEN (or [api] token), or pass "
                        "--allow-open")
    # the file check answers as the daemon would: its model (a config's streams on the fast one got the default's
    # answers on the page) and its hop
    model = args.model if args.model is not None else settings.model
    if model is not None:  # after the settings: their checks are cheaper than a child process
        check_model(model)
    divert_c_stderr()  # an uploaded MP3's decoder prints on fd 2
    history = History()
    feed = Feed(broker, prefix, history)
    # systemd's StateDirectory= (the unit's): logged-out sessions stay ended across restarts
    state = os.environ.get("STATE_DIRECTORY")
    offline = OfflineClassifier(model, settings.hop_seconds)
    app = create_app(history, feed, offline, api, state_dir=Path(state) if state else None)
    host = f"[{args.host}]" if ":" in args.host else args.host
    try:
        server = make_server(app, args.host, args.port, tuple(args.allow_host))
    except OSError as exc:
        raise UserError(f"cannot serve on {host}:{args.port}: {exc.strerror or exc}") from None
    feed.start()
    guard = "page and API need the token" if api.token else "open, no token"
    print(f"genrecast dashboard: http://{host}:{server.port}/ (broker {broker.url}, prefix {prefix}; {guard})",
          flush=True)
    if not api.token and (not is_loopback(args.host) or remote):
        logging.getLogger(__name__).warning(
            "serving on %s without a token (--allow-open): anyone who can reach it may use the page and the API",
            ", ".join([args.host, *args.allow_host]))
    try:
        server.serve_forever()
    finally:
        feed.stop()
    return 0
