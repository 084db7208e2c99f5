"""usage: python scripts/cv_summary.py RUN... [-- RUN...]...: pool k-fold runs per recipe, compare track by track.

    python scripts/cv_summary.py runs/cv-default-f* -- runs/cv-aug-none-f* -- runs/cv-baseline-f*

Groups are separated by ``--``; the first group is the reference. Each group must hold all K folds of one
``genrecast train --fold I/K`` split, so that every track is tested exactly once. The comparison is paired: the
same tracks, scored by two recipes, so an exact McNemar test on the tracks where exactly one recipe is right says
whether a difference could be chance.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from genrecast.training.evaluate import clopper_pearson  # noqa: E402
from scipy.stats import binomtest


def pooled(runs: list[Path]) -> tuple[dict[str, bool], int, int]:
    """Per held-out track: was its decision right; plus window hits and window count over all folds."""
    right: dict[str, bool] = {}
    w_hits = w_total = 0
    folds: set[tuple[int, int]] = set()
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        fold = re.match(r"fold (\d+)/(\d+)", metrics["spec"]["training"]["split"]["source"])
        if not fold:
            raise SystemExit(f"{run}: not a k-fold run (train it with --fold I/K)")
        folds.add((int(fold[1]), int(fold[2])))
        test = metrics["test"]
        for t in test["tracks"]:
            if t["track_id"] in right:
                raise SystemExit(f"{run}: track {t['track_id']} is tested in two folds; not one k-fold split")
            right[t["track_id"]] = t["predicted"] == t["genre"]
        w_hits += round(test["window_accuracy"] * test["n_windows"])
        w_total += test["n_windows"]
    k = {k for _, k in folds}
    if len(k) != 1 or folds != {(i, *k) for i in range(1, max(k) + 1)}:
        raise SystemExit(f"{runs[0].parent}: the runs {', '.join(r.name for r in runs)} are not all folds of one "
                         f"K-fold split (got folds {sorted(folds)})")
    return right, w_hits, w_total


def main(argv: list[str]) -> int:
    groups: list[list[Path]] = [[]]
    for a in argv:
        if a == "--":
            groups.append([])
        else:
            groups[-1].append(Path(a))
    groups = [g for g in groups if g]
    if not groups:
        print(__doc__.strip().splitlines()[0])
        return 2
    names = [g[0].name.rsplit("-f", 1)[0] for g in groups]
    results = [pooled(g) for g in groups]
    ref = results[0][0]
    print(f"{'recipe':<30} {'tracks right':>13} {'95% CI':>11} {'windows':>7}  vs {names[0]}: only-ref/only-this, p")
    for name, (right, w_hits, w_total) in zip(names, results, strict=True):
        if set(right) != set(ref):
            raise SystemExit(f"{name} tests other tracks than {names[0]}; a paired comparison needs the same ones")
        k, n = sum(right.values()), len(right)
        lo, hi = clopper_pearson(k, n)
        line = f"{name:<30} {k:>3}/{n} {k / n:6.1%} {lo:5.0%}-{hi:4.0%} {w_hits / w_total:7.1%}  "
        if right is ref:
            print(line + "(reference)")
            continue
        only_ref = sum(ref[t] and not right[t] for t in right)
        only_this = sum(right[t] and not ref[t] for t in right)
        p = binomtest(only_ref, only_ref + only_this).pvalue if only_ref + only_this else 1.0
        print(line + f"{only_ref:>2}/{only_this:<2} p={p:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
