"""genrecast: real-time music-genre classification as a Linux service.

The parts live in subpackages: ``genrecast.dsp`` (decoding, resampling, streaming log-mel), ``genrecast.daemon``
(sources, decisions, MQTT), ``genrecast.dashboard`` (live page and HTTP API) and ``genrecast.training`` (trainers
and export). This core holds only what they all share: the version, the command-line error type, the
wording for a path that is not the file or folder a reader needs, and the MQTT contract's words
(``genrecast.contract``: payload version, topics, decision and availability states).
"""

__version__ = "0.4.0"
