"""``genrecast devices``: the input devices PortAudio sees, for choosing ``--source mic:DEVICE``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("devices", help="list audio input devices (for --source mic:DEVICE)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import pyaudio

    from genrecast.c_stderr import divert_c_stderr
    from genrecast.errors import UserError

    from .sources import input_devices

    divert_c_stderr()
    pa = pyaudio.PyAudio()
    try:
        devices = input_devices(pa)
        try:
            default = pa.get_default_input_device_info()["index"]
        except OSError:
            default = None
    finally:
        pa.terminate()
    if not devices:  # an error like any other: one line on stderr, where a script or journald looks for it
        raise UserError("no audio input devices found (no sound card, no PulseAudio/PipeWire server for this user, "
                        "or a user outside the audio group)")
    for d in devices:
        mark = "*" if d["index"] == default else " "
        print(f"{mark} {d['index']:3d}  {d['name']}  ({d['maxInputChannels']} ch, {int(d['defaultSampleRate'])} Hz)")
    return 0
