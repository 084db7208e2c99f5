"""Re-export a transfer model through today's export code with its heads unchanged: how 0.2.1 became 0.2.2, which
adds the backbone's style ``tags`` output (same heads, so the same genre and music outputs).

    .venv/bin/python scripts/reexport_transfer.py OLD.onnx NEW.onnx --version 0.2.2 [--wheel WHEEL] [--check FILE...]

The heads are read back from the old graph's named initializers (``mean``, ``inv_std``, ``genre.*``, ``music.*``,
since 0.5.0 ``direct.*`` and since 0.6.0 ``room.*``, written by :class:`training.transfer.TransferNet`); the backbone
comes from the musicnn wheel, as in training. The metadata is the old one with the new version and the tags (names,
origin, threshold). ``--check`` runs every window of the given files through both graphs and prints the largest
differences of the shared outputs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch
from genrecast.daemon.classify_cmd import classify_windows
from genrecast.daemon.model import load_model
from genrecast.dsp import DIRECT_OUTPUT, GENRE_OUTPUT, METADATA_KEY, MUSIC_OUTPUT, ROOM_OUTPUT, AudioFile, ModelSpec
from genrecast.training.export import export_onnx
from genrecast.training.musicnn import TAG_ORIGIN, TAGS, load_musicnn
from genrecast.training.transfer import Heads, TransferNet, backbones_of
from genrecast.training.transfer_cli import DEFAULT_WHEEL, TAG_THRESHOLD

HEAD_TENSORS = ("mean", "inv_std", "genre.weight", "genre.bias", "music.weight", "music.bias")
DIRECT_TENSORS = ("direct.weight", "direct.bias")  # a model with a direct genre head (ModelSpec.direct_head)
ROOM_TENSORS = ("room.weight", "room.bias")  # and a room detector (ModelSpec.room_detector)


def read_heads(path: Path) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    proto = onnx.load(str(path))
    spec = ModelSpec.from_json({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    wanted = HEAD_TENSORS + (DIRECT_TENSORS if spec.direct_head else ()) + (ROOM_TENSORS if spec.room_detector else ())
    found = {t.name: onnx.numpy_helper.to_array(t).copy() for t in proto.graph.initializer if t.name in wanted}
    if set(found) != set(wanted):
        raise SystemExit(f"{path}: not a transfer graph (lacks {sorted(set(wanted) - set(found))})")
    return spec, found


def reexport(old: Path, new: Path, version: str, wheel: Path, threshold: float) -> ModelSpec:
    spec, t = read_heads(old)
    heads_cfg = spec.training["heads"]  # "features" (backbone:part) since 0.4.0; one backbone's "parts" before
    first = spec.training["backbone"].split()[0]
    features = tuple(heads_cfg.get("features") or (f"{first}:{p}" for p in heads_cfg["parts"]))
    names = backbones_of(features)
    # The stored weights already hold the temperature, so it is 1 here; the buffers are then set to the stored
    # values exactly (1 / (1 / x) need not round-trip in float32).
    heads = Heads(features, t["mean"], 1.0 / t["inv_std"], t["genre.weight"], t["genre.bias"], t["music.weight"][0],
                  float(t["music.bias"][0]), direct_w=t.get("direct.weight"), direct_b=t.get("direct.bias"),
                  room_w=t["room.weight"][0] if "room.weight" in t else None,
                  room_b=float(t["room.bias"][0]) if "room.bias" in t else 0.0)
    net = TransferNet({name: load_musicnn(wheel, name) for name in names}, heads)
    net.inv_std.copy_(torch.from_numpy(t["inv_std"]))
    new_spec = replace(spec, version=version, tags=TAGS[names[0]], tag_origin=TAG_ORIGIN[names[0]],
                       tag_threshold=threshold)
    export_onnx(net, new_spec, new)
    return new_spec


def check(old: Path, new: Path, files: list[str]) -> None:
    a, b = load_model(old), load_model(new)
    heads = {GENRE_OUTPUT: "room"} | ({DIRECT_OUTPUT: "direct"} if a.spec.direct_head else {})
    worst = dict.fromkeys([*heads, MUSIC_OUTPUT], 0.0)
    windows = changed = 0
    for f in files:
        for name, head in heads.items():
            with AudioFile(f) as audio:
                ra = classify_windows(a, audio, 1.0, f, heard=head)
            with AudioFile(f) as audio:
                rb = classify_windows(b, audio, 1.0, f, heard=head)
            worst[name] = max(worst[name], float(np.abs(ra.probabilities - rb.probabilities).max()))
            changed += int((ra.probabilities.argmax(1) != rb.probabilities.argmax(1)).sum())
        worst[MUSIC_OUTPUT] = max(worst[MUSIC_OUTPUT], float(np.abs(ra.music - rb.music).max()))
        if ra.room is not None:
            worst[ROOM_OUTPUT] = max(worst.get(ROOM_OUTPUT, 0.0), float(np.abs(ra.room - rb.room).max()))
        windows += len(ra.starts)
    print(json.dumps({"files": len(files), "windows": windows, "top_genre_changed": changed,
                      "max_abs_diff": worst}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--version", required=True)
    p.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL)
    p.add_argument("--tag-threshold", type=float, default=TAG_THRESHOLD)
    p.add_argument("--check", nargs="*", default=[], metavar="FILE")
    args = p.parse_args()
    spec = reexport(args.old, args.new, args.version, args.wheel, args.tag_threshold)
    print(f"{args.new}: {spec.model_id}, outputs probabilities, music and {len(spec.tags)} tags")
    if args.check:
        check(args.old, args.new, args.check)


if __name__ == "__main__":
    main()
