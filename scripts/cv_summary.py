"""Pool k-fold runs of several recipes and compare each with a reference, track by track.

    python scripts/cv_summary.py runs/cv-default-f* -- runs/cv-aug-none-f* -- runs/cv-baseline-f*

Groups are separated by ``--``; the first group is the reference. Each group's folds must test every track once
(what ``genrecast train --fold I/K`` does). The comparison is paired: the same tracks, scored by two recipes, so an
exact McNemar test on the tracks where exactly one recipe is right says whether a difference could be chance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scipy.stats import binomtest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.evaluate import clopper_pearson  # noqa: E402


def pooled(runs: list[Path]) -> tuple[dict[str, bool], int, int]:
    """Per held-out track: was its decision right; plus window hits and window count over all folds."""
    right: dict[str, bool] = {}
    w_hits = w_total = 0
    for run in runs:
        test = json.loads((run / "metrics.json").read_text())["test"]
        for t in test["tracks"]:
            if t["track_id"] in right:
                raise SystemExit(f"{run}: track {t['track_id']} is tested in two folds; not one k-fold split")
            right[t["track_id"]] = t["predicted"] == t["genre"]
        w_hits += round(test["window_accuracy"] * test["n_windows"])
        w_total += test["n_windows"]
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
    ref_name = groups[0][0].name.rsplit("-f", 1)[0]
    ref = pooled(groups[0])[0]
    print(f"{'recipe':<30} {'tracks right':>13} {'95% CI':>11} {'windows':>7}  vs {ref_name}: only-ref/only-this, p")
    for g in groups:
        name = g[0].name.rsplit("-f", 1)[0]
        right, w_hits, w_total = pooled(g)
        if set(right) != set(ref):
            raise SystemExit(f"{name} tests other tracks than {ref_name}; a paired comparison needs the same ones")
        k, n = sum(right.values()), len(right)
        lo, hi = clopper_pearson(k, n)
        only_ref = sum(ref[t] and not right[t] for t in right)
        only_this = sum(right[t] and not ref[t] for t in right)
        p = binomtest(only_ref, only_ref + only_this).pvalue if only_ref + only_this else 1.0
        print(f"{name:<30} {k:>3}/{n} {k / n:6.1%} {lo:5.0%}-{hi:4.0%} {w_hits / w_total:7.1%}  "
              f"{only_ref:>2}/{only_this:<2} p={p:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
