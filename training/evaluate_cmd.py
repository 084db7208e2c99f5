"""``genrecast evaluate``: how well a model names the genres of a folder of labelled music it never heard.

Every file is classified exactly as ``genrecast classify`` classifies it (decoded block by block, cut into the
daemon's windows, one track answer by :func:`daemon.decision.track_state`), so the headline is what a user of the
model would see on that music: a genre track answered ``no_music`` or ``silence`` counts as wrong. Beside it,
:func:`training.evaluate.score` gives the same figures the cross-validation reports (genre by the top mean
probability, the music head aside; window accuracy, calibration, per genre, confusion). This is the cross-collection
figure for any collection: the shared ``ood/`` for a model trained on GTZAN alone, or a user's own music.

Labels come from the layout: a folder named after the label (``<label>/<name>.<ext>``, ``<label>/<album>/...``,
``--data`` itself) or GTZAN's ``<label>.<n>.<ext>``, for the labels the model has; audio files with no such label
are counted and left out, unreadable or too short ones listed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

from genrecast.files import replace_file
from genrecast.paths import path_flag, path_problem
from genrecast.text import counted

HOP_SECONDS = 1.0  # classify's default hop
# Names of a descriptor this process already holds open: the report goes down it as it is
OWN_DESCRIPTOR = re.compile(r"/dev/(?:(stdout)|(stderr)|fd/(\d+))|/proc/self/fd/(\d+)")


def register(sub: argparse._SubParsersAction) -> None:
    from genrecast.daemon.model import HEARD

    e = sub.add_parser("evaluate", help="score a model on a folder of labelled music, as classify answers it",
                       description="Classify every labelled file as `genrecast classify` does and score the answers: "
                                   "track accuracy with a 95% interval, per-genre precision/recall/F1, confusion.")
    e.add_argument("--data", required=True, type=path_flag,
                   help="folder of labelled audio: a file's label is its nearest folder named after a label "
                        "(<label>/<name>.<ext>, <label>/<album>/...), else its name up to the first dot "
                        "(<label>.<n>.<ext>); files with neither are counted and left out")
    e.add_argument("--model", type=path_flag, help="ONNX model (default: the bundled genrecast-gtzan.onnx)")
    e.add_argument("--json", type=path_flag, help="also write the evaluation, with every track's answer, as JSON here")
    e.add_argument("--heard", choices=HEARD, default="auto",
                   help="as classify's: direct: the files are the recordings themselves; room: taped by a microphone "
                        "in a room; auto (default): judged from the sound by a model with a room detector (else "
                        "direct)")
    e.set_defaults(func=handler)


def labelled_files(root: Path, labels: tuple[str, ...]) -> tuple[dict[Path, str], Counter]:
    """Each audio file under ``root`` with one of ``labels``: the nearest enclosing folder named after a label (``root``
    itself included), else the part of its name before the first dot; and how many audio files per top-level folder
    have neither."""
    from genrecast.dsp import AUDIO_SUFFIXES, audio_folder

    audio_folder(root)
    found: dict[Path, str] = {}
    unlabelled: Counter = Counter()
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        parts = path.relative_to(root).parts
        folders = (root.resolve().name, *parts[:-1])
        label = next((x for x in (*reversed(folders), path.name.split(".", 1)[0]) if x in labels), None)
        if label is None:
            unlabelled[parts[0] if len(parts) > 1 else "."] += 1
        else:
            found[path] = label
    return found, unlabelled


def handler(args: argparse.Namespace) -> int:
    from genrecast.daemon.classify_cmd import classify_windows, track_result
    from genrecast.daemon.model import describe_head, genre_head, load_model
    from genrecast.dsp import AudioError, AudioFile

    from genrecast.errors import UserError

    from .evaluate import clopper_pearson, score

    if args.json is not None:  # before minutes of classifying, not after
        if os.path.isdir(args.json):
            raise UserError(f"--json {args.json}: is a folder, not a file")
        if problem := path_problem(args.json.parent, "folder"):  # Path.is_dir raised for one this user may not enter
            raise UserError(f"--json {args.json}: {args.json.parent}: {problem}")
        if (fd := own_descriptor(args.json)) is None:
            _check_target(args.json)
        elif not _writable(fd):
            raise UserError(f"--json {args.json}: not open for writing")
    model = load_model(args.model)
    labels = model.spec.labels
    try:
        files, unlabelled = labelled_files(args.data, labels)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    if unlabelled:
        n = sum(unlabelled.values())
        print(f"left out {counted(n, 'audio file')} with no label the model has: "
              + ", ".join(f"{n} at the top of {args.data}" if folder == "." else f"{n} in {folder}/"
                          for folder, n in sorted(unlabelled.items())))
    tracks, probs, answers, skipped = [], [], [], []
    for path, genre in files.items():
        try:
            with AudioFile(path) as audio:
                windows = classify_windows(model, audio, HOP_SECONDS, str(path), heard=args.heard)
        except AudioError as exc:
            skipped.append(str(exc))
            print(f"skipped {exc}")
            continue
        tracks.append((str(path.relative_to(args.data)), genre))
        probs.append(windows.probabilities)
        answers.append(track_result(model, str(path), windows))
    if not tracks:
        raise UserError(f"{args.data}: no usable audio labelled with one of the model's labels ({', '.join(labels)})")

    right = sum(a.genre == genre for a, (_, genre) in zip(answers, tracks, strict=True))
    kinds = Counter(a.kind for a in answers)
    lo, hi = clopper_pearson(right, len(tracks))
    ev = score(tracks, probs, labels)
    read = genre_head(model.spec, args.heard)
    head = f" ({describe_head(read)})" if read else ""
    print(f"model {model.model_id}{head} on {args.data}: {len(tracks)} tracks")
    print(f"classify's answer right {right}/{len(tracks)} = {right / len(tracks):.3f} (95% CI {lo:.3f}-{hi:.3f}); "
          f"answered no_music {kinds['no_music']}, silence {kinds['silence']}")
    print("\ngenre by the top mean probability (the music head aside):")
    print(ev.table())
    if args.json:
        genre = ev.to_dict()
        for row, answer in zip(genre["tracks"], answers, strict=True):
            row["answer"] = answer.genre or answer.kind
        report = json.dumps({
            "model_id": model.model_id, "genre_head": read,
            "data": str(args.data), "tracks": len(tracks),
            "answer_right": right, "answer_accuracy": right / len(tracks), "answer_accuracy_ci95": [lo, hi],
            "answered": dict(kinds), "skipped": skipped, "left_out": dict(unlabelled), "genre": genre},
            indent=2) + "\n"
        try:
            _write_report(args.json, report)
        except OSError as exc:  # the folder went away or filled up while classifying: the table above stands
            raise UserError(f"--json {args.json}: not written ({exc.strerror or exc})") from None
    return 0


REPORT_START = '{\n  "model_id": '  # how every report this command writes begins (json.dumps, indent 2)


def _check_target(path: Path) -> None:
    """Before minutes of classifying, not after: ``path`` must open for appending and its folder take a new file (a
    read-only mount or a name the file system refuses fails here), and an existing regular file is replaced only
    when it is empty or an earlier report (whole or cut short). ``--json`` naming the model, a track under
    ``--data`` or another program's JSON replaced it with the report. A pipe is written through, and not opened
    now: that would end its reader's input. One open, and a file that was not there is not left."""
    from genrecast.errors import UserError

    existed = path.exists()
    if existed and not path.is_file():
        return
    try:
        with path.open("a+b") as f:
            f.seek(0)
            head = f.read(len(REPORT_START))
    except OSError as exc:
        raise UserError(f"--json {path}: not writable ({exc.strerror or exc})") from None
    if not existed:
        path.unlink()
    elif not os.access(folder := path.resolve().parent, os.W_OK | os.X_OK):  # the report is written beside it
        raise UserError(f"--json {path}: its folder {folder} is not writable (the report is written there, then "
                        "renamed over it)")
    if head and head != REPORT_START.encode():
        raise UserError(f"--json {path}: already holds something other than an earlier report; name another "
                        "file (it was left as it is)")


