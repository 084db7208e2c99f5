"""Where audio comes from: a file (paced like a live stream), raw PCM on stdin or a named pipe, or a microphone.

Each source yields mono float32 :class:`Chunk` s at its own rate and stops when ``stop`` is set;
converting to the model's rate is the pipeline's job. A live source with nothing to hand over yields an
empty chunk on each poll timeout, so the consumer's loop keeps turning (and telling systemd's watchdog it
is alive) while a microphone is being reopened or a pipe is quiet. A chunk records when it was handed over, which
is where the daemon's latency is measured from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Full, Queue
from typing import BinaryIO, Protocol

import numpy as np
from genrecast.dsp import DEFAULT_DSP, AudioError, AudioFile
from genrecast.dsp.audio import (
    PCM_FORMATS,
    WAV_HEADER_MAX,
    check_samples,
    container,
    decode_frames,
    might_be_wav,
    wav_header,
)
from genrecast.dsp.channels import LiveDownmix
from genrecast.dsp.resample import StreamResampler

from genrecast.c_stderr import divert_c_stderr
from genrecast.contract import DAEMON_TOPIC

log = logging.getLogger("genrecast.source")

CHUNK_SECONDS = 0.05  # live sources hand over audio 20 times a second
RAW_PCM_RATE = DEFAULT_DSP.sample_rate  # stdin's and a pipe's raw PCM without a rate given
DECODE_CHUNKS = 10  # a paced file is decoded this many chunks at a time
MIC_BACKOFF = (0.5, 30.0)  # first and longest wait before reopening a vanished microphone
NO_WRITER = "its writer closed it; waiting for the next"  # a named pipe's reason while it has no writer
PIPE_BACKOFF = (0.5, 5.0)  # first and longest wait between tries to open a named pipe that is missing
POLL_MARGIN = 0.01  # seconds past a chunk's due time that a microphone with less than a chunk waits
MIC_QUEUE_SECONDS = 10  # audio held between the capture thread and a processing loop that lags behind
# A microphone is opened with up to two channels and averaged to mono, as a stereo file is. Asked for one, PortAudio
# opens a two-channel-only device (an audio interface's ``hw:`` input, a stereo USB card) with two and keeps the
# first: a microphone plugged into the second input was heard as silence.
MIC_CHANNELS = 2
INVALID_SAMPLE_RATE = -9997  # PortAudio's paInvalidSampleRate: the device does not take the rate asked
INPUT_OVERFLOWED, STREAM_STOPPED = -9981, -9983  # paInputOverflowed (audio was lost: read on), paStreamIsStopped
# PortAudio's initialise and terminate are not thread-safe: two microphones (re)opening at once on their own threads
# crashed the process (SIGSEGV). Every PyAudio(), open, close and terminate of ours goes through this lock; reads
# do not (on a sound server that died a read can block for good, and would hold every other microphone's open),
# nor does the close pyaudio makes by itself when a read fails (docs/daemon.md, several microphones).
PORTAUDIO_LOCK = threading.Lock()


@dataclass(frozen=True)
class Chunk:
    samples: np.ndarray  # mono float32 at the source's rate
    handed_at: float  # time.monotonic() when the source produced it

    @classmethod
    def idle(cls) -> Chunk:
        """No audio this time: an empty chunk, a no-op for the pipeline."""
        return cls(np.zeros(0, np.float32), time.monotonic())


class Source(Protocol):
    description: str
    sample_rate: int
    unavailable: str | None  # why its device is gone while the source itself reopens it; None while it is there
    live: bool  # paced by the world: audio that waits too long is dropped; else it waits for us and none is lost

    def chunks(self, stop: threading.Event) -> Iterator[Chunk]: ...


class FileSource:
    """A file replayed at ``speed`` times real time (0 = as fast as possible), optionally looped.

    Only the header is read when it opens; the audio is decoded a chunk at a time as it is handed over, so a
    two-hour file starts at once, takes no more memory than a short one, and ``stop`` is seen between chunks.
    """

    unavailable = None

    def __init__(self, path: str, speed: float = 1.0, loop: bool = False) -> None:
        self._file = AudioFile(path)
        self.description = f"file:{Path(path).resolve()}"
        self.sample_rate, self.seconds = self._file.sample_rate, self._file.seconds
        self.speed, self.loop = speed, loop
        self.live = speed > 0

    def chunks(self, stop: threading.Event) -> Iterator[Chunk]:
        step = max(1, round(self.sample_rate * (CHUNK_SECONDS if self.speed else 1.0)))
        start, handed = time.monotonic(), 0
        try:
            while not stop.is_set():
                # Decoded half a second at a time and handed over a chunk at a time: a decoder call costs about
                # as much for 0.05 s as for 0.2 s of audio, and a paced file stream paid it 20 times a second.
                for block in self._file.blocks(step * (DECODE_CHUNKS if self.speed else 1)):
                    for at in range(0, block.shape[0], step):
                        piece = block[at : at + step]
                        if self.speed:
                            # A chunk is "handed over" once its last sample would have been captured live.
                            due = start + (handed + piece.shape[0]) / self.sample_rate / self.speed
                            if stop.wait(max(0.0, due - time.monotonic())):
                                return
                        elif stop.is_set():
                            return
                        handed += piece.shape[0]
                        yield Chunk(piece, time.monotonic())
                if not self.loop:
                    return
        finally:
            self._file.close()


class RawPcm:
    """Raw interleaved PCM bytes -> checked mono samples, for one writer's output: a sample frame split between
    reads is joined, and a WAV or compressed file sent in its place is named or skipped (:meth:`_past_wav_header`).
    ``name`` is how its errors name the source (``stdin``, ``pipe:/run/radio.pcm``); ``path``, where a decoder writes
    to it (``-`` for stdin)."""

    def __init__(self, name: str, fmt: str, rate: int, channels: int, path: str = "-") -> None:
        if fmt not in PCM_FORMATS:
            raise AudioError(f"{name}: unknown PCM format {fmt!r} (choose from {', '.join(PCM_FORMATS)})")
        self.name, self.fmt, self.rate, self.channels, self.path = name, fmt, rate, channels, path
        self.stdin = path == "-"
        self.frame_bytes = np.dtype(PCM_FORMATS[fmt][0]).itemsize * channels
        self.read_bytes = max(self.frame_bytes, round(rate * CHUNK_SECONDS) * self.frame_bytes)  # a chunk's worth
        self.restart()

    @property
    def layout(self) -> str:
        return f"{self.fmt}/{self.rate}/{self.channels}"

    def restart(self) -> None:
        """A new writer: its first bytes may be a header again, nothing is left of the last one's, and its channels
        are judged afresh."""
        self._left, self._head = b"", b""  # head: the first bytes, kept while they may be a WAV header still arriving
        self._mix = LiveDownmix(self.rate, said=lambda line: log.warning("%s: %s", self.name, line))

    def feed(self, data: bytes) -> np.ndarray | None:
        """The samples of the whole frames read so far (None: none yet, or a header still arriving)."""
        if self._head is not None:
            self._head += data
            if might_be_wav(self._head) and wav_header(self._head) is None and len(self._head) < WAV_HEADER_MAX:
                return None  # a pipe hands over a long header (LIST, bext chunks) in pieces
            data, self._head = self._past_wav_header(self._head), None
        data = self._left + data
        whole = len(data) - len(data) % self.frame_bytes
        self._left = data[whole:]
        return self._checked(self._mix.push(decode_frames(data[:whole], self.fmt, self.channels))) if whole else None

    def end(self) -> None:
        """The writer closed: a partial frame, or a header that never ended, is said and dropped."""
        if self._head:
            self._past_wav_header(self._head)  # a WAV header cut short is refused, as it would be mid-stream
        if self._left:
            log.warning("%s ended inside a sample frame; %d trailing bytes ignored", self.name, len(self._left))
        self.restart()

    def _checked(self, samples: np.ndarray) -> np.ndarray:
        """Integers read as floats are NaN or far over full scale: the error names --format, which it said nothing
        of ("contains NaN or infinite samples", for 16-bit audio read as f32le)."""
        try:
            return check_samples(samples, f"{self.name}:{self.layout}")
        except AudioError as exc:
            if self.fmt != "f32le":
                raise
            raise AudioError(f"{exc}: is the audio really 32-bit float (--format f32le), or 16-bit (s16le)?") from None

    def _past_wav_header(self, data: bytes) -> bytes:
        """A WAV file piped in (``sox ... -t wav -``) instead of raw PCM: its header was read as samples. In the
        format the pipe is read as, its samples are used; in another, it is refused, naming both. A compressed file
        (FLAC, Ogg, MP3 with a tag, ...) is refused too, naming it."""
        header = wav_header(data)
        if header is None:
            if kind := container(data):  # read as samples, it was classified as noise without a word
                into = "-i - ... -" if self.stdin else f"-i INPUT ... -y {self.path}"
                raise AudioError(f"{self.name}: this is {kind}, not raw PCM: decode it first (ffmpeg "
                                 f"{into.replace('...', f'-f {self.fmt} -ar {self.rate} -ac {self.channels}')}), or "
                                 "use --source file:PATH")
            if might_be_wav(data) and len(data) >= 12:
                raise AudioError(f"{self.name}: a WAV file whose header does not end in its first {len(data)} bytes: "
                                 "use --source file:PATH")
            return data
        fmt, rate, channels, size = header
        if (fmt, rate, channels) != (self.fmt, self.rate, self.channels):
            raise AudioError(f"{self.name}: a WAV file of {fmt or 'another encoding'}/{rate}/{channels}, but "
                             f"{'stdin' if self.stdin else 'the pipe'} is read as raw {self.layout}: give "
                             "--format, --rate and --channels to match, or --source file:PATH")
        log.info("%s: a WAV file's header, skipped (its samples are %s/%d/%d, as read)", self.name, fmt, rate, channels)
        return data[size:]


def _readable(fd: int) -> bool:
    """Whether ``fd`` has bytes (or its end) to read within a poll: a loop that waits no longer notices ``stop``."""
    ready, _, _ = select.select([fd], [], [], 0.2)
    return bool(ready)


class StdinSource:
    """Raw interleaved PCM from a pipe (``arecord``, ``ffmpeg -f s16le -``); ends at end of input."""

    unavailable = None

    def __init__(self, fmt: str, rate: int, channels: int, stream: BinaryIO | None = None,
                 speed: float = 1.0) -> None:
        """``speed`` 0: a recording, never dropped. A file redirected to stdin is one whatever the speed; a pipe
        is live (``arecord``, a radio through ffmpeg) unless ``speed`` is 0."""
        self._pcm = RawPcm("stdin", fmt, rate, channels)
        self.description = f"stdin:{self._pcm.layout}"
        self.sample_rate = rate
        if stream is None and sys.stdin is None:  # Python's answer to a process started with fd 0 closed
            raise AudioError("stdin: not open (the command was started with its standard input closed)")
        self._fd = (stream or sys.stdin.buffer).fileno()
        info = os.fstat(self._fd)
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == os.stat(os.devnull).st_rdev:
            # it ended at once, "nothing classified", exit 0: a service's stdin unless its unit gives it one
            raise AudioError("stdin: is /dev/null, so there is no audio to read (a systemd service's standard input "
                             "is /dev/null unless its unit sets StandardInput=)")
        self.live = speed > 0 and not stat.S_ISREG(info.st_mode)

    def chunks(self, stop: threading.Event) -> Iterator[Chunk]:
        while not stop.is_set():
            if not _readable(self._fd):
                yield Chunk.idle()
                continue
            data = os.read(self._fd, self._pcm.read_bytes)
            if not data:
                self._pcm.end()
                return
            if (samples := self._pcm.feed(data)) is not None:
                yield Chunk(samples, time.monotonic())


class PipeSource:
    """Raw interleaved PCM from a named pipe (``mkfifo``) that a program writes to: a radio's decoder, ``arecord``.

    Unlike stdin, a process may read any number of them, and a live one outlives its writers: when one closes it (a
    decoder restarting), the pipe is opened afresh for the next, and meanwhile the stream is stalled with
    :attr:`unavailable` as its reason, as a microphone unplugged is. So is a pipe that is missing (``/run`` emptied
    at a boot, its maker not run yet), removed or replaced (opened afresh, as its new self), and a writer that sends
    what is not raw PCM in the pipe's format (its bytes are ignored until it closes the pipe). Opened without
    blocking, so a pipe whose writer has not started yet does not hold up the process. At ``speed`` 0 it is a
    recording instead: its writer's end is its end, and its writer's error ends it."""

    def __init__(self, path: str, fmt: str, rate: int, channels: int, speed: float = 1.0) -> None:
        """A path that is something else than a named pipe is refused; a missing one is waited for (said once)."""
        self.path = os.path.abspath(path)
        self.description = f"pipe:{self.path}"
        self._pcm = RawPcm(self.description, fmt, rate, channels, self.path)
        self.sample_rate, self.live = rate, speed > 0
        self.unavailable: str | None = None  # why no audio can come just now; None while it can
        self._fd = -1
        try:
            self._fd = self._open()
        except FileNotFoundError as exc:
            if not self.live:
                raise AudioError(f"{self.description}: {exc}") from None
            self._waiting(str(exc))

    def _open(self) -> int:
        """The pipe, opened; FileNotFoundError while it is missing, AudioError when it is something else."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such pipe (make it with: mkfifo {self.path})") from None
        except OSError as exc:
            raise AudioError(f"{self.description}: cannot read ({exc.strerror or exc})") from None
        if not stat.S_ISFIFO(info.st_mode):
            what = ("a file, not a named pipe (a decoder that found no pipe writes one: remove it and mkfifo "
                    f"{self.path}; a recording is read with --source file:PATH)") if stat.S_ISREG(info.st_mode) else \
                "not a named pipe (mkfifo makes one)"
            raise AudioError(f"{self.description}: is {what}")
        try:
            return os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise AudioError(f"{self.description}: cannot read ({exc.strerror or exc})") from None

    def _waiting(self, why: str) -> None:
        if self.unavailable != f"{why}; waiting for it":
            log.warning("%s: %s; waiting for it", self.description, why)
        self.unavailable = f"{why}; waiting for it"

    def _replaced(self) -> bool:
        """Whether the path is no longer the pipe open here: removed, or made anew (``rm``, ``mkfifo``). A writer of
        the new one would wait for a reader for good."""
        try:
            now, here = os.stat(self.path), os.fstat(self._fd)
        except OSError:
            return True
        return (now.st_dev, now.st_ino) != (here.st_dev, here.st_ino)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def chunks(self, stop: threading.Event) -> Iterator[Chunk]:
        backoff, refused = PIPE_BACKOFF[0], False  # refused: this writer sent what is not raw PCM in our format
        try:
            while not stop.is_set():
                if self._fd < 0:
                    try:
                        self._fd = self._open()
                        backoff = PIPE_BACKOFF[0]
                    except (FileNotFoundError, AudioError) as exc:  # gone, or made into something else, meanwhile
                        self._waiting(str(exc).removeprefix(f"{self.description}: "))
                        if stop.wait(backoff):
                            return
                        backoff = min(2 * backoff, PIPE_BACKOFF[1])
                        continue
                if not _readable(self._fd):
                    if self._replaced():
                        self._close()
                    yield Chunk.idle()
                    continue
                try:
                    data = os.read(self._fd, self._pcm.read_bytes)
                except BlockingIOError:  # woken, but another reader (a second process) took the bytes
                    continue
                try:
                    if data and not refused:
                        self.unavailable = None
                        if (samples := self._pcm.feed(data)) is not None:
                            yield Chunk(samples, time.monotonic())
                    elif not data:  # its writer closed it
                        if not refused:
                            self._pcm.end()
                        self._pcm.restart()
                        if not self.live:
                            return  # a recording: its writer's end is its end
                        log.debug("%s: %s", self.description, NO_WRITER)  # the stream says so once it is classified
                        self.unavailable = self.unavailable if refused else NO_WRITER
                        refused = False
                        # opened afresh for the next writer (the old descriptor would read its end again, forever),
                        # before the old one is closed: a writer opening meanwhile finds a reader
                        old, self._fd = self._fd, -1
                        with contextlib.suppress(FileNotFoundError, AudioError):  # the loop's top waits for it
                            self._fd = self._open()
                        os.close(old)
                except AudioError as exc:
                    if not self.live:
                        raise
                    log.warning("%s; its writer's bytes are ignored until it closes the pipe", exc)
                    why = str(exc).removeprefix(f"{self.description}:{self._pcm.layout}: ").removeprefix(
                        f"{self.description}: ")
                    self.unavailable = f"{why}; waiting for the next writer"
                    refused = True
        finally:
            self._close()


