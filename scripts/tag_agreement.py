"""How far to trust the style tags: do tags that name a genre agree with the genre label, and which tags fire on
sounds that are not music? The figures of the model card's "Style tags" section.

    .venv/bin/python scripts/tag_agreement.py run --data ../shared/data --out runs/tags.npz [--model M.onnx]
    .venv/bin/python scripts/tag_agreement.py report runs/tags.npz [--thresholds 0.2 0.3 0.4]

``run`` classifies every file of ``gtzan/`` (10 GTZAN genres), ``ood/`` (Magnatune: classical, pop, rock,
electronic) and ``nonmusic/`` (speech, noise, genre-less music) exactly as ``genrecast classify`` does, and keeps
every window's tag and music probabilities. ``report`` prints, per threshold:

- **agreement**: of the genre-naming tags announced (:data:`GENRE_TAGS`; a file's tags are those of the mean over its
  windows, announced only for a file the model hears as music, as ``classify`` does), the share that agree with the
  file's label; and per label, the share of files where an agreeing tag is announced;
- **per tag**: how often each genre-naming tag is announced and on which labels;
- **non-music**: the share of windows of speech and noise with a tag at or above the threshold before the no_music
  gate, and after it (what would be announced), and the tags that fire there.

The last line is a one-line summary at the model's own threshold.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

# Tags that name a genre, and the labels of our data each one agrees with. "hard rock" is both GTZAN's rock and
# metal; tags naming genres no label here has (soul, funk, rnb, folk, dance, ambient, ...) are not scored.
GENRE_TAGS: dict[str, set[str]] = {
    "blues": {"blues"}, "country": {"country"}, "jazz": {"jazz"}, "Hip-Hop": {"hiphop"},
    "metal": {"metal"}, "heavy metal": {"metal"}, "hard rock": {"metal", "rock"},
    "rock": {"rock"}, "classic rock": {"rock"}, "alternative rock": {"rock"}, "indie rock": {"rock"},
    "Progressive rock": {"rock"}, "punk": {"rock"},
    "pop": {"pop"}, "indie pop": {"pop"},
    "electronic": {"electronic"}, "electronica": {"electronic"}, "electro": {"electronic"}, "House": {"electronic"},
}
SETS = ("gtzan", "ood", "nonmusic")


def run(data: Path, out: Path, model_path: str | None) -> None:
    from genrecast.daemon.classify_cmd import classify_windows
    from genrecast.daemon.model import load_model
    from genrecast.dsp import AudioError, AudioFile

    model = load_model(model_path)
    if not model.spec.has_tags:
        raise SystemExit(f"{model.path}: the model has no tags output")
    rows: dict[str, list] = {k: [] for k in ("set", "label", "path", "window_file")}
    tags, music, rms = [], [], []
    files = [(s, f.parent.name, f) for s in SETS for f in sorted((data / s).glob("*/*"))
             if f.suffix in (".flac", ".ogg", ".wav")]
    skipped = 0
    for i, (s, label, f) in enumerate(files):
        try:
            with AudioFile(f) as audio:
                r = classify_windows(model, audio, 1.0, str(f))
        except AudioError:
            skipped += 1  # under 1 s: the daemon refuses it too
            continue
        n = len(rows["path"])
        rows["set"].append(s)
        rows["label"].append(label)
        rows["path"].append(str(f.relative_to(data)))
        rows["window_file"] += [n] * len(r.starts)
        tags.append(r.tags)
        music.append(r.music)
        rms.append(r.rms)
        if i % 200 == 0:
            print(f"{i}/{len(files)} files", flush=True)
    np.savez_compressed(out, tags=np.concatenate(tags), music=np.concatenate(music), rms=np.concatenate(rms),
                        names=np.array(model.spec.tags), spec=model.spec.to_json(),
                        **{k: np.array(v) for k, v in rows.items()})
    print(f"{len(rows['path'])} files ({skipped} under 1 s skipped), {sum(len(t) for t in tags)} windows -> {out}")


def report(path: Path, thresholds: list[float]) -> None:
    from genrecast.daemon.decision import DecisionConfig, announces_tags
    from genrecast.dsp import ModelSpec

    d = np.load(path)
    spec = ModelSpec.from_json(str(d["spec"]))
    names, tags, wfile = list(d["names"]), d["tags"], d["window_file"]
    sets, labels = d["set"], d["label"]
    n_files = len(d["path"])
    file_tags = np.stack([tags[wfile == i].mean(axis=0) for i in range(n_files)])
    file_music = np.array([d["music"][wfile == i].mean() for i in range(n_files)])
    file_silent = np.array([(d["rms"][wfile == i] < DecisionConfig.silence_rms).all() for i in range(n_files)])
    heard = np.array([announces_tags("silence" if file_silent[i] else "genre", file_music[i], spec.music_threshold)
                      for i in range(n_files)])
    genre_cols = [names.index(t) for t in GENRE_TAGS]
    summary = {}
    for t in thresholds:
        print(f"\n## threshold {t:g}\n")
        print("| data | files heard as music | with any tag | genre tags announced | agree with the label | "
              "files of a tagged label with an agreeing tag | windows: genre tags agreeing |")
        print("|---|---|---|---|---|---|---|")
        for s in ("gtzan", "ood"):
            mine = (sets == s) & heard
            tagged_any = int((file_tags[mine] >= t).any(axis=1).sum())
            w = np.isin(wfile, np.nonzero(mine)[0]) & (d["music"] >= (spec.music_threshold or 0.0))
            w_on = tags[w][:, genre_cols] >= t
            w_ok = np.array([[labels[f] in GENRE_TAGS[tag] for tag in GENRE_TAGS] for f in wfile[w]]) & w_on
            announced = agree = hit = tagged = 0
            per_label: dict[str, list[int]] = {}
            for i in np.nonzero(mine)[0]:
                on = [tag for tag, c in zip(GENRE_TAGS, genre_cols, strict=True) if file_tags[i, c] >= t]
                ok = [tag for tag in on if labels[i] in GENRE_TAGS[tag]]
                announced, agree = announced + len(on), agree + len(ok)
                if any(labels[i] in v for v in GENRE_TAGS.values()):
                    tagged += 1
                    hit += bool(ok)
                    per_label.setdefault(labels[i], [0, 0])
                    per_label[labels[i]][0] += bool(ok)
                    per_label[labels[i]][1] += 1
            share = agree / announced if announced else float("nan")
            print(f"| {s} | {mine.sum()} of {(sets == s).sum()} | {tagged_any} | {announced} | {share:.1%} ({agree}) | "
                  f"{hit / tagged:.1%} ({hit}/{tagged}) | {w_ok.sum() / max(1, w_on.sum()):.1%} of {w_on.sum()} |")
            print("  per label, files with an agreeing tag: " + ", ".join(
                f"{k} {v[0]}/{v[1]}" for k, v in sorted(per_label.items())))
            summary[(s, t)] = (share, hit / tagged if tagged else float("nan"))
        print("\n| genre tag | files (gtzan+ood) | agree | announced on (label: files) |")
        print("|---|---|---|---|")
        for tag, c in zip(GENRE_TAGS, genre_cols, strict=True):
            on = np.nonzero((sets != "nonmusic") & heard & (file_tags[:, c] >= t))[0]
            if not len(on):
                continue
            where = Counter(f"{sets[i]}/{labels[i]}" for i in on)
            ok = sum(labels[i] in GENRE_TAGS[tag] for i in on)
            print(f"| {tag} | {len(on)} | {ok / len(on):.0%} | "
                  + ", ".join(f"{k} {v}" for k, v in where.most_common(5)) + " |")
        print("\n| non-music windows | windows | any tag before the gate | announced (music >= threshold) | "
              "tags firing before the gate (windows) |")
        print("|---|---|---|---|---|")
        for kind in ("speech", "noise", "music"):
            files = np.nonzero((sets == "nonmusic") & (labels == kind))[0]
            w = np.isin(wfile, files)
            fire = tags[w] >= t
            anyfire = fire.any(axis=1)
            gated = anyfire & (d["music"][w] >= (spec.music_threshold or 0.0))
            top = Counter({names[c]: int(fire[:, c].sum()) for c in range(len(names)) if fire[:, c].any()})
            print(f"| {kind} ({len(files)} clips) | {w.sum()} | {anyfire.mean():.1%} | {gated.mean():.1%} | "
                  + ", ".join(f"{k} {v}" for k, v in top.most_common(6)) + " |")
            summary[(kind, t)] = (anyfire.mean(), gated.mean())
    t = spec.tag_threshold
    if t in thresholds:
        print(f"\n{spec.model_id} at tag_threshold {t:g}: " + json.dumps({
            "gtzan_agree": round(summary[("gtzan", t)][0], 3), "gtzan_hit": round(summary[("gtzan", t)][1], 3),
            "ood_agree": round(summary[("ood", t)][0], 3), "ood_hit": round(summary[("ood", t)][1], 3),
            "speech_windows_tagged": round(summary[("speech", t)][0], 3),
            "speech_windows_announced": round(summary[("speech", t)][1], 3),
            "noise_windows_tagged": round(summary[("noise", t)][0], 3),
            "noise_windows_announced": round(summary[("noise", t)][1], 3)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True, help="the shared data folder (gtzan/, ood/, nonmusic/)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--model", help="ONNX model with a tags output (default: the shipped one)")
    q = sub.add_parser("report")
    q.add_argument("path", type=Path)
    q.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    args = p.parse_args()
    if args.cmd == "run":
        run(args.data, args.out, args.model)
    else:
        report(args.path, args.thresholds)


if __name__ == "__main__":
    main()
