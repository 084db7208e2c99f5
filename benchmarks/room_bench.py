"""Through-a-room benchmark (run on demand, not in CI): what a microphone in a home hears, against the clean file.

The clips are one cross-validation fold of the shared data (GTZAN, the Magnatune ``ood/`` excerpts, the
non-music recordings and the generated noise), read, kept and dealt exactly as ``genrecast train-transfer`` (with
its defaults) reads, keeps and deals them (:func:`training.corpus.read_corpus`, :func:`training.corpus.usable`,
:func:`training.transfer_cv.held_out`). A model trained with ``--hold-out K`` never heard fold K, and the bench
scores that fold by default; a model trained on everything (the shipped one) is said to be in-sample for the clean
figures. Each clip is scored twice by the real ``classify`` path (decode, resample, log-mel, windows, ONNX, the one
track rule), by what a microphone's stream reads (a model's room head when it has two): as recorded, and played
through
:data:`training.acoustic.BENCH`: simulated home rooms of their own seed and sizes (2.2-9 m, RT60 0.25-1.2 s),
loudspeaker and microphone band limits, speech over it in 30 %, noise at 5-25 dB SNR, and a codec, drawn from the
half of the noise and speech sources that training chains never use, and of those only the scored fold's own: a
model trained with ``--hold-out K`` never heard them at all, not even as ``no_music`` examples (the trainer's figures
through held-out rooms draw on that half of every fold).

A model with two genre heads is also scored, on the genre tracks, by what a file or a pipe reads (``heard = auto``:
the direct head, or both heads weighed by the model's room detector when it has one), clean and through the room:
a recording taped in a room and classified as a file.

Genre accuracy counts the clips whose genre the model has (a ten-genre model is not asked about electronic).
``no_music_in_room``: speech and noise clips given no genre through the room (``no_music``, or ``silence`` for a
clip too quiet to hear); ``music_kept_in_room``: music clips (genre tracks and genre-less music, talk over some of
them) given a genre through the room.
The last line is, for the last ``--model`` given:
``room: model=<id> clean_acc=<> room_acc=<> ratio=<> no_music_in_room=<> music_kept_in_room=<>``
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
from genrecast.daemon.classify_cmd import classify_file
from genrecast.daemon.model import DEFAULT_MODEL, describe_head, genre_head, load_model
from genrecast.dsp import audio_folder
from genrecast.dsp.windows import MIN_SECONDS, hop_frames
from genrecast.training import SYNTHETIC_PER_KIND
from genrecast.training.acoustic import BENCH, RATE, Chain, build_banks
from genrecast.training.corpus import bank_sources, heard_through, read_clip_audio, read_corpus, usable
from genrecast.training.musicnn import MUSICNN_DSP, N_FRAMES
from genrecast.training.synth_noise import write_synthetic
from genrecast.training.transfer_cv import held_out

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", type=Path, help="ONNX model (repeatable; default the shipped one)")
    # the folders as train-transfer (and decision_flips) name them
    ap.add_argument("--data", type=Path, default=SHARED / "gtzan",
                    help=f"the GTZAN folder, train-transfer's --data (default {SHARED / 'gtzan'})")
    ap.add_argument("--nonmusic", type=Path, default=SHARED / "nonmusic",
                    help=f"the non-music recordings, train-transfer's --nonmusic (default {SHARED / 'nonmusic'})")
    ap.add_argument("--ood", type=Path, default=SHARED / "ood",
                    help=f"the Magnatune excerpts, train-transfer's --ood (default {SHARED / 'ood'})")
    ap.add_argument("--fold", type=int, help="fold to score, 1..--folds (default: the model's --hold-out, else 1)")
    ap.add_argument("--folds", type=int, default=5, help="the trainer's --folds (default 5)")
    ap.add_argument("--seed", type=int, default=0, help="the trainer's --seed: the same folds (default 0)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "genrecast-room-bench",
                    help="where the bench's banks and generated noise are written once")
    args = ap.parse_args()
    for flag in ("data", "nonmusic", "ood"):  # before any model or bank is read
        try:
            audio_folder(getattr(args, flag))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"--{flag} {exc}") from None
    paths = args.model or [DEFAULT_MODEL]
    models = [load_model(p) for p in paths]
    held = [m.spec.training.get("held_out") for m in models]
    fold = args.fold or next((h["fold"] for h in held if h), 1)
    # the corpus train-transfer reads with its defaults, kept as its embedding step keeps it: the folds are then
    # dealt from the same lists, and the bench chain's banks are drawn from the same sources as its room figures'
    synthetic = write_synthetic(args.cache / "synthetic-noise", SYNTHETIC_PER_KIND, args.seed)
    corpus = read_corpus(args.data, args.nonmusic, args.ood, synthetic)
    hop = hop_frames(MUSICNN_DSP, 1.0)
    (genre, g_skip), (other, n_skip) = (usable(c, MUSICNN_DSP, N_FRAMES, hop) for c in (corpus.genre, corpus.other))
    clips = held_out(genre, other, args.folds, fold - 1, args.seed)
    fold_other = [c for c in clips if c.genre is None]  # noises and voices no --hold-out model of this fold heard
    chains = {BENCH.fingerprint(): Chain(BENCH, build_banks(BENCH, args.cache, *bank_sources(fold_other), None))}
    banks = chains[BENCH.fingerprint()].banks
    print(f"room bench: fold {fold}/{args.folds} (seed {args.seed}): {sum(c.genre is not None for c in clips)} genre "
          f"tracks, {sum(c.genre is None for c in clips)} other clips; chain {BENCH.name} {BENCH.fingerprint()}, "
          f"banks {banks.id}", flush=True)
    # a bank with nothing in the fold's half leaves its step out (training.acoustic.Chain): said, not silent
    print(f"  the chain's noises and voices: {len(list(banks.noise.glob('*.wav')))} noise and "
          f"{len(list(banks.speech.glob('*.wav')))} speech recordings of fold {fold}, none used by training chains")
    print(f"  left out, as the trainer leaves them out: {len(corpus.repeats)} repeated files, "
          f"{len(g_skip) + len(n_skip)} clips under {MIN_SECONDS:g} s or unreadable")
    # per model as given: two candidates may share a model_id (fold students of two runs)
    results: list[dict[str, list]] = [defaultdict(list) for _ in models]
    with tempfile.TemporaryDirectory() as tmp:
        for i, clip in enumerate(clips):
            room = Path(tmp) / "room.wav"
            sf.write(room, read_clip_audio(heard_through(clip, BENCH, 0), chains)[0], RATE, subtype="FLOAT")
            for m, res in zip(models, results, strict=True):
                # what a microphone's stream reads, for both: the ratio is one reading's; a file's beside it
                mic, file = genre_head(m.spec, "auto", recorded=False), genre_head(m.spec, "auto", recorded=True)
                for where, path in (("clean", str(clip.path)), ("room", str(room))):
                    res[where].append((clip, classify_file(m, path, 1.0, heard=mic or "auto")))
                if file != mic and clip.genre is not None:
                    res["clean_file"].append((clip, classify_file(m, str(clip.path), 1.0, heard=file)))
                    res["room_file"].append((clip, classify_file(m, str(room), 1.0, heard=file)))
            if (i + 1) % 100 == 0:
                print(f"  {i + 1}/{len(clips)} clips", flush=True)
    for m, h, res, path in zip(models, held, results, paths, strict=True):
        note = (f"never heard fold {h['fold']}" if h and h["fold"] == fold and h["folds"] == args.folds else
                "trained on this fold's clean clips: clean figures in-sample, rooms unseen")
        print(f"\n{m.model_id}, {path} ({note})")
        print(summary(m, res))
    return 0


def _accuracy(rows, labels) -> tuple[float, int]:
    right = [r.kind == "genre" and r.genre == c.genre for c, r in rows if c.genre in labels]
    return (float(np.mean(right)) if right else float("nan")), len(right)


def summary(model, res: dict[str, list]) -> str:
    labels = model.spec.labels
    lines = [f"{'genre':<11}{'tracks':>7}{'clean':>8}{'room':>8}"]
    for g in labels:
        c, n = _accuracy([x for x in res["clean"] if x[0].genre == g], labels)
        r, _ = _accuracy([x for x in res["room"] if x[0].genre == g], labels)
        if n:
            lines.append(f"{g:<11}{n:>7}{c:>8.3f}{r:>8.3f}")
    for source in ("gtzan", "ood"):
        c, n = _accuracy([x for x in res["clean"] if x[0].source == source], labels)
        r, _ = _accuracy([x for x in res["room"] if x[0].source == source], labels)
        lines.append(f"{'all ' + source:<11}{n:>7}{c:>8.3f}{r:>8.3f}")
    for kind in ("speech", "noise", "synthetic", "music"):  # non-music kinds, then genre-less music
        rows = {where: [r.kind != "genre" for c, r in res[where] if c.genre is None and c.kind == kind]
                for where in ("clean", "room")}
        if rows["clean"]:
            lines.append(f"no_music {kind:<7}{len(rows['clean']):>5} clean {np.mean(rows['clean']):.3f} "
                         f"room {np.mean(rows['room']):.3f}")
    clean, _ = _accuracy(res["clean"], labels)
    room, _ = _accuracy(res["room"], labels)
    # what a user sees: a genre announced or not (no_music, and silence for a clip too quiet to hear at all)
    not_music = [r.kind != "genre" for c, r in res["room"] if not c.is_music]
    music = [r.kind == "genre" for c, r in res["room"] if c.is_music]
    if res["clean_file"]:
        lines.append(f"what a file or a pipe reads ({describe_head(genre_head(model.spec, 'auto'))}): clean "
                     f"{_accuracy(res['clean_file'], labels)[0]:.3f}, through the room "
                     f"{_accuracy(res['room_file'], labels)[0]:.3f}")
    lines.append(f"room: model={model.model_id} clean_acc={clean:.3f} room_acc={room:.3f} ratio={room / clean:.3f} "
                 f"no_music_in_room={np.mean(not_music):.3f} music_kept_in_room={np.mean(music):.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    from bench_cli import run

    run(main)
