"""A small but real ONNX genre model for tests, following the trainer's contract.

Each label "listens" to one group of mel bands (``n_mels // n_labels`` of them): the graph averages the raw
log-mel window over time, scores each label by the energy in its band group relative to the others, and
soft-maxes. So a pure tone at :func:`tone_hz` ``(i)`` is classified as label ``i`` with high confidence.

With ``music_threshold`` set in its spec it also has the ``music`` output: a sigmoid of how peaked the window's
spectrum is (loudest band minus the mean band, in log units). A pure tone is peaked, so "music" (close to 1);
white noise is flat, so "not music" (close to 0).

With ``tags`` named in its spec (one per label, e.g. :data:`TINY_TAGS`) it also has the ``tags`` output: tag ``i``
is ``sigmoid(2 * score_i - 2)`` of label ``i``'s score, so a tone at :func:`tone_hz` ``(i)`` carries tag ``i``
alone.

With ``direct_head`` set in its spec it also has the ``direct_probabilities`` output, the direct genre head: the
same scores, each label's given to the next one (:func:`direct_label`), so a test can tell which head was read.

With ``room_detector`` set too it also has the ``room`` output: a sigmoid of the window's mean band level
(``sigmoid(level - ROOM_LEVEL)``). A pure tone leaves most bands at the floor, so "as recorded" (close to 0); the
same tone over a faint hiss (:func:`daemon_helpers.write_tones`' ``hiss``) lifts them, so "through a room" (close
to 1).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from genrecast.dsp import DEFAULT_DSP, GTZAN_GENRES, METADATA_KEY, DSPConfig, ModelSpec
from genrecast.dsp.mel import hz_to_mel, mel_to_hz
from onnx import TensorProto, helper, numpy_helper

MUSICNN_DSP = DSPConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96)  # the new model's front end
MUSICNN_WINDOW_SECONDS = 3.008  # 187 frames
# A tag per GTZAN genre, as MSD names its nearest tag: what a tone of that genre's bands is tagged
TINY_TAGS = ("blues", "instrumental", "country", "dance", "Hip-Hop", "jazz", "heavy metal", "pop", "soul", "rock")
MUSIC_SLOPE, MUSIC_PEAK = 0.5, 8.0  # music = sigmoid(slope * (peak - mean - MUSIC_PEAK)): tone ~1, white noise ~0
ROOM_LEVEL = -14.0  # room = sigmoid(mean band level - ROOM_LEVEL): a tone alone about -21, over a 0.003 hiss about -7


def tiny_spec(**changes) -> ModelSpec:
    base = ModelSpec(name="tiny-test", version="1", training={"note": "fixed weights, for tests only"})
    return replace(base, **changes)


def tagged_spec(**changes) -> ModelSpec:
    """A tiny model's spec with a music head and :data:`TINY_TAGS`."""
    tags = {"music_threshold": 0.5, "tags": TINY_TAGS, "tag_origin": "tests/tiny_model.py: one tag per label",
            "tag_threshold": 0.3}
    return tiny_spec(**(tags | changes))


def musicnn_like_spec(**changes) -> ModelSpec:
    """A tiny model's spec with the new model's front end (16 kHz / 512 / 256 / 96, 187 frames)."""
    return tiny_spec(dsp=MUSICNN_DSP, window_seconds=MUSICNN_WINDOW_SECONDS, **changes)


def direct_label(label_index: int, n_labels: int = len(GTZAN_GENRES)) -> int:
    """The label the tiny model's direct head gives a tone at :func:`tone_hz` ``(label_index)``."""
    return (label_index + 1) % n_labels


def bands_per_label(cfg: DSPConfig = DEFAULT_DSP, n_labels: int = len(GTZAN_GENRES)) -> int:
    return cfg.n_mels // n_labels


def tone_hz(label_index: int, cfg: DSPConfig = DEFAULT_DSP, n_labels: int = len(GTZAN_GENRES)) -> float:
    """Centre frequency of the middle mel band of ``label_index``'s group."""
    per = bands_per_label(cfg, n_labels)
    band = label_index * per + per // 2
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2))
    return float(edges[band + 1])


