"""How steady the Music sensor and the genre are on quiet and reverberant music, and how fast the sensor follows
music's end: for choosing the hysteresis of the music threshold (``music_margin``), the quiet windows that make
silence (``silence_windows``) and the genre's leave level (``leave_confidence``).

Each long GTZAN excerpt in ``--data`` becomes one stream: the excerpt looped to ``--music-seconds``, then
``--tail-seconds`` of speech (even excerpts) or recorded noise (odd ones), recordings strung together from the half
of ``--nonmusic``'s sources that training chains never mix in (:func:`training.acoustic.banks_hold` of the bench
chain). The model trained on every recording as it is, so the tail's ``no_music`` is in-sample; what is measured is
the decision's dynamics. Each stream is heard three ways, as a microphone's stream reads it (the room head of a
model with two): as recorded at ``--level`` RMS, quiet at ``--quiet`` RMS (just above the silence gate), and
through :data:`training.acoustic.BENCH`'s held-out rooms at ``--level`` (band limits, speech over the music in 30 %,
noise at 5-25 dB, a codec). Every setting in the grid (each ``music_margin``, ``silence_windows`` and
``leave_confidence`` with the other two shipped) replays the same windows (hop 1 s, provisional windows first, as
``genrecast run`` cuts them, with its level normalisation) through :class:`daemon.decision.Decider`, the other
settings the shipped defaults.

Printed per way and setting: changes of the Music sensor (music or not) per hour of the music part, the share of
the music part's full windows held as music, the share of the tail's windows (those holding no music) still
music, the median and 90th-percentile seconds from the music's end to the sensor's turning off, changes of the
announced state per hour of the music part (from its first state but ``uncertain``, as ``decision_flips.py``
counts) and the share of the music part's full windows whose state names the excerpt's genre.
The last line compares the shipped settings with 0.6.0's (no margin, silence at the first quiet window, leave 0.3):
``music: margin=<> silence_windows=<> leave=<> ways=<> changes_per_hour=<> (before <>) music_kept=<> (before <>)
tail_music=<> (before <>) off_s=<> (before <>) genre_changes_per_hour=<> (before <>) on_genre=<> (before <>)``

    .venv/bin/python benchmarks/music_flips.py --cache /tmp/music-flips.npz
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from decision_flips import ROOT, Windows, load_windows, long_excerpts, looped, made_with, save_windows, stream_windows
from genrecast.daemon.decision import Decider, DecisionConfig
from genrecast.daemon.inference import Inference
from genrecast.daemon.model import DEFAULT_MODEL, genre_head, load_model
from genrecast.dsp import audio_folder, read_audio, resample
from genrecast.training.acoustic import BENCH, RATE, Chain, banks_hold, build_banks
from genrecast.training.corpus import bank_sources, nonmusic_clips

from genrecast.errors import UserError

WAYS = ("recorded", "quiet", "room")
SHARED = ROOT.parent / "shared" / "data"
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)
SILENCE_WINDOWS = (1, 2, 3, 5)  # at the shipped margin
LEAVES = (0.3, 0.25, 0.2, 0.15)  # leave_confidence, the rest shipped


def tails(nonmusic: Path, seconds: float) -> list[np.ndarray]:
    """Two tails, speech and noise, each the kind's held-out recordings strung together (at :data:`RATE`, each
    recording at unit RMS) to ``seconds``; a stream takes its tail from a rotating start."""
    clips = [c for c in nonmusic_clips(nonmusic) if banks_hold(BENCH, c.group)]
    out = []
    for kind in ("speech", "noise"):
        parts = []
        for c in sorted((c for c in clips if c.kind == kind), key=lambda c: c.clip_id):
            a = read_audio(c.path)
            x = resample(a.samples, a.sample_rate, RATE)
            rms = float(np.sqrt(np.mean(x**2)))
            if rms > 1e-4:
                parts.append(x / rms)
        joined = np.concatenate(parts)
        if joined.shape[0] < seconds * RATE:
            raise UserError(f"--nonmusic {nonmusic}: under {seconds:g} s of held-out {kind}")
        out.append(joined)
    return out


def streams(data: Path, nonmusic: Path, music_s: float, tail_s: float) -> list[tuple[str, np.ndarray]]:
    """Per long excerpt: its genre and its stream at unit RMS, the music looped and then the tail."""
    tail_banks = tails(nonmusic, tail_s)
    n_tail = round(tail_s * RATE)
    out = []
    for i, (genre, path) in enumerate(long_excerpts(data)):
        a = read_audio(path)
        music = looped(resample(a.samples, a.sample_rate, RATE), round(music_s * RATE))
        music = music / float(np.sqrt(np.mean(music**2)))
        bank = tail_banks[i % 2]
        start = (i * n_tail) % (bank.shape[0] - n_tail)
        out.append((genre, np.concatenate([music, bank[start : start + n_tail]]).astype(np.float32)))
    return out


@dataclass(frozen=True)
class Replay:
    changes_per_hour: float  # of the Music sensor over the music part
    music_kept: float  # share of the music part's full windows held as music
    tail_music: float  # share of the tail's windows still music
    off_median_s: float  # from the music's end to the sensor's off (never: the tail's length)
    off_p90_s: float
    genre_changes_per_hour: float  # of the announced state over the music part, from its first judged one
    on_genre: float  # share of the music part's full windows whose state names the excerpt's genre


def replay(spec, tracks: list[Windows], genres: list[str], cfg: DecisionConfig, music_s: float,
           tail_s: float) -> Replay:
    """Every stream's windows through a fresh decider with ``cfg``. A sensor change counts from its first judged
    state (the first music or not after the start), a change of state from the first state but ``uncertain``, as
    ``decision_flips.py`` counts them."""
    changes = kept = music_windows = tail_music = tail_windows = state_changes = right = 0
    offs = []
    for w, genre in zip(tracks, genres, strict=True):
        decider = Decider.for_model(spec, cfg, 1.0)
        last, off, last_state = None, None, None
        for p, m, r, end in zip(w.probs, w.music, w.rms, w.end_s, strict=True):
            state = decider.update(p, m, r)
            music = state.music
            if end <= music_s:
                if last_state is not None or state.kind != "uncertain":
                    state_changes += last_state is not None and not state.same_as(last_state)
                    last_state = state
                off = None if music is True else 0.0  # already off as the music ends: no delay
                if music is not None:
                    changes += last is not None and music != last
                    last = music
                if end >= spec.window_seconds:  # a full window: the provisional ones repeat the first seconds
                    kept += music is True
                    right += state.genre == genre
                    music_windows += 1
                continue
            if end >= music_s + spec.window_seconds:  # the window holds none of the music
                tail_music += music is True
                tail_windows += 1
            if music is not True and off is None:
                off = end - music_s
        offs.append(tail_s if off is None else off)  # never off: the tail's length
    hours = music_s * len(tracks) / 3600
    return Replay(changes / hours, kept / music_windows, tail_music / tail_windows, float(np.median(offs)),
                  float(np.percentile(offs, 90)), state_changes / hours, right / music_windows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED / "gtzan",
                    help=f"the GTZAN folder, with its manifest.csv (default {SHARED / 'gtzan'})")
    ap.add_argument("--nonmusic", type=Path, default=SHARED / "nonmusic",
                    help=f"the non-music recordings (default {SHARED / 'nonmusic'})")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"ONNX model (default {DEFAULT_MODEL.name})")
    ap.add_argument("--music-seconds", type=float, default=90.0, help="each excerpt looped to this long (90)")
    ap.add_argument("--tail-seconds", type=float, default=45.0, help="speech or noise after it (45)")
    ap.add_argument("--level", type=float, default=0.03, help="the streams' RMS as recorded and in the room (0.03)")
    ap.add_argument("--quiet", type=float, default=0.005, help="the quiet streams' RMS (0.005)")
    ap.add_argument("--threads", type=int, default=2, help="model calls at once, as the daemon's threads (2)")
    ap.add_argument("--cache", type=Path, help="an .npz of the windows' outputs: read when it exists (refused unless "
                                               "made with the same model, level normalisation and settings), else "
                                               "written")
    ap.add_argument("--banks", type=Path, default=Path(tempfile.gettempdir()) / "genrecast-room-bench",
                    help="where the bench chain's banks are written once (room_bench's --cache)")
    args = ap.parse_args()
    for flag in ("data", "nonmusic"):  # before the model is read
        try:
            audio_folder(getattr(args, flag))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"--{flag} {exc}") from None
    model = load_model(args.model)
    spec = model.spec
    if spec.music_threshold is None:
        raise UserError(f"--model {args.model}: has no music head, so no Music sensor to measure")
    head = genre_head(spec, "auto", recorded=False) or "room"  # what a microphone's stream reads
    made = made_with(model, head, music_seconds=args.music_seconds, tail_seconds=args.tail_seconds,
                     loud=args.level, quiet=args.quiet)
    if args.cache and args.cache.is_file():
        ways = load_windows(args.cache, made)
    else:
        made_streams = streams(args.data, args.nonmusic, args.music_seconds, args.tail_seconds)
        noise_files, speech_files = bank_sources(nonmusic_clips(args.nonmusic))
        chain = Chain(BENCH, build_banks(BENCH, args.banks, noise_files, speech_files, None))
        inference = Inference(model, args.threads)
        try:
            ways = {"recorded": [stream_windows(inference, x * args.level, RATE, head) for _, x in made_streams],
                    "quiet": [stream_windows(inference, x * args.quiet, RATE, head) for _, x in made_streams],
                    # the chain keeps the level it is given (before its gain), as a room's microphone would
                    "room": [stream_windows(inference, chain(x * args.level, f"music-flips/{i}"), RATE, head)
                             for i, (_, x) in enumerate(made_streams)]}
        finally:
            inference.close()
        if args.cache:
            save_windows(args.cache, ways, made)
    n = len(ways["recorded"])
    genres = [genre for genre, _ in long_excerpts(args.data)]
    if len(genres) != n:
        raise UserError(f"--cache {args.cache}: holds {n} streams, but --data has {len(genres)} long excerpts")
    print(f"model {model.model_id} ({head} head), music threshold {spec.music_threshold}; {n} streams: "
          f"{args.music_seconds:g} s of a looped excerpt, then {args.tail_seconds:g} s of speech or noise; hop 1 s")
    print(f"{'way':<9}{'margin':>7}{'silence':>8}{'leave':>6}{'changes/h':>10}{'music kept':>11}{'tail music':>11}"
          f"{'off s':>7}{'off p90':>8}{'genre/h':>8}{'on genre':>9}")
    shipped = DecisionConfig()
    before = replace(shipped, music_margin=0.0, silence_windows=1, leave_confidence=0.3)  # as 0.6.0 shipped
    grid = sorted({replace(shipped, music_margin=m) for m in MARGINS}
                  | {replace(shipped, silence_windows=n) for n in SILENCE_WINDOWS}
                  | {replace(shipped, leave_confidence=x) for x in LEAVES} | {shipped, before},
                  key=lambda c: (c.silence_windows, -c.leave_confidence, c.music_margin))
    rows = {}
    for way in WAYS:
        for cfg in grid:
            r = rows[way, cfg] = replay(spec, ways[way], genres, cfg, args.music_seconds, args.tail_seconds)
            print(f"{way:<9}{cfg.music_margin:>7.2f}{cfg.silence_windows:>8d}{cfg.leave_confidence:>6.2f}"
                  f"{r.changes_per_hour:>10.1f}{r.music_kept:>11.3f}{r.tail_music:>11.3f}{r.off_median_s:>7.1f}"
                  f"{r.off_p90_s:>8.1f}{r.genre_changes_per_hour:>8.1f}{r.on_genre:>9.3f}")

    def both(attr: str, fmt: str) -> str:
        now = [getattr(rows[w, shipped], attr) for w in WAYS]
        old = [getattr(rows[w, before], attr) for w in WAYS]
        return f"{'/'.join(format(x, fmt) for x in now)} (before {'/'.join(format(x, fmt) for x in old)})"

    print(f"music: margin={shipped.music_margin} silence_windows={shipped.silence_windows} "
          f"leave={shipped.leave_confidence} ways={'/'.join(WAYS)} "
          f"changes_per_hour={both('changes_per_hour', '.1f')} music_kept={both('music_kept', '.3f')} "
          f"tail_music={both('tail_music', '.3f')} off_s={both('off_median_s', '.1f')} "
          f"genre_changes_per_hour={both('genre_changes_per_hour', '.1f')} on_genre={both('on_genre', '.3f')}")


if __name__ == "__main__":
    from bench_cli import run

    run(main)