def input_devices(pa) -> list[dict]:
    """PortAudio's input devices, each PyAudio's info dict (``index``, ``name``, ``defaultSampleRate``, ...)."""
    devices = (pa.get_device_info_by_index(i) for i in range(pa.get_device_count()))
    return [d for d in devices if d.get("maxInputChannels", 0) > 0]


def find_device(pa, wanted: str | None) -> dict:
    """The default input, a device index, the input named ``wanted`` or the one input whose name contains it (any
    case). A part that several names contain is refused, naming them: the first of them was taken, so ``mic:default``
    opened ALSA's ``sysdefault`` (listed first), and of two alike USB microphones whichever was listed first."""
    devices = input_devices(pa)
    if not devices:
        raise AudioError(f"mic{':' + wanted if wanted else ''}: no audio input devices found (see `genrecast devices`)")
    if not wanted:
        try:
            return pa.get_default_input_device_info()
        except OSError:
            return devices[0]
    if wanted.isdigit():
        match = [d for d in devices if d["index"] == int(wanted)]
    else:
        match = ([d for d in devices if d["name"].lower() == wanted.lower()]
                 or [d for d in devices if wanted.lower() in d["name"].lower()])
    if not match:
        raise AudioError(f"mic:{wanted}: no such input device (inputs: {_listed(devices)})")
    if len(match) > 1:
        raise AudioError(f"mic:{wanted}: {len(match)} inputs match ({_listed(match)}): give more of the name, or "
                         "the index (which can change when devices are plugged in)")
    return match[0]


