"""``genrecast train`` and ``genrecast evaluate``. torch is imported inside the handlers only, so the daemon's
commands never pay for it."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

AUGMENTS = ("crop", "gain", "mask", "mixup")
DEFAULT_AUGMENTS = "crop,gain,mask"
# below this many training tracks per genre a model is a pipeline demonstration, not a genre classifier
TINY_TRACKS_PER_GENRE = 50
# below this many validation tracks per genre one fitted temperature is mostly noise (4-fold CV on 10-track
# validation sets: calibration error no better than without it; see models/README.md)
FEW_VAL_TRACKS_PER_GENRE = 5


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a genre model on a labelled folder and export it to ONNX",
                       description="Train on a GTZAN-style folder (<genre>/<genre>.NNNNN.ext or flat files); "
                                   "writes a run folder with the ONNX model, metrics JSON and plots.")
    t.add_argument("--data", required=True, type=Path, help="folder of labelled audio")
    t.add_argument("--model", choices=("baseline", "default"), default="default")
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--patience", type=int, default=12, help="epochs without a better validation loss before stopping")
    t.add_argument("--seed", type=int, default=0, help="seed for initialisation and augmentation")
    t.add_argument("--split", type=Path, help="split folder with train.txt, val.txt, test.txt (default: random)")
    t.add_argument("--split-seed", type=int, default=0, help="seed of the random stratified split by track")
    t.add_argument("--fold", help="I/K: test on fold I of a stratified K-fold by track (seeded by --split-seed)")
    t.add_argument("--augment", default=DEFAULT_AUGMENTS,
                   help=f"comma list of {', '.join(AUGMENTS)}, or 'none' (default {DEFAULT_AUGMENTS})")
    t.add_argument("--no-calibration", action="store_true",
                   help="skip fitting a temperature on the validation windows (probabilities = plain softmax)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = reproducible and frugal)")
    t.add_argument("--max-steps", type=int, default=0, help="stop after this many optimiser steps (smoke tests)")
    t.add_argument("--out", type=Path, help="run folder (default runs/<utc time>-<model>-s<seed>)")
    t.add_argument("--name", default="genrecast-gtzan", help="model name stored in the metadata")
    t.add_argument("--version", default="0.1.0", help="model version stored in the metadata")
    _cache_args(t)
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="score an ONNX model on a folder or one part of a split",
                       description="Window- and track-level accuracy, per-genre precision/recall/F1, confusion.")
    e.add_argument("--model", required=True, type=Path, help="ONNX model written by genrecast train")
    e.add_argument("--data", required=True, type=Path, help="folder of labelled audio")
    e.add_argument("--part", choices=("all", "train", "val", "test"), default="all",
                   help="tracks to score: all in the folder, or one part of the split (default all)")
    e.add_argument("--split", type=Path, help="split folder (default: the split stored in the model)")
    e.add_argument("--json", type=Path, help="also write the evaluation as JSON here")
    e.add_argument("--confusion-png", type=Path, help="also plot the track-level confusion matrix here")
    _cache_args(e)
    e.set_defaults(func=_evaluate, fold=None)  # evaluate reads the split stored in the model


def _cache_args(p: argparse.ArgumentParser) -> None:
    # The default is resolved in the handler: importing training.dataset here would load numba for every
    # `genrecast` command, `--help` included.
    p.add_argument("--cache", type=Path, help="feature cache (default $XDG_CACHE_HOME/genrecast/features, "
                                               "i.e. ~/.cache/genrecast/features)")
    p.add_argument("--no-cache", action="store_true", help="compute features afresh and store nothing")


def _augment_config(text: str):
    from .augment import NONE, AugmentConfig

    names = set() if text == "none" else {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(AUGMENTS)
    if unknown:
        from genrecast.errors import UserError

        raise UserError(f"unknown augmentation {', '.join(sorted(unknown))} (choose from {', '.join(AUGMENTS)})")
    full = AugmentConfig(mixup_alpha=0.4)
    return AugmentConfig(
        crop="crop" in names,
        gain_db=full.gain_db if "gain" in names else NONE.gain_db,
        freq_masks=full.freq_masks if "mask" in names else NONE.freq_masks,
        time_masks=full.time_masks if "mask" in names else NONE.time_masks,
        mixup_alpha=full.mixup_alpha if "mixup" in names else NONE.mixup_alpha,
    )


def _load(args, spec):
    from genrecast.errors import UserError

    from .dataset import DEFAULT_CACHE, load

    try:
        ds = load(args.data, spec.dsp, spec.labels, spec.n_frames,
                  None if args.no_cache else args.cache or DEFAULT_CACHE)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    for s in ds.skipped:
        print(f"skipped {s.path}: {s.reason}")
    print(f"{len(ds.tracks)} tracks from {args.data} ({ds.cache_hits} from the feature cache)")
    if not ds.tracks:
        raise UserError(f"{args.data}: no usable tracks named <genre>.<id>.<ext> with genre in {list(spec.labels)}")
    return ds


def _split(args, ds, stored: dict | None = None):
    from genrecast.errors import UserError

    from .split import Split, SplitError, kfold_split, random_split, read_split, restrict

    try:
        if args.fold:
            if args.split:
                raise SplitError("give --split or --fold, not both")
            fold, _, folds = args.fold.partition("/")
            if not (fold.isdigit() and folds.isdigit()):
                raise SplitError(f"--fold takes I/K such as 2/4, got {args.fold!r}")
            split = kfold_split(ds.tracks, int(folds), int(fold) - 1, args.split_seed)
        elif args.split:
            split = read_split(args.split)
        elif stored:
            split = Split.from_dict(stored)
        else:
            split = random_split(ds.tracks, args.split_seed)
        split, missing = restrict(split, [t.track_id for t in ds.tracks])
    except SplitError as exc:
        raise UserError(str(exc)) from None
    if missing:
        print(f"split names {len(missing)} tracks with no usable audio, left out: {', '.join(missing)}")
    return split


def _train(args) -> int:
    import torch
    from genrecast.daemon.model import load_model
    from genrecast.dsp import ModelSpec

    from genrecast.errors import UserError

    from .evaluate import evaluate
    from .export import export_onnx
    from .models import count_parameters
    from .report import plot_confusion, plot_history
    from .train import Progress, TrainConfig, train

    spec = ModelSpec(name=args.name, version=args.version)
    hop = _hop(spec)
    cfg = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      patience=args.patience, seed=args.seed, threads=args.threads, max_steps=args.max_steps,
                      augment=_augment_config(args.augment))
    if min(cfg.epochs, cfg.batch_size, cfg.threads) < 1:
        raise UserError("--epochs, --batch-size and --threads must be at least 1")
    ds = _load(args, spec)
    split = _split(args, ds)
    parts = {p: ds.subset(split.part(p)) for p in ("train", "val", "test")}
    print("split " + ", ".join(f"{p} {len(d.tracks)}" for p, d in parts.items()) + f" tracks ({split.source})")

    out = args.out or Path("runs") / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{args.model}-s{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    result = train(parts["train"], parts["val"], spec.labels, spec.n_frames, hop, cfg,
                   checkpoint=out / "checkpoint.pt", progress=Progress())
    model = result.model
    calibration = None if args.no_calibration else _calibrate(model, parts["val"], spec, hop)

    def predict(windows):
        with torch.no_grad():
            return model(torch.from_numpy(windows)).numpy()

    test = evaluate(predict, parts["test"], spec.labels, spec.n_frames, hop) if parts["test"].tracks else None
    per_genre = len(parts["train"].tracks) / len(spec.labels)
    caveats = []
    if per_genre < TINY_TRACKS_PER_GENRE:
        caveats.append(f"tiny data: {len(parts['train'].tracks)} training tracks (~{per_genre:.0f} per genre); "
                       "a demonstration of the pipeline, not a GTZAN-grade genre model")
    if calibration and len(parts["val"].tracks) < FEW_VAL_TRACKS_PER_GENRE * len(spec.labels):
        caveats.append(f"probabilities temperature-scaled on only {len(parts['val'].tracks)} validation tracks: "
                       "too few for the calibration to be trusted")
    if not args.split:
        caveats.append("random by-track split: GTZAN repeats artists, so test tracks may share an artist with "
                       "training tracks (optimistic); an artist-filtered split can be given with --split")
    if test is not None:
        lo, hi = test.track_accuracy_ci95
        caveats.append(f"test track accuracy {test.track_accuracy:.3f} on {test.n_tracks} tracks "
                       f"(95% CI {lo:.2f}-{hi:.2f})")
    spec = replace(
        spec,
        input_norm={"kind": "per-mel-band standardisation, applied inside the graph",
                    "mean": model.normalise.mean.flatten().tolist(),
                    "std": (1.0 / model.normalise.inv_std).flatten().tolist()},
        training={"architecture": args.model, "parameters": count_parameters(model), "data": args.data.name,
                  "data_fingerprint": parts["train"].fingerprint(), "split": split.to_dict(),
                  "tracks": {p: len(d.tracks) for p, d in parts.items()}, "config": cfg.to_dict(),
                  "best_epoch": result.best_epoch, "calibration": calibration, "caveats": caveats,
                  "test": None if test is None else {"track_accuracy": test.track_accuracy,
                                                     "track_accuracy_ci95": test.track_accuracy_ci95,
                                                     "window_accuracy": test.window_accuracy}},
    )
    onnx_path = out / "model.onnx"
    export_onnx(model, spec, onnx_path)
    load_model(onnx_path)  # refuses now, not in the daemon, if the file does not match its spec

    plot_history(result.history, result.best_epoch, out / "history.png")
    if test is not None:
        plot_confusion(test.confusion, spec.labels, f"{args.model}: test tracks ({test.n_tracks})",
                       out / "confusion.png")
        print(test.table())
    metrics = {"spec": json.loads(spec.to_json()), "skipped": [f"{s.path}: {s.reason}" for s in ds.skipped],
               "history": [vars(s) for s in result.history], "best_epoch": result.best_epoch,
               "stopped_early": result.stopped_early, "onnx_bytes": onnx_path.stat().st_size,
               "test": None if test is None else test.to_dict()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"run folder {out}: model.onnx ({onnx_path.stat().st_size / 1024:.0f} kB), metrics.json, history.png"
          + (", confusion.png" if test is not None else ""))
    return 0


def _calibrate(model, val_ds, spec, hop: int) -> dict:
    """Fit the model's temperature on the validation windows (the split's test tracks stay unseen)."""
    import torch

    from .calibrate import fit_temperature, nll
    from .train import fixed_windows, window_logits

    x, y = fixed_windows(val_ds, spec.labels, spec.n_frames, hop)
    logits = window_logits(model, x).numpy()
    t = fit_temperature(logits, y)
    model.temperature.copy_(torch.tensor(t))
    before, after = nll(logits, y), nll(logits, y, t)
    print(f"calibration: temperature {t:.3f} fitted on {len(y)} validation windows (NLL {before:.3f} -> {after:.3f})")
    return {"method": "temperature scaling on the validation windows", "temperature": round(t, 6),
            "val_windows": len(y), "val_nll_before": round(before, 6), "val_nll_after": round(after, 6)}


def _hop(spec) -> int:
    from genrecast.dsp.windows import hop_frames

    return hop_frames(spec.dsp, spec.hop_seconds)


def _evaluate(args) -> int:
    from genrecast.daemon.model import load_model

    from .evaluate import evaluate
    from .report import plot_confusion

    model = load_model(args.model)
    spec = model.spec
    ds = _load(args, spec)
    if args.part != "all":
        stored = spec.training.get("split")
        if not args.split and not stored:
            from genrecast.errors import UserError

            raise UserError(f"{args.model} stores no split; give --split to score --part {args.part}")
        ds = ds.subset(_split(args, ds, stored).part(args.part))
    seen = set(spec.training.get("split", {}).get("train", ())) & {t.track_id for t in ds.tracks}
    if seen:
        print(f"note: {len(seen)} of these tracks trained this model; their scores are not held-out figures")
    result = evaluate(lambda windows: model.predict(windows).genre, ds, spec.labels, spec.n_frames, _hop(spec))
    print(f"model {spec.model_id} on {args.data} ({args.part})")
    print(result.table())
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2))
    if args.confusion_png:
        plot_confusion(result.confusion, spec.labels, f"{spec.model_id}: {args.part} tracks", args.confusion_png)
    return 0
