"""The trainer: labelled audio in, the ONNX genre model the daemon loads out. One pipeline, one module per stage:

1. **Corpus** (:mod:`.corpus`): the labelled clips. Genre tracks (GTZAN, and a second collection such as the
   shared ``ood/``), clips that are not music (speech, noise) and genre-less music, each with the group a split
   keeps whole (a track, a speaker, a machine); :mod:`.synth_noise` adds generated noise to the not-music side.
2. **Augmentation** (:mod:`.acoustic`): copies of every clip as a microphone in a home hears it (room, loudspeaker
   and microphone, speech and noise, codec), seeded per clip and copy; its bench chain is never trained on.
3. **Backbone embeddings** (:mod:`.embed`): every window through each frozen pretrained musicnn the heads read
   (:mod:`.musicnn`, the weights read from the musicnn wheel by :mod:`.tf_checkpoint`), cached on disk by content,
   backbone and chain (:mod:`.cache` marks what a run used and prunes the rest on request).
4. **Heads** (:mod:`.transfer`): linear genre and music/not-music heads on those embeddings, and the exported
   graph (:class:`.transfer.TransferNet`: log-mel windows in, both probabilities out).
5. **Calibration** (:mod:`.calibrate`): one temperature fitted on validation tracks.
6. **Export** (:mod:`.export`): ONNX with the :class:`dsp.ModelSpec` inside, which the daemon checks on load.

Around them: cross-validation (:mod:`.split` deals folds by track, :mod:`.transfer_cv` runs them, by track, across
collections and through held-out rooms), scores and the report (:mod:`.evaluate`, :mod:`.transfer_report`), and the
fast variant (:mod:`.distill`: a small CNN taught by the heads' outputs). ``genrecast train-transfer``
(:mod:`.transfer_cli`) runs the whole pipeline into a run folder; ``genrecast evaluate`` (:mod:`.evaluate_cmd`)
scores any model on labelled music it never heard; ``benchmarks/room_bench.py`` scores it through held-out rooms.
"""

import os
from pathlib import Path

# where the backbone's activations are cached unless ``--cache`` says otherwise (with the acoustic banks below it)
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genrecast" / "embeddings"
# generated noise clips of each kind a run adds to the not-music side (--synthetic-noise), and room_bench with it
SYNTHETIC_PER_KIND = 10
# The musicnn wheel, where `make setup` puts it in this checkout (scripts/setup.sh): found from any folder, where a
# path relative to the current one made every train-transfer outside the checkout fail on it first.
DEFAULT_WHEEL = Path(__file__).resolve().parent.parent / ".cache" / "musicnn" / "musicnn-0.1.0-py3-none-any.whl"
