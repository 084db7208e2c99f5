"""Cross-validated scores of a model with a music head: genre accuracy on long excerpts and short clips apart, and
how often each kind of clip is called not music.

A clip is called ``no_music`` by the daemon's own track rule (:func:`daemon.decision.track_state`): the mean of
its windows' music probabilities below the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .corpus import Clip
from .evaluate import score

KINDS = ("speech", "noise", "synthetic", "music", "long", "short", "ood")  # not music, genre-less music, genre music
KIND_NAMES = {"speech": "speech", "noise": "noise", "synthetic": "synthetic noise", "music": "genre-less music",
              "long": "GTZAN long excerpts", "short": "GTZAN 2-3 s clips",
              "ood": "Magnatune excerpts"}


# genre scores over all tracks, GTZAN's long excerpts and 2-3 s clips apart, and each collection apart
PARTS = {"all": lambda c: True, "long": lambda c: c.source == "gtzan" and c.kind == "long",
         "short": lambda c: c.source == "gtzan" and c.kind == "short", "gtzan": lambda c: c.source == "gtzan",
         "ood": lambda c: c.source == "ood"}


def summarise(clips: Sequence[Clip], genre_probs: Sequence[np.ndarray], music_probs: Sequence[np.ndarray],
              labels: Sequence[str], threshold: float, heard_in_training: Callable[[Clip], bool] | None = None) -> dict:
    """Held-out predictions of every clip -> a JSON-able summary plus a printable ``text``. ``heard_in_training``: the
    clips whose own sound training audio may hold (as background in its copies); their kinds are also scored
    without them, the figure on sounds never heard in any form."""
    genre: dict[str, dict] = {}
    lines = []
    for part, inside in PARTS.items():
        keep = [i for i, c in enumerate(clips) if c.genre is not None and inside(c)]
        if not keep:
            continue
        ev = score([(clips[i].clip_id, clips[i].genre) for i in keep], [genre_probs[i] for i in keep], labels)
        genre[part] = {k: v for k, v in ev.to_dict().items() if k != "tracks"}
        lo, hi = ev.track_accuracy_ci95
        lines.append(f"genre {part:6s}: track accuracy {ev.track_accuracy:.3f} (95% CI {lo:.3f}-{hi:.3f}, "
                     f"{ev.n_tracks} tracks), window accuracy {ev.window_accuracy:.3f}, mean confidence "
                     f"{ev.window_confidence:.3f}, ECE {ev.window_ece:.3f}")
        if part == "all":
            lines.append(ev.table())
    music: dict[str, dict] = {}
    for kind in KINDS:
        keep = [i for i, c in enumerate(clips) if ("ood" if c.source == "ood" else c.kind) == kind]
        if not keep:
            continue
        clip_flag = np.array([music_probs[i].mean() < threshold for i in keep])
        win_flag = np.concatenate([music_probs[i] < threshold for i in keep])
        music[kind] = {"clips": len(keep), "no_music_clips": int(clip_flag.sum()),
                       "no_music_rate": round(float(clip_flag.mean()), 4), "windows": len(win_flag),
                       "no_music_window_rate": round(float(win_flag.mean()), 4)}
        line = (f"no_music {KIND_NAMES[kind]:22s}: {clip_flag.sum():4d}/{len(keep):4d} clips "
                f"({clip_flag.mean():.3f}), windows {win_flag.mean():.3f}")
        heard = [heard_in_training(clips[i]) for i in keep] if heard_in_training else []
        if any(heard):
            unheard = clip_flag[~np.array(heard)]
            music[kind] |= {"unheard_clips": len(unheard), "unheard_no_music_clips": int(unheard.sum()),
                            "unheard_no_music_rate": round(float(unheard.mean()), 4) if len(unheard) else None}
            line += f"; never in training audio {unheard.sum()}/{len(unheard)}"
        lines.append(line)
    return {"genre": genre, "music": music, "threshold": threshold, "text": "\n".join(lines)}
