"""A small but real ONNX genre model for tests, following the trainer's contract.

Each label "listens" to one group of 12 mel bands: the graph averages the raw log-mel window over
time, scores each label by the energy in its band group relative to the others, and soft-maxes.
So a pure tone at :func:`tone_hz` ``(i)`` is classified as label ``i`` with high confidence.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dsp import DEFAULT_DSP, GTZAN_GENRES, METADATA_KEY, ModelSpec
from dsp.mel import hz_to_mel, mel_to_hz

BANDS_PER_LABEL = 12


def tiny_spec(**changes) -> ModelSpec:
    base = ModelSpec(name="tiny-test", version="1", training={"note": "fixed weights, for tests only"})
    return replace(base, **changes)


def tone_hz(label_index: int, cfg=DEFAULT_DSP) -> float:
    """Centre frequency of the middle mel band of ``label_index``'s group."""
    band = label_index * BANDS_PER_LABEL + BANDS_PER_LABEL // 2
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2))
    return float(edges[band + 1])


def build_tiny_model(path: Path, spec: ModelSpec | None = None, n_frames: int | None = None,
                     with_metadata: bool = True) -> Path:
    spec = spec or tiny_spec()
    n_labels, n_mels = len(spec.labels), spec.dsp.n_mels
    weights = np.zeros((n_mels, n_labels), np.float32)
    for i in range(n_labels):
        weights[i * BANDS_PER_LABEL : (i + 1) * BANDS_PER_LABEL, i] = 1.0 / BANDS_PER_LABEL
    weights -= weights.mean(axis=1, keepdims=True)  # only relative band energy matters, not loudness
    weights *= 2.0  # softmax temperature
    frames = spec.n_frames if n_frames is None else n_frames
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["logmel"], ["band_mean"], axes=[2], keepdims=0),
            helper.make_node("MatMul", ["band_mean", "weights"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
        ],
        "tiny_genre",
        [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, ["batch", n_mels, frames])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_labels])],
        [numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if with_metadata:
        helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


__all__ = ["GTZAN_GENRES", "build_tiny_model", "tiny_spec", "tone_hz"]