def _listed(devices: list[dict]) -> str:
    return ", ".join(f"{d['index']}:{d['name']}" for d in devices)


# What PortAudio's own words for a device that will not open (its error codes) leave a user to guess
_OPEN_HINTS = {
    -9985: "in use by another program, or held by the sound server",
    -9996: "no longer there",
    INVALID_SAMPLE_RATE: "it does not take this sample rate",
    -9998: "it does not take one channel",
    -9999: "listed, but its driver or sound server would not open it: a PulseAudio source not loaded yet, or a "
           "device in use?",
}


def open_error(exc: BaseException) -> str:
    """Why a microphone would not open, in one line: PortAudio's words, and what they usually mean."""
    text = str(exc) or type(exc).__name__
    hint = _OPEN_HINTS.get(exc.errno) if isinstance(exc, OSError) and isinstance(exc.errno, int) else None
    return f"{text}: {hint}" if hint else text


class MicSource:
    """A live input through PortAudio, reopened with backoff when it disappears."""

    def __init__(self, device: str | None, rate: int | None = None) -> None:
        """``rate``: hand over audio at this rate (a reopened microphone keeps its stream's rate), else the device's
        own. A device that does not take ``rate`` is opened at its own, and its audio converted to ``rate``."""
        self.wanted = device
        self._pa = self._stream = None
        self._channels = 1
        self._device_rate = 0  # the rate the device is open at
        self._resampler: StreamResampler | None = None  # when that is not the stream's
        self._mix: LiveDownmix | None = None  # made at the first audio, at the device's rate
        self.unavailable: str | None = None
        self.live = True
        try:
            info = self._open(rate=rate)  # fail fast on a wrong device at start-up
        except OSError as exc:
            raise AudioError(f"mic:{device or 'default'}: cannot open ({open_error(exc)})") from None
        self.description = f"mic:{info['name']}"
        self.sample_rate = rate or int(info["defaultSampleRate"])

    def _open(self, rate: int | None) -> dict:
        import pyaudio

        divert_c_stderr()
        # A fresh instance rescans devices (one may have come back), but only when no other is open in the process:
        # PortAudio reads its device list once per initialisation (see docs/daemon.md on several microphones).
        with PORTAUDIO_LOCK:
            self._pa = pyaudio.PyAudio()
            try:
                info = find_device(self._pa, self.wanted)
                own = int(info["defaultSampleRate"])
                self._channels = max(1, min(MIC_CHANNELS, int(info["maxInputChannels"])))
                self._mix = None  # a device opened (perhaps another one plugged in where it was): judged afresh
                try:
                    self._open_stream(pyaudio, info, rate or own)
                except OSError as exc:
                    # A replacement microphone (another model, plugged in where the first was) that does not take
                    # the stream's rate: a raw ALSA device often takes one only. Its own rate is converted instead
                    # of retrying for good at one it refuses.
                    if not rate or rate == own or exc.errno != INVALID_SAMPLE_RATE:
                        raise
                    self._open_stream(pyaudio, info, own)
                    log.warning("microphone %s does not take %d Hz: open at its own %d Hz, converted", info["name"],
                                rate, own)
                self._resampler = StreamResampler(self._device_rate, rate) if rate and rate != self._device_rate \
                    else None
            except Exception:
                self._close_locked()
                raise
        return info

    def _open_stream(self, pyaudio, info: dict, rate: int) -> None:
        self._stream = self._pa.open(
            format=pyaudio.paFloat32, channels=self._channels, rate=rate, input=True,
            input_device_index=int(info["index"]), frames_per_buffer=round(rate * CHUNK_SECONDS),
        )
        self._device_rate = rate

    def _close(self) -> None:
        with PORTAUDIO_LOCK:
            self._close_locked()

    def _close_locked(self) -> None:
        with contextlib.suppress(Exception):
            if self._stream is not None:
                self._stream.close()
        with contextlib.suppress(Exception):
            if self._pa is not None:
                self._pa.terminate()
        self._stream = self._pa = None

    def chunks(self, stop: threading.Event) -> Iterator[Chunk]:
        # PortAudio reads block in C; reading in a thread keeps the main thread free to handle signals.
        queue: Queue[Chunk] = Queue(maxsize=round(MIC_QUEUE_SECONDS / CHUNK_SECONDS))
        reader = threading.Thread(target=self._read_forever, args=(stop, queue), name="mic", daemon=True)
        reader.start()
        while not stop.is_set():
            try:
                yield queue.get(timeout=0.2)
            except Empty:
                yield Chunk.idle()

    def _held(self) -> int:
        """Frames the device holds. PortAudio says a failure here with a negative count, not an error (pyaudio
        passes it on), and a stopped stream just holds nothing: either would have read as silence."""
        held = self._stream.get_read_available()
        if held < 0 and held != INPUT_OVERFLOWED:
            raise OSError(held, f"PortAudio error {held} asking what the device holds")
        if held <= 0 and not self._stream.is_active():
            raise OSError(STREAM_STOPPED, "Stream is stopped")
        return max(held, 0)

    def _retry_later(self, exc: BaseException, what: str, backoff: float, stop: threading.Event,
                     quiet: bool = False) -> float:
        """The device cannot be used just now: say why (the stream's status does too), wait, and return the next
        wait. ``quiet``: a try soon after a loss, which the loss's line and the stream's stall line already say
        (one lost device gave three warnings)."""
        self.unavailable = open_error(exc)
        log.log(logging.DEBUG if quiet else logging.WARNING, "microphone %s %s (%s); retrying in %.1f s",
                self.description, what, self.unavailable, backoff)
        stop.wait(backoff)
        return min(backoff * 2, MIC_BACKOFF[1])

    def _read_forever(self, stop: threading.Event, queue: Queue) -> None:
        """Reads only what the device already holds. A read that waits in C for audio that never comes (a
        microphone open but silent: a sound server's source with nothing behind it) could not be told to stop, so
        every reopen of its stalled stream left a reader, its stream and their descriptors behind, until the process
        ran out of them, or PortAudio, opening beside so many readers, crashed it. A device that opens but fails
        before any audio (a PulseAudio source that is not loaded, named in ALSA's configuration) is retried with
        backoff, as one that does not open: it was reopened at once, dozens of times a second."""
        backoff, lagging, heard, lost = MIC_BACKOFF[0], False, True, False
        try:
            while not stop.is_set():
                if self._stream is None:
                    try:
                        self._open(rate=self.sample_rate)
                        self.unavailable, heard = None, False
                    except (OSError, AudioError) as exc:
                        # after a loss, the tries are said once they are as far apart as they get: still gone
                        quiet = lost and backoff < MIC_BACKOFF[1]
                        backoff = self._retry_later(exc, "unavailable", backoff, stop, quiet=quiet)
                        continue
                    lost = False
                n = round(self._device_rate * CHUNK_SECONDS)
                try:  # not under the lock: on a sound server that died, even these can block for good
                    held = self._held()
                    # what is there, once it is half a chunk: PortAudio's ALSA input held 16 frames short of a
                    # chunk until the next period came, so waiting for a whole one polled six times a read
                    data = self._stream.read(min(held, 4 * n), exception_on_overflow=False) if held >= n // 2 else None
                except OSError as exc:
                    self._close()
                    if heard:
                        log.warning("microphone %s lost (%s); reopening", self.description, exc)
                        lost = True
                        continue
                    backoff = self._retry_later(exc, "opened, but failed before any audio", backoff, stop)
                    continue
                if data is None:  # until a chunk should be there, and a little more: each poll costs
                    stop.wait((n - held) / self._device_rate + POLL_MARGIN)
                    continue
                if not heard:
                    log.info("microphone %s reopened", self.description)
                    heard, backoff = True, MIC_BACKOFF[0]
                if self._mix is None:  # a wiring that cancels is judged once per device opened
                    self._mix = LiveDownmix(self._device_rate, said=lambda line: log.warning(
                        "microphone %s: %s", self.description, line))
                samples = self._mix.push(decode_frames(data, "f32le", self._channels))
                if self._resampler is not None:
                    samples = self._resampler.push(samples)
                try:
                    queue.put_nowait(Chunk(samples, time.monotonic()))
                    lagging = False
                except Full:
                    if not lagging:
                        log.warning("processing is %d s behind the microphone: dropping audio", MIC_QUEUE_SECONDS)
                    lagging = True
        finally:
            self._close()


