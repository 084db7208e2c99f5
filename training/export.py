"""ONNX export with the :class:`dsp.ModelSpec` inside the file (``daemon.model.load_model`` reads and checks it).

Graph contract (what the daemon feeds): input ``logmel`` ``[batch, n_mels, n_frames]`` float32, natural-log mel as
``dsp.LogMelStream`` emits it, a quiet stream's raised by ``dsp.level`` (dynamic batch); output ``probabilities``
``[batch, n_labels]`` and, for a model with a music head (``spec.music_threshold`` set), ``music`` ``[batch]``: the
probability that the window holds music at all; for a model with style tags (``spec.tags`` named), ``tags``
``[batch, n_tags]``, each tag's probability; for a model with a direct genre head (``spec.direct_head``),
``direct_probabilities`` ``[batch, n_labels]``, that head's; for one with a room detector too
(``spec.room_detector``), ``room`` ``[batch]``, the probability that the window was heard through a room.
"""

from __future__ import annotations

import io
import os
import warnings

import onnx
import torch
from genrecast.dsp import INPUT_NAME, METADATA_KEY, ModelSpec


def export_onnx(model: torch.nn.Module, spec: ModelSpec, path: str | os.PathLike) -> None:
    """``model(logmel)`` returns the probabilities, or a tuple of them, then ``music`` when ``spec`` has a music head
    and ``tags`` when it names tags, then the direct head's probabilities and the room detector's when it has them,
    in that order (``spec.outputs``)."""
    model.eval()
    outputs = list(spec.outputs)
    example = torch.zeros(1, spec.dsp.n_mels, spec.n_frames)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated but needs no onnxscript; it handles these plain graphs exactly
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            model, example, buf, input_names=[INPUT_NAME], output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *outputs)}, opset_version=17, dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    proto.doc_string = f"genrecast genre model {spec.model_id}"
    onnx.helper.set_model_props(proto, {METADATA_KEY: spec.to_json()})
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