def own_descriptor(path: Path) -> int | None:
    """The descriptor ``path`` names in this process (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``), else
    None. Followed as a link, ``/dev/stdout`` named a pipe's ``pipe:[N]``, which no one can open, or the file
    stdout was redirected to, which the rename replaced, the table printed there and all."""
    if not (m := OWN_DESCRIPTOR.fullmatch(str(path))):
        return None
    stdout, stderr, fd, proc_fd = m.groups()
    return 1 if stdout else 2 if stderr else int(fd or proc_fd)


def _writable(fd: int) -> bool:
    import fcntl

    try:
        return (fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
    except (OSError, OverflowError):  # not open, or no descriptor's number (/dev/fd/99999999999)
        return False


def _write_report(path: Path, report: str) -> None:
    """A regular file (or a new one) is written beside itself and renamed over, so a disk that fills up mid-write
    leaves an earlier report whole; through a link, the file it points to. A descriptor of ours gets it after what
    was printed there, and anything else is written through."""
    if (fd := own_descriptor(path)) is not None:
        sys.stdout.flush()  # the table first, where stdout and the report share a pipe or a file
        if fd in (1, 2):  # Python's own streams: where a service diverts fd 2 (genrecast.c_stderr), still stderr
            stream = sys.stdout if fd == 1 else sys.stderr
            stream.write(report)
            stream.flush()
            return
        with os.fdopen(os.dup(fd), "w", encoding="utf-8") as out:
            out.write(report)
        return
    target = path.resolve() if path.is_symlink() else path
    if target.exists() and not target.is_file():
        target.write_text(report)
        return
    replace_file(target, report)