def open_source(spec: str, speed: float, loop: bool, fmt: str, rate: int | None, channels: int) -> Source:
    """``file:PATH`` | ``pipe:PATH`` | ``mic`` | ``mic:DEVICE`` | ``stdin`` -> an opened source (errors as
    AudioError). ``rate``: raw PCM's (None: :data:`RAW_PCM_RATE`), or the rate a microphone is opened at (None: its
    own); a file's header says its own."""
    kind, _, arg = spec.partition(":")
    if kind == "file":
        return FileSource(arg, speed, loop)
    if kind == "pipe":
        return PipeSource(arg, fmt, rate or RAW_PCM_RATE, channels, speed)
    if kind == "stdin":
        return StdinSource(fmt, rate or RAW_PCM_RATE, channels, speed=speed)
    if kind == "mic":
        return MicSource(arg or None, rate)
    raise AudioError(f"unknown source {spec!r} (use file:PATH, pipe:PATH, mic[:DEVICE] or stdin)")


def default_stream_id(spec: str) -> str:
    """``file:/music/Kitchen Radio.wav`` -> ``kitchen-radio``; ``pipe:/run/radio-1.pcm`` -> ``radio-1``; ``mic:USB
    Audio`` -> ``mic-usb-audio``."""
    kind, _, arg = spec.partition(":")
    name = Path(arg).stem if kind in ("file", "pipe") else (f"mic-{arg}" if kind == "mic" and arg else kind)
    stream_id = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:64] or kind
    return stream_id.lstrip("_") if stream_id.startswith(DAEMON_TOPIC) else stream_id  # the process's topic