def build_tiny_model(path: Path, spec: ModelSpec | None = None, n_frames: int | None = None,
                     with_metadata: bool = True, music_head: bool | None = None) -> Path:
    """``music_head`` (default: whether the spec sets a music threshold) adds the ``music`` output; tags named in
    the spec add the ``tags`` output."""
    spec = spec or tiny_spec()
    music_head = spec.has_music_head if music_head is None else music_head
    n_labels, n_mels = len(spec.labels), spec.dsp.n_mels
    per = bands_per_label(spec.dsp, n_labels)
    weights = np.zeros((n_mels, n_labels), np.float32)
    for i in range(n_labels):
        weights[i * per : (i + 1) * per, i] = 1.0 / per
    weights -= weights.mean(axis=1, keepdims=True)  # only relative band energy matters, not loudness
    weights *= 2.0  # softmax temperature
    frames = spec.n_frames if n_frames is None else n_frames
    nodes = [
        helper.make_node("ReduceMean", ["logmel"], ["band_mean"], axes=[2], keepdims=0),
        helper.make_node("MatMul", ["band_mean", "weights"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
    ]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_labels])]
    initializers = [numpy_helper.from_array(weights, "weights")]
    if music_head:
        nodes += [
            helper.make_node("ReduceMax", ["band_mean"], ["peak"], axes=[1], keepdims=0),
            helper.make_node("ReduceMean", ["band_mean"], ["level"], axes=[1], keepdims=0),
            helper.make_node("Sub", ["peak", "level"], ["peakiness"]),
            helper.make_node("Sub", ["peakiness", "music_peak"], ["centred"]),
            helper.make_node("Mul", ["centred", "music_slope"], ["music_logit"]),
            helper.make_node("Sigmoid", ["music_logit"], ["music"]),
        ]
        outputs.append(helper.make_tensor_value_info("music", TensorProto.FLOAT, ["batch"]))
        initializers += [numpy_helper.from_array(np.float32(MUSIC_PEAK), "music_peak"),
                         numpy_helper.from_array(np.float32(MUSIC_SLOPE), "music_slope")]
    if spec.has_tags:
        if len(spec.tags) != n_labels:
            raise ValueError("the tiny model has one tag per label")
        nodes += [helper.make_node("Mul", ["scores", "two"], ["scaled"]),
                  helper.make_node("Sub", ["scaled", "two"], ["tag_logits"]),
                  helper.make_node("Sigmoid", ["tag_logits"], ["tags"])]
        initializers.append(numpy_helper.from_array(np.float32(2.0), "two"))
        outputs.append(helper.make_tensor_value_info("tags", TensorProto.FLOAT, ["batch", n_labels]))
    if spec.direct_head:
        shift = np.roll(np.eye(n_labels, dtype=np.float32), 1, axis=1)  # label i's score becomes label i + 1's
        nodes += [helper.make_node("MatMul", ["scores", "shift"], ["direct_scores"]),
                  helper.make_node("Softmax", ["direct_scores"], ["direct_probabilities"], axis=1)]
        initializers.append(numpy_helper.from_array(shift, "shift"))
        outputs.append(helper.make_tensor_value_info("direct_probabilities", TensorProto.FLOAT, ["batch", n_labels]))
    if spec.room_detector:
        nodes += [helper.make_node("ReduceMean", ["band_mean"], ["room_level"], axes=[1], keepdims=0),
                  helper.make_node("Sub", ["room_level", "room_at"], ["room_logit"]),
                  helper.make_node("Sigmoid", ["room_logit"], ["room"])]
        initializers.append(numpy_helper.from_array(np.float32(ROOM_LEVEL), "room_at"))
        outputs.append(helper.make_tensor_value_info("room", TensorProto.FLOAT, ["batch"]))
    graph = helper.make_graph(
        nodes, "tiny_genre",
        [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, ["batch", n_mels, frames])],
        outputs, initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if with_metadata:
        helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


__all__ = ["GTZAN_GENRES", "MUSICNN_DSP", "TINY_TAGS", "build_tiny_model", "direct_label", "musicnn_like_spec",
           "tagged_spec", "tiny_spec", "tone_hz"]
