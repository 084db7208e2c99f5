"""``genrecast train-transfer``: the shipped recipe. A frozen pretrained musicnn, linear genre and music heads,
K-fold cross-validation of both, the final model on all data, and optionally the distilled fast variant.

torch is imported inside the handler, so the daemon's commands never pay for it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from genrecast.paths import path_flag

from . import DEFAULT_WHEEL, SYNTHETIC_PER_KIND

if TYPE_CHECKING:
    from .corpus import Clip
    from .musicnn import Musicnn
    from .transfer import Heads, WindowSet
    from .transfer_cv import OutOfFold

OOD_LICENCE = ("Magnatune excerpts of the Emotify set (Aljanaki et al. 2016), CC BY-NC-SA: the heads learned from "
               "them")
NONMUSIC_COPY_SECONDS = 8.0  # a non-music recording is heard through a room as an excerpt this long (6 windows)
BACKBONE_LICENCE = ("musicnn 0.1.0 (https://github.com/jordipons/musicnn), ISC licence, Copyright (c) 2019 Jordi "
                    "Pons")
# what each backbone's weights learned from (the model card's Data says what that means for the figures)
BACKBONE_DATA = {"MSD_musicnn": "the Million Song Dataset's Last.fm tags",
                 "MTT_musicnn": "MagnaTagATune's listener tags of Magnatune tracks"}


FAST_CROPS = 4  # --fast-crops' default: the student needs to see padded short clips
TAG_THRESHOLD = 0.3  # models/README.md, "Style tags": where tags that name a genre mostly agree with the label


# how to get the backbone's weights (a checkout's `make setup` puts them at the default; a wheel's user has no Makefile)
FETCH_BACKBONE = ("pip download --no-deps musicnn==0.1.0 -d DIR fetches it, then give --backbone "
                  "DIR/musicnn-0.1.0-py3-none-any.whl; in a checkout `make setup` puts it at the default")


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train-transfer", help="train the shipped recipe: pretrained musicnn + genre and music heads",
        description="Embed every clip with a frozen pretrained musicnn (weights read from its wheel, never "
                    "downloaded here), cross-validate linear genre and music/not-music heads (by track and by "
                    "speaker/source), fit them on all data and export ONNX; --fast also distils a small CNN. Needs "
                    "the training extras (genrecast[train]: torch, onnx, audiomentations, pyroomacoustics).")
    t.add_argument("--data", required=True, type=path_flag, help="GTZAN-style folder of genre tracks")
    t.add_argument("--nonmusic", required=True, type=path_flag,
                   help="folder with speech/, noise/ and music/ (genre-less music) clips")
    t.add_argument("--backbone", type=path_flag, default=DEFAULT_WHEEL,
                   help=f"the musicnn 0.1.0 wheel (default {DEFAULT_WHEEL}): {FETCH_BACKBONE}")
    t.add_argument("--features", type=_features,
                   help="the frozen activations the heads read, comma-separated backbone:part, e.g. "
                        "MSD_musicnn:mean_pool,MTT_musicnn:max_pool; the first backbone's tags are the model's "
                        "(default: training.transfer.HeadConfig's)")
    t.add_argument("--music-features", type=_features,
                   help="those of --features the music / no-music head reads (default: HeadConfig's, the Million "
                        "Song network's)")
    t.add_argument("--folds", type=_whole(2), default=5, help="K of the cross-validation (default 5)")
    t.add_argument("--seed", type=_whole(0), default=0, help="seed of the folds and of every draw (default 0)")
    t.add_argument("--l2", type=_non_negative,
                   help="L2 penalty of the genre head (default: training.transfer.HeadConfig's)")
    t.add_argument("--music-l2", type=_non_negative,
                   help="L2 penalty of the music / no-music head (default: HeadConfig's; the model card measures both)")
    t.add_argument("--ood", type=path_flag,
                   help="a second collection of genre music, <label>/<name>.<ext> (the shared ood/): trained on, "
                        "its labels added to GTZAN's, and the other side of the cross-collection figures")
    t.add_argument("--rir", type=path_flag, help="folder of real impulse responses (*.flac) the training chain may use")
    t.add_argument("--augment", type=_whole(0), default=2,
                   help="copies of every clip heard through the training chain of rooms, loudspeakers, noise and "
                        "codecs (training.acoustic; default 2; 0: clean audio only)")
    t.add_argument("--copy-weight", type=_non_negative,
                   help="what a room copy weighs against a recorded clip of its class in the heads' loss (default: "
                        "HeadConfig's, 1)")
    t.add_argument("--room-figures", action=argparse.BooleanOptionalAction, default=True,
                   help="also score every held-out clip through held-out rooms (default on)")
    t.add_argument("--hold-out", type=_whole(0), default=0, metavar="K",
                   help="leave fold K (1..--folds) out of the exported model, so benchmarks/room_bench.py can score "
                        "it on clips it never heard (default 0: train on everything)")
    t.add_argument("--crops", type=_whole(0), default=0,
                   help="2-3 s crops per long track added to training (default 0: not shown to help)")
    t.add_argument("--synthetic-noise", type=_whole(0), default=SYNTHETIC_PER_KIND,
                   help="generated noise clips per kind (white, pink, brown, hum, clicks, fan) added to the "
                        f"not-music side (default {SYNTHETIC_PER_KIND}; 0: none)")
    t.add_argument("--max-nonmusic-windows", type=_whole(0), default=6,
                   help="windows kept per non-music clip (default 6; 0: all)")
    t.add_argument("--music-threshold", type=_probability, default=0.5,
                   help="mean music probability below which a window or file is no_music (default 0.5)")
    t.add_argument("--tag-threshold", type=_probability, default=TAG_THRESHOLD,
                   help="probability from which a window's or file's style tag is announced (default "
                        f"{TAG_THRESHOLD}; models/README.md measures it)")
    t.add_argument("--fast", action="store_true", help="also distil and cross-validate the fast variant")
    t.add_argument("--fast-epochs", type=_positive,
                   help="the student's epochs (default: training.distill.DistillConfig's)")
    t.add_argument("--fast-stride", type=_positive,
                   help="the student learns from every Nth window of each clip (windows a second apart overlap by "
                        "two thirds; 1: all; default: DistillConfig's)")
    t.add_argument("--fast-crops", type=_whole(0),
                   help="2-3 s crops per long track, labelled by the teacher, added to the student's training "
                        f"(default {FAST_CROPS}: the student needs to see padded short clips; the teacher does not)")
    t.add_argument("--fast-synthetic-noise", type=_whole(0),
                   help="generated noise clips per kind heard by the student alone (another seed than "
                        "--synthetic-noise's, so never a scored clip), as recorded and through the training chain, "
                        "labelled by the teacher (default 0)")
    t.add_argument("--fast-seeds", type=_seeds,
                   help="seeds of the student's own draws (initial weights, batches, masks), comma-separated (default "
                        "--seed): each is cross-validated on the same folds and logged, since one run of a design can "
                        "land points from another; the first seed's students are the ones exported")
    t.add_argument("--fast-widths", type=_widths,
                   help="channels of the student's conv blocks, comma-separated (default: DistillConfig's)")
    t.add_argument("--threads", type=_positive, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--cache", type=path_flag,
                   help="embeddings and acoustic banks (default $XDG_CACHE_HOME/genrecast/embeddings)")
    t.add_argument("--prune-cache", action="store_true",
                   help="after a run that finished, remove the cache's embeddings and acoustic banks it did not use "
                        "(left by an older corpus, chain or backbone, or another recipe: a run with other --features "
                        "or without --augment would embed its own again); skipped while another run holds the cache")
    t.add_argument("--out", type=path_flag,
                   help="run folder, new or without a model in it (default runs/<utc time>-transfer)")
    t.add_argument("--name", default="genrecast-gtzan", help="model name stored in the metadata (default "
                   "genrecast-gtzan)")
    t.add_argument("--version", default="dev",
                   help="model version stored in the metadata; the model id is <name>-<version> (default dev: a "
                        "retrained model was called genrecast-gtzan-0.4.0, the shipped one's id)")
    t.add_argument("--fast-version",
                   help="the fast variant's version (default --version): a new student of an unchanged teacher needs "
                        "its own model_id")
    t.set_defaults(func=_train)


def _check_sources(args) -> None:
    """What the corpus needs beside GTZAN, said before anything is written: an empty or wrong folder was taken in
    silence (--nonmusic pointing at GTZAN trained the music head on generated noise alone)."""
    from genrecast.dsp import AUDIO_SUFFIXES

    from genrecast.errors import UserError

    def audio_in(folder: Path) -> bool:
        return any(p.suffix.lower() in AUDIO_SUFFIXES for p in folder.glob("*")) if folder.is_dir() else False

    missing = [kind for kind in ("speech", "noise") if not audio_in(args.nonmusic / kind)]
    if missing:
        raise UserError(f"--nonmusic {args.nonmusic}: no audio in {' or '.join(f'{k}/' for k in missing)} (it holds "
                        "speech/, noise/ and music/ folders of clips, as ../shared/data/nonmusic does)")
    if args.ood is not None and not any(audio_in(d) for d in args.ood.iterdir() if d.is_dir()):
        raise UserError(f"--ood {args.ood}: no <label>/<name>.<ext> audio in it (as ../shared/data/ood holds)")


def _make_folder(folder: Path, flag: str) -> None:
    from genrecast.errors import UserError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag} {folder}: cannot make this folder ({exc.strerror or exc})") from None


@dataclass
class TeacherRun:
    """What the default model's run made and the fast variant learns from: the clips and their embeddings (recorded,
    room copies, held-out room copies), each fold's heads and the shipped ones, and the clips the export never
    hears (a ``--hold-out`` fold)."""

    out: Path
    backbones: dict[str, Musicnn]
    labels: tuple[str, ...]
    hop: int  # frames between windows
    cache: Path
    chains: dict
    g: list[Clip]  # genre tracks
    n: list[Clip]  # non-music clips and genre-less music
    gset: WindowSet
    nset: WindowSet
    extra: WindowSet | None  # crops and copies through the training rooms
    room_set: WindowSet | None  # every clip once through a held-out room
    oof: OutOfFold
    final: Heads
    unseen: set[str]
    log: Callable[[str], None]


def _given(**options) -> dict:
    """The options the user set (argparse leaves the rest None), so a recipe's dataclass supplies its own defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _whole(minimum: int) -> Callable[[str], int]:
    """An argparse type for a whole number >= ``minimum``, so a bad value's one-line error names its option."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value
    return parse


def _real(accept: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    """An argparse type for a number that ``accept`` takes (NaN never passes), described as ``wanted``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isnan(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value
    return parse


_positive = _whole(1)
_non_negative = _real(lambda v: 0 <= v < math.inf, "a finite number >= 0")
_probability = _real(lambda v: 0 < v < 1, "a number strictly between 0 and 1")


def _features(text: str) -> tuple[str, ...]:
    from .embed import PARTS

    features = tuple(dict.fromkeys(f.strip() for f in text.split(",")))
    for f in features:
        backbone, _, part = f.partition(":")
        if backbone not in BACKBONE_DATA or part not in PARTS:
            raise argparse.ArgumentTypeError(f"expected backbone:part ({', '.join(BACKBONE_DATA)}; "
                                             f"{', '.join(PARTS)}), got {f!r}")
    return features


def _seed_figures(seed: int, cv: dict) -> dict:
    """One student seed's headline figures: track accuracy clean and through held-out rooms (None without them)."""
    room = cv.get("room")
    return {"seed": seed, "clean": cv["genre"]["all"]["track_accuracy"],
            "room": room["genre"]["all"]["track_accuracy"] if room else None}


def _whole_numbers(text: str) -> tuple[int, ...]:
    """``"16,32,64"`` -> ``(16, 32, 64)``; ``()`` for text that is not such a list."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        return ()


def _seeds(text: str) -> tuple[int, ...]:
    seeds = _whole_numbers(text)
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"expected different whole numbers like 0,1,2, got {text!r}")
    return seeds


def _widths(text: str) -> tuple[int, ...]:
    widths = _whole_numbers(text)
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected positive channel counts like 16,32,64,128, got {text!r}")
    return widths


def _train(args) -> int:
    import numpy as np
    import soundfile as sf
    from genrecast.daemon.model import load_model
    from genrecast.dsp import GTZAN_GENRES, audio_folder
    from genrecast.dsp.windows import hop_frames

    from genrecast.errors import UserError

    try:  # the [train] extras: a wheel installed for the daemon alone has none of them
        import torch

        from .acoustic import BENCH, TRAIN
    except ModuleNotFoundError as exc:
        raise UserError(f"train-transfer needs the training extras ({exc.name} is not installed): install genrecast "
                        "with them, from its wheel (pip install 'genrecast-VERSION-py3-none-any.whl[train]') or its "
                        "checkout (pip install '.[train]'; genrecast is not on PyPI)") from None

    from . import DEFAULT_CACHE
    from .cache import ACOUSTIC, prune, start_run
    from .corpus import base_id, genre_clips, heard_through, read_corpus, short_crops
    from .embed import embed_clips
    from .musicnn import MUSICNN_DSP, N_FRAMES, WINDOW_SECONDS, load_musicnn
    from .synth_noise import write_synthetic
    from .tf_checkpoint import CheckpointError
    from .transfer import HeadConfig, TransferNet, WindowSet
    from .transfer_cv import cross_validate, fit_calibrated, held_out, predict_held_out
    from .transfer_report import summarise

    if args.hold_out > args.folds:
        raise UserError(f"--hold-out {args.hold_out} names no fold: there are {args.folds} (--folds)")
    fast_only = [f"--{k.replace('_', '-')}" for k in ("fast_epochs", "fast_stride", "fast_crops",
                                                       "fast_synthetic_noise", "fast_seeds", "fast_widths",
                                                       "fast_version") if getattr(args, k) is not None]
    if fast_only and not args.fast:
        raise UserError(f"{fast_only[0]} shapes the fast variant, which only --fast trains")
    args.fast_crops = FAST_CROPS if args.fast_crops is None else args.fast_crops  # None: not given (above)
    args.fast_synthetic_noise = args.fast_synthetic_noise or 0
    torch.set_num_threads(args.threads)
    try:
        cfg = HeadConfig(**_given(l2=args.l2, music_l2=args.music_l2, copy_weight=args.copy_weight,
                                  features=args.features, music_features=args.music_features))
    except ValueError as exc:
        raise UserError(f"{exc} (--features, --music-features)") from None
    try:  # pruned: the same activations, 3x faster
        backbones = {name: load_musicnn(args.backbone, name).pruned() for name in cfg.backbones}
    except CheckpointError as exc:
        raise UserError(f"{exc} ({FETCH_BACKBONE})") from None
    hop = hop_frames(MUSICNN_DSP, 1.0)
    cache = args.cache or DEFAULT_CACHE
    for flag in ("data", "nonmusic", "ood", "rir"):  # before the run folder is made: nothing half-written
        try:
            if getattr(args, flag) is not None:
                audio_folder(getattr(args, flag))
        except FileNotFoundError as exc:
            raise UserError(f"--{flag} {exc}") from None
    if args.rir is not None and not any(args.rir.glob("*.flac")):
        raise UserError(f"--rir {args.rir}: no impulse responses (*.flac) in it")
    tracks = len(genre_clips(args.data, GTZAN_GENRES))
    if tracks < args.folds:
        raise UserError(f"--data {args.data}: {tracks} GTZAN tracks (<genre>.<n>.<ext>, such as rock.00012.wav) "
                        f"found, fewer than the {args.folds} folds")
    _check_sources(args)
    out = args.out or Path("runs") / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-transfer"
    if (out / "model.onnx").exists():
        raise UserError(f"--out {out}: holds a run's model.onnx already; give a new folder, or remove it")
    _make_folder(cache, "--cache")
    cache_run = start_run(cache)  # every entry this run reads or writes is marked after its start
    made = not out.exists()
    _make_folder(out, "--out")
    synthetic = (write_synthetic(out / "synthetic-noise", args.synthetic_noise, args.seed) if args.synthetic_noise
                 else None)
    corpus = read_corpus(args.data, args.nonmusic, args.ood, synthetic)
    gclips, nclips, labels, repeats = corpus.genre, corpus.other, corpus.labels, corpus.repeats

    def log(msg: str) -> None:
        print(msg, flush=True)

    if repeats:
        log(f"left out {len(repeats)} files repeating another (first: {repeats[0][0].path}: {repeats[0][1]})")

    def embed(clips, max_windows, chains=None):
        kept, acts, skipped = embed_clips(clips, backbones, MUSICNN_DSP, N_FRAMES, hop, cache, max_windows, log, chains)
        return kept, WindowSet.build(kept, acts, cfg.features), skipped

    g, gset, g_skip = embed(gclips, 0)
    n, nset, n_skip = embed(nclips, args.max_nonmusic_windows)
    log(f"embedded {len(g)} genre tracks ({len(gset.x)} windows) and {len(n)} other clips ({len(nset.x)} windows); "
        f"{len(g_skip) + len(n_skip)} skipped (under 1 s or unreadable)")
    unreadable = [f"--data {args.data}: {len(g)} readable genre tracks, fewer than the {args.folds} folds"
                  ] if len(g) < args.folds else []
    unreadable += [f"--nonmusic {args.nonmusic}: no readable {kind}/ clip; the music / no-music head needs recorded "
                   "speech and noise" for kind in ("speech", "noise") if not any(c.kind == kind for c in n)]
    if unreadable:
        if made:  # a run folder this run made holds nothing worth keeping yet (its generated noise)
            shutil.rmtree(out, ignore_errors=True)
        raise UserError(unreadable[0])
    extra = []  # clips made from the recorded ones, trained on only in the folds that train on their originals
    if args.crops:
        rng = np.random.default_rng(args.seed)
        extra.append(embed([c for clip in g if clip.kind == "long"
                            for c in short_crops(clip, sf.info(str(clip.path)).duration, args.crops, rng)], 0)[1])
    chains = _chains(args, n, cache / ACOUSTIC) if args.augment or args.room_figures else {}
    if args.augment:
        extra.append(embed([heard_through(c, TRAIN, i) for c in g for i in range(args.augment)], 0, chains)[1])
        extra.append(embed([heard_through(c, TRAIN, i, NONMUSIC_COPY_SECONDS) for c in n for i in range(args.augment)],
                           args.max_nonmusic_windows, chains)[1])
        log(f"embedded {args.augment} copies of every clip through the training chain ({sum(len(e.x) for e in extra)} "
            "windows)")
    extra = _joined(extra)

    oof = cross_validate(gset, nset, labels, cfg, args.folds, args.seed, extra)
    heard = _in_training_banks if args.augment else None
    cv = summarise(oof.clips, oof.genre_probs, oof.music_probs, labels, args.music_threshold, heard)
    cv["temperatures"] = [round(h.temperature, 4) for h in oof.heads]
    if oof.direct_probs is not None:
        cv["direct_temperatures"] = [round(h.direct_temperature, 4) for h in oof.heads]
    cv["folds"] = args.folds
    log(cv["text"])
    room_set = None
    if args.room_figures:  # every clip once through a held-out room, predicted by the fold that held it out
        _, g_room, _ = embed([heard_through(c, BENCH, 0) for c in g], 0, chains)
        _, n_room, _ = embed([heard_through(c, BENCH, 0, NONMUSIC_COPY_SECONDS) for c in n], args.max_nonmusic_windows,
                             chains)
        room_set = g_room.join(n_room)
        gp, mp = predict_held_out(oof, room_set)
        cv["room"] = summarise(room_set.clips, gp, mp, labels, args.music_threshold, heard)
        log("through held-out rooms:\n" + cv["room"]["text"])
    if oof.direct_probs is not None:
        cv["direct"] = _head_figures(oof, room_set, labels, args.music_threshold, "direct")
        log("the direct genre head (recorded clips alone):\n" + cv["direct"].pop("text"))
    if oof.room_probs is not None:
        cv["heard"] = _head_figures(oof, room_set, labels, args.music_threshold, "heard")
        log("both genre heads weighed by the room detector (heard = auto):\n" + cv["heard"].pop("text"))
    if args.ood:
        cv["cross_source"] = _cross_source(gset, nset, extra, room_set, cfg)
        log("across collections: " + json.dumps({k: {t: round(v[t]["track_accuracy"], 3) for t in ("clean", "room")
                                                     if t in v} for k, v in cv["cross_source"].items()}))
        for head in ("direct", "heard"):
            if any(head in v for v in cv["cross_source"].values()):
                log(f"across collections, {head}: " + json.dumps(
                    {k: {t: round(x["track_accuracy"], 3) for t, x in v[head].items()}
                     for k, v in cv["cross_source"].items()}))

    # the shipped heads: every track and clip (but a --hold-out fold); the temperature is the folds' median
    g_all = gset if extra is None else gset.join(extra.where(lambda c: c.genre is not None))
    n_all = nset if extra is None else nset.join(extra.where(lambda c: c.genre is None))
    unseen = {c.clip_id for c in held_out(g, n, args.folds, args.hold_out - 1, args.seed)} if args.hold_out else set()
    if unseen:
        g_all, n_all = (s.where(lambda c: base_id(c) not in unseen) for s in (g_all, n_all))
        log(f"the exported heads never see fold {args.hold_out}/{args.folds} ({len(unseen)} clips)")
    final = fit_calibrated(g_all, g_all.join(n_all), labels, cfg, None)
    final.temperature = float(np.median([h.temperature for h in oof.heads]))
    if final.has_direct:
        final.direct_temperature = float(np.median([h.direct_temperature for h in oof.heads]))
    data = {"genre_tracks": {src: sum(c.source == src for c in g) for src in ("gtzan", "ood")},
            "ood_licence": OOD_LICENCE if args.ood else None, "nonmusic_clips": {k: sum(c.kind == k for c in n) for k in
                                                       ("speech", "noise", "synthetic", "music")},
            "skipped": [f"{c.path}: {why}" for c, why in repeats + g_skip + n_skip]}
    spec = _export(out / "model.onnx", TransferNet(backbones, final), args, labels, WINDOW_SECONDS, {
        "recipe": "transfer", "backbone": f"{' + '.join(backbones)} (frozen)",
        "backbone_licence": f"{BACKBONE_LICENCE}; weights trained on "
                            + ", ".join(f"{name}: {BACKBONE_DATA[name]}" for name in backbones),
        "heads": {**cfg.to_dict(), "direct_head": final.has_direct, "room_detector": final.has_room_detector},
        "temperature": round(final.temperature, 4),
        "direct_temperature": round(final.direct_temperature, 4) if final.has_direct else None,
        "crops_per_long_track": args.crops,
        "acoustic": {"copies": args.augment, "train": TRAIN.to_dict(), "bench": BENCH.to_dict(),
                     "real_impulse_responses": str(args.rir) if args.rir else None} if args.augment else None,
        "data": data, "cv": {k: v for k, v in cv.items() if k != "text"},
        "held_out": {"fold": args.hold_out, "folds": args.folds, "seed": args.seed} if args.hold_out else None,
        "caveats": _caveats(cv, "transfer"),
    }, tags=cfg.backbones[0], direct_head=final.has_direct, room_detector=final.has_room_detector)
    load_model(out / "model.onnx")
    (out / "cv.json").write_text(json.dumps({"spec": json.loads(spec.to_json()), "cv": cv,
                                             "oof": _oof_rows(oof.clips, oof.genre_probs, oof.music_probs, oof.fold,
                                                              labels)}, indent=1))
    log(f"run folder {out}: model.onnx ({(out / 'model.onnx').stat().st_size / 1024:.0f} kB), cv.json")
    if args.fast:
        _fast(args, TeacherRun(out, backbones, labels, hop, cache, chains, g, n, gset, nset, extra, room_set, oof,
                               final, unseen, log))
    if args.prune_cache:
        pruned = prune(cache_run)
        if pruned.busy:
            log(f"cache {cache}: another run is using it; nothing pruned")
        else:
            log(f"cache {cache}: removed {pruned.entries} entries this run did not use "
                f"({pruned.size_bytes / 2**20:.0f} MB)")
        for why in pruned.failed:
            log(f"cache: could not remove {why}")
    return 0


def _head_figures(oof: OutOfFold, room_set: WindowSet | None, labels, threshold: float, head: str) -> dict:
    """Cross-validated genre scores of the direct genre head or of both weighed by the room detector (``head``:
    ``direct``, ``heard``), and through held-out rooms when they were measured: the card sets them beside the room
    head's, since the daemon reads each for its kind of source. For ``heard``, also how many clips the detector
    calls heard through a room (its windows' mean over 0.5), as recorded and through held-out rooms."""
    from .transfer_cv import predict_held_out, room_held_out
    from .transfer_report import summarise

    cv = summarise(oof.clips, oof.direct_probs if head == "direct" else oof.heard_probs, oof.music_probs, labels,
                   threshold)
    out = {"genre": cv["genre"], "text": cv["text"].split("\nno_music")[0]}
    if head == "heard":
        out["called_room"] = {"recorded": _called_room(oof.clips, oof.room_probs)}
    if room_set is not None:
        gp, mp = predict_held_out(oof, room_set, head)
        room = summarise(room_set.clips, gp, mp, labels, threshold)
        out["room"] = {"genre": room["genre"]}
        out["text"] += "\nthrough held-out rooms: " + room["text"].split("\n")[0]
        if head == "heard":
            out["called_room"]["room"] = _called_room(room_set.clips, room_held_out(oof, room_set))
    if head == "heard":
        out["text"] += "\nclips called heard through a room: " + json.dumps(out["called_room"])
    return out


def _called_room(clips, room_probs) -> dict:
    """The share of genre tracks and of other clips whose windows' mean room probability is over 0.5."""
    import numpy as np

    called = np.array([p.mean() > 0.5 for p in room_probs])
    genre = np.array([c.genre is not None for c in clips])
    return {part: round(float(called[keep].mean()), 4) for part, keep in (("genre", genre), ("other", ~genre))
            if keep.any()}


def _chains(args, nonmusic, cache: Path) -> dict:
    """The training and bench chains over banks drawn from the recorded noise and speech (each its own half)."""
    from .acoustic import BENCH, TRAIN, Chain, build_banks
    from .corpus import bank_sources

    noise, speech = bank_sources(nonmusic)
    return {cfg.fingerprint(): Chain(cfg, build_banks(cfg, cache, noise, speech, args.rir)) for cfg in (TRAIN, BENCH)}


def _in_training_banks(clip) -> bool:
    """Whether the training chain's banks hold this non-music clip's voice or noise. They are drawn once, from half of
    all groups, so a held-out clip's own sound may be background in its fold's training copies: its no_music answer
    is then not on a sound never heard (a review found the card's figures half made of such clips)."""
    from .acoustic import TRAIN, banks_hold
    from .corpus import BANK_KINDS

    return clip.kind in BANK_KINDS and banks_hold(TRAIN, clip.group)


def _joined(sets):
    if not sets:
        return None
    out = sets[0]
    for s in sets[1:]:
        out = out.join(s)
    return out


def _cross_source(gset, nset, extra, room_set, cfg) -> dict:
    """Train on one collection, test on the other, both ways (clean, and through held-out rooms when measured)."""
    from .transfer_cv import cross_source

    music = nset if extra is None else nset.join(extra.where(lambda c: c.genre is None))
    out = {}
    for train_on, test_on in (("gtzan", "ood"), ("ood", "gtzan")):
        train = gset.where(lambda c, s=train_on: c.source == s)
        if extra is not None:
            train = train.join(extra.where(lambda c, s=train_on: c.genre is not None and c.source == s))
        tests = {"clean": gset.where(lambda c, s=test_on: c.source == s)}
        if room_set is not None:
            tests["room"] = room_set.where(lambda c, s=test_on: c.genre is not None and c.source == s)
        out[f"{train_on}_to_{test_on}"] = cross_source(train, music, tests, cfg)
    return out


def _export(path: Path, net, args, labels, window_seconds: float, training: dict, tags: str | None = None,
            direct_head: bool = False, room_detector: bool = False):
    """``tags``: the backbone whose tag probabilities ``net`` also returns (a :class:`TransferNet`), named in the
    spec; ``direct_head``: ``net`` also returns its direct genre head's probabilities; ``room_detector``: then its
    room detector's."""
    from genrecast.dsp import ModelSpec
    from genrecast.dsp.modelspec import STAGES

    from .export import export_onnx
    from .musicnn import MUSICNN_DSP, TAG_ORIGIN, TAGS

    fast = path.name != "model.onnx"
    spec = ModelSpec(name=f"{args.name}-fast" if fast else args.name,
                     version=(args.fast_version or args.version) if fast else args.version,
                     labels=labels, dsp=MUSICNN_DSP, stages=STAGES, window_seconds=window_seconds, hop_seconds=1.0,
                     input_norm={"kind": "inside the graph: " + ("musicnn's log10(1 + 10000 * mel power), then its "
                                 "input batch norm" if training["recipe"] == "transfer" else
                                 "per-mel-band standardisation")},
                     training=training, music_threshold=args.music_threshold,
                     tags=TAGS[tags] if tags else (),
                     tag_origin=TAG_ORIGIN[tags] if tags else None,
                     tag_threshold=args.tag_threshold if tags else None, direct_head=direct_head,
                     room_detector=room_detector)
    export_onnx(net, spec, path)
    return spec


def _caveats(cv: dict, recipe: str) -> list[str]:
    a = cv["genre"]
    parts = ", ".join(f"{name} {a[part]['track_accuracy']:.3f}" for part, name in
                      (("long", "GTZAN long excerpts"), ("short", "GTZAN 2-3 s clips"),
                       ("ood", "Magnatune excerpts")) if part in a)
    room_head = " (the room head)" if "direct" in cv else ""
    notes = [
        f"{recipe}{room_head}: {cv['folds']}-fold cross-validated track accuracy {a['all']['track_accuracy']:.3f} over "
        f"{a['all']['n_tracks']} tracks ({parts}); GTZAN repeats artists and the folds are by track, so "
        "this is optimistic for unseen artists",
    ]
    if "cross_source" in cv:
        x = cv["cross_source"]
        notes.append(f"across collections{room_head} (trained on one, tested on the other's shared genres): GTZAN to "
                     "Magnatune "
                     f"{x['gtzan_to_ood']['clean']['track_accuracy']:.3f}, Magnatune to GTZAN "
                     f"{x['ood_to_gtzan']['clean']['track_accuracy']:.3f}: expect about this on music from elsewhere")
        if "direct" in x["gtzan_to_ood"]:
            notes.append("the direct genre head (heard = direct; without a room detector what files, pipes and "
                         "streams read): GTZAN to Magnatune "
                         f"{x['gtzan_to_ood']['direct']['clean']['track_accuracy']:.3f}, Magnatune to GTZAN "
                         f"{x['ood_to_gtzan']['direct']['clean']['track_accuracy']:.3f}")
        if "heard" in x["gtzan_to_ood"]:
            notes.append("heard = auto, both genre heads weighed window by window by the room detector (the default "
                         "for any source but a microphone): "
                         f"GTZAN to Magnatune {x['gtzan_to_ood']['heard']['clean']['track_accuracy']:.3f}, Magnatune "
                         f"to GTZAN {x['ood_to_gtzan']['heard']['clean']['track_accuracy']:.3f}")
    else:  # the fast variant's (distilled: no cross-collection figures), or a run without --ood
        corpus = " and ".join(f"{a[part]['n_tracks']} {name}" for part, name in (
            ("gtzan", "GTZAN tracks (the ten genres as GTZAN's 2002 collection holds them, artists repeated)"),
            ("ood", "Magnatune excerpts (classical, pop, rock, electronic)")) if part in a)
        notes.append(f"trained on excerpts of {corpus}: other styles and recording conditions are not covered")
    if "room" in cv:
        room = cv["room"]["genre"]["all"]["track_accuracy"]
        notes.append(f"through held-out simulated home rooms the same folds score {room:.3f} (training.acoustic's "
                     "bench chain); real rooms, loudspeakers and noises may differ")
    if "room" in cv.get("heard", {}):
        heard, called = cv["heard"], cv["heard"]["called_room"]
        notes.append(f"heard = auto scores {heard['genre']['all']['track_accuracy']:.3f} as recorded and "
                     f"{heard['room']['genre']['all']['track_accuracy']:.3f} through held-out rooms; the room detector "
                     f"takes {called['recorded']['genre']:.3f} of recorded tracks and {called['room']['genre']:.3f} of "
                     "tracks through held-out rooms for a room (simulated rooms: a real one is untested)")
    notes.append("no_music was learned from read and broadcast speech, home-microphone phrases, spoken digits, "
                 "household machines, Freesound noises, room tone, baby cries and generated hiss, hum, clicks and fan "
                 "noise; other sounds are untested")
    return notes


def _oof_rows(clips, genre_probs, music_probs, folds, labels) -> list[dict]:
    import numpy as np

    rows = []
    for c, gp, mp, f in zip(clips, genre_probs, music_probs, folds, strict=True):
        mean = gp.mean(axis=0)
        rows.append({"clip": c.clip_id, "genre": c.genre, "kind": c.kind, "fold": f, "windows": len(gp),
                     "predicted": labels[int(np.argmax(mean))], "probability": round(float(mean.max()), 4),
                     "music": round(float(mp.mean()), 4)})
    return rows


def _fast(args, run: TeacherRun) -> None:
    """Distil the fast variant in every fold (teacher = that fold's heads) and once on everything; its transfer set
    is every clip, clean and heard through the training rooms, labelled by the teacher. Each fold's student is
    exported too (``fast-fold<k>.onnx``: ``benchmarks/room_bench.py`` scores it on the fold it never heard) and, with
    ``room_set``, scored on its fold's clips through the held-out rooms, as the teacher's heads are. The exported
    student, like the exported heads, never hears the ``unseen`` clips (a ``--hold-out`` fold)."""
    import numpy as np
    import soundfile as sf
    import torch
    from genrecast.daemon.model import load_model

    from .acoustic import TRAIN
    from .corpus import base_id, heard_through, nonmusic_clips, read_clip_windows, short_crops
    from .distill import DistillConfig, predict, train_student
    from .embed import embed_clips
    from .musicnn import MUSICNN_DSP, N_FRAMES, WINDOW_SECONDS
    from .synth_noise import write_synthetic
    from .transfer import WindowSet
    from .transfer_cv import fold_parts
    from .transfer_report import summarise

    seeds = args.fast_seeds or (args.seed,)
    cfg = DistillConfig(threads=args.threads, seed=seeds[0],
                        **_given(epochs=args.fast_epochs, widths=args.fast_widths, window_stride=args.fast_stride))
    raw = {c.clip_id: read_clip_windows(c, MUSICNN_DSP, N_FRAMES, run.hop,
                                        args.max_nonmusic_windows if c.genre is None else 0) for c in run.g + run.n}
    feats = {c.clip_id: run.gset.x[run.gset.clip_index == i] for i, c in enumerate(run.gset.clips)}
    feats |= {c.clip_id: run.nset.x[run.nset.clip_index == i] for i, c in enumerate(run.nset.clips)}
    rng = np.random.default_rng(args.seed)  # the same crops as --crops draws, so their embeddings are cached
    crops = [c for clip in run.g if clip.kind == "long"
             for c in short_crops(clip, sf.info(str(clip.path)).duration, args.fast_crops, rng)]
    crops, crop_acts, _ = embed_clips(crops, run.backbones, MUSICNN_DSP, N_FRAMES, run.hop, run.cache, 0, run.log)
    cset = WindowSet.build(crops, crop_acts, run.final.features)
    feats |= {c.clip_id: cset.x[cset.clip_index == i] for i, c in enumerate(cset.clips)}
    raw |= {c.clip_id: read_clip_windows(c, MUSICNN_DSP, N_FRAMES, run.hop) for c in crops}
    copies = [c for c in run.extra.clips if c.acoustic is not None] if run.extra is not None else []
    feats |= {c.clip_id: run.extra.x[run.extra.clip_index == i] for i, c in enumerate(run.extra.clips)
              if c.acoustic is not None}
    raw |= {c.clip_id: read_clip_windows(c, MUSICNN_DSP, N_FRAMES, run.hop,
                                         0 if c.genre else args.max_nonmusic_windows, run.chains) for c in copies}

    heard = []  # the student's own generated noise: no fold scores it, so every student hears all of it
    if args.fast_synthetic_noise:
        made = nonmusic_clips(write_synthetic(run.out / "fast-synthetic-noise", args.fast_synthetic_noise,
                                              args.seed + 1, prefix="student"))
        made += [heard_through(c, TRAIN, i, NONMUSIC_COPY_SECONDS) for c in made for i in range(args.augment)]
        heard, acts, _ = embed_clips(made, run.backbones, MUSICNN_DSP, N_FRAMES, run.hop, run.cache,
                                     args.max_nonmusic_windows, run.log, run.chains)
        hset = WindowSet.build(heard, acts, run.final.features)
        feats |= {c.clip_id: hset.x[hset.clip_index == i] for i, c in enumerate(hset.clips)}
        raw |= {c.clip_id: read_clip_windows(c, MUSICNN_DSP, N_FRAMES, run.hop, args.max_nonmusic_windows, run.chains)
                for c in heard}
        run.log(f"the student also hears {len(heard)} generated noise clips and copies of its own ({len(hset.x)} "
                "windows)")

    def student_for(clips, heads, cfg=cfg):
        tracks = {c.clip_id for c in clips}
        # crops and room copies of the clips it may learn from, and its own noise; every window_stride-th window
        clips = list(clips) + [c for c in crops + copies if base_id(c) in tracks] + heard
        x = np.concatenate([raw[c.clip_id][:: cfg.window_stride] for c in clips])
        gp, mp = heads.predict(np.concatenate([feats[c.clip_id][:: cfg.window_stride] for c in clips]))
        return train_student(x, gp, mp, cfg, run.log)

    rooms = list(run.room_set.clips) if run.room_set is not None else []
    raw |= {c.clip_id: read_clip_windows(c, MUSICNN_DSP, N_FRAMES, run.hop,
                                         0 if c.genre else args.max_nonmusic_windows, run.chains) for c in rooms}
    clips = run.g + run.n

    def cross_validate_students(seed_cfg, export: bool):
        """Every fold's student of ``seed_cfg``, scored on the fold it never heard (clean and through rooms)."""
        genre_probs, music_probs, fold_of = {}, {}, {}
        for k, heads in enumerate(run.oof.heads):
            parts = fold_parts(run.gset, run.nset, args.folds, k, args.seed)
            run.log(f"fast variant, seed {seed_cfg.seed}, fold {k + 1}/{args.folds}")
            student = student_for(parts["train"] + parts["val"] + parts["n_train"], heads, seed_cfg)
            tested = {c.clip_id for c in parts["test"] + parts["n_test"]}
            for c in parts["test"] + parts["n_test"] + [c for c in rooms if base_id(c) in tested]:
                genre_probs[c.clip_id], music_probs[c.clip_id] = predict(student, raw[c.clip_id])
                fold_of[c.clip_id] = k
            if export:
                _export(run.out / f"fast-fold{k + 1}.onnx", student, args, run.labels, WINDOW_SECONDS, {
                    "recipe": "distilled", "teacher": f"{args.name}-{args.version}, fold {k + 1}'s heads",
                    "config": seed_cfg.to_dict(), "held_out": {"fold": k + 1, "folds": args.folds, "seed": args.seed}})
        heard = _in_training_banks if args.augment else None  # the students learned the same copies
        cv = summarise(clips, [genre_probs[c.clip_id] for c in clips], [music_probs[c.clip_id] for c in clips],
                       run.labels, args.music_threshold, heard)
        cv["folds"] = args.folds
        run.log(f"fast variant, seed {seed_cfg.seed}:\n" + cv["text"])
        if rooms:
            cv["room"] = summarise(rooms, [genre_probs[c.clip_id] for c in rooms],
                                   [music_probs[c.clip_id] for c in rooms], run.labels, args.music_threshold, heard)
            run.log(f"fast variant, seed {seed_cfg.seed}, through held-out rooms:\n" + cv["room"]["text"])
        return cv, genre_probs, music_probs, fold_of

    runs = {seed: cross_validate_students(replace(cfg, seed=seed), seed == seeds[0]) for seed in seeds}
    cv, genre_probs, music_probs, fold_of = runs[seeds[0]]
    by_seed = [_seed_figures(seed, r[0]) for seed, r in runs.items()]
    if len(seeds) > 1:
        run.log("fast variant over seeds " + "; ".join(
            f"{f['seed']}: {f['clean']:.3f} clean" + (f", {f['room']:.3f} through rooms" if rooms else "")
            for f in by_seed))
    student = student_for([c for c in clips if c.clip_id not in run.unseen], run.final)
    torch.save(student.state_dict(), run.out / "fast.pt")
    spec = _export(run.out / "fast.onnx", student, args, run.labels, WINDOW_SECONDS, {
        "recipe": "distilled", "teacher": f"{args.name}-{args.version}", "config": cfg.to_dict(),
        # which file taught it: a rebuild of the teacher's recipe has its model_id but not always its bytes
        "teacher_sha256": hashlib.sha256((run.out / "model.onnx").read_bytes()).hexdigest(),
        "teacher_labelled_crops_per_long_track": args.fast_crops,
        # it learned its teacher's answers on the same audio: the excerpts' licence binds it as it binds the teacher
        "data": {"ood_licence": OOD_LICENCE if args.ood else None},
        "teacher_licence": f"distilled from the teacher's answers; the teacher's backbone: {BACKBONE_LICENCE}",
        "own_synthetic_noise_per_kind": args.fast_synthetic_noise,
        "parameters": sum(p.numel() for p in student.parameters()),
        "cv": {k: v for k, v in cv.items() if k != "text"},
        "cv_by_seed": by_seed,
        "caveats": _caveats(cv, "fast variant"),
    })
    load_model(run.out / "fast.onnx")
    (run.out / "fast_cv.json").write_text(json.dumps({"spec": json.loads(spec.to_json()), "cv": cv, "oof": _oof_rows(
        clips, [genre_probs[c.clip_id] for c in clips], [music_probs[c.clip_id] for c in clips],
        [fold_of[c.clip_id] for c in clips], run.labels)}, indent=1))
    size_kb = (run.out / "fast.onnx").stat().st_size / 1024
    run.log(f"fast variant: {run.out / 'fast.onnx'} ({size_kb:.0f} kB), fast_cv.json")
