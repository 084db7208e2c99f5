"""genrecast: real-time music-genre classification as a Linux service.

The parts live in subpackages: ``genrecast.dsp`` (decoding, resampling, streaming log-mel), ``genrecast.daemon``
(sources, decisions, MQTT), ``genrecast.dashboard`` (live page and HTTP API) and ``genrecast.training`` (trainers
and export). This core holds only what they all share: the version, the command-line error type, the
wording for a path that is not the file or folder a reader needs and for a count (``genrecast.text``), and the MQTT
contract's words (``genrecast.contract``: payload version, topics, decision and availability states).

Importing it turns off onnxruntime's telemetry for the process: since 1.29 onnxruntime on Linux keeps a device id
under ~/.cache and uploads usage events to Microsoft by default, and a classifier next to a microphone in a home
sends nothing anywhere but its broker. ``ORT_DISABLE_TELEMETRY=0`` in the environment leaves it on.
"""

import os

# read when onnxruntime starts, so before any part of genrecast imports it
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# as the default model it ships, genrecast-gtzan-0.6.0 (its fast variant: genrecast-gtzan-fast-0.5.1)
__version__ = "0.6.0"
