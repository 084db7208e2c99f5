"""musicnn (Pons & Serra, 2019) ported to PyTorch, with its pretrained weights read from the musicnn wheel.

The network tags 3-s patches of ``log10(1 + 10000 * mel power)`` (16 kHz, n_fft 512, hop 256, 96 Slaney mel bands,
187 frames) with the 50 tags of the Million Song Dataset (``MSD_musicnn``) or MagnaTagATune (``MTT_musicnn``).
It follows ``musicnn/models.py`` layer by layer: a musically motivated front end (two timbral convolutions spanning
38 and 67 mel bands, three temporal ones spanning 32-128 frames, each max-pooled over frequency), a dense mid end of
three residual 1-D convolutions, then mean and max pooling over time and two dense layers. TensorFlow's layout and
conventions are kept where they change numbers: ReLU before batch norm, batch-norm epsilon 1e-3, "same" padding
that puts the odd sample after, and the pooled vector interleaved as ``[max_0, mean_0, max_1, mean_1, ...]``.

The weights are ISC-licensed (Copyright (c) 2019, Jordi Pons); the wheel is read at training time only.
"""

from __future__ import annotations

from copy import deepcopy as copy_module
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from genrecast.dsp import DSPConfig
from torch import nn

from .tf_checkpoint import read_checkpoint

MUSICNN_DSP = DSPConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96)
N_FRAMES = 187
WINDOW_SECONDS = (N_FRAMES - 1) * MUSICNN_DSP.hop_length / MUSICNN_DSP.sample_rate + MUSICNN_DSP.n_fft / 16000
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default

MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House",
    "happy",
)
MTT_TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)
TAGS = {"MSD_musicnn": MSD_TAGS, "MTT_musicnn": MTT_TAGS}
# Where each backbone's tag names come from: the wheel's musicnn/configuration.py (MSD_LABELS, MTT_LABELS), in the
# order of its output layer. What the exported graph's metadata says about them.
TAG_ORIGIN = {
    "MSD_musicnn": "musicnn 0.1.0's MSD_musicnn output layer: the 50 most frequent Last.fm tags of the Million Song "
                   "Dataset (user tags: genres, eras, moods, vocals), names and order as its configuration.py "
                   "MSD_LABELS gives them",
    "MTT_musicnn": "musicnn 0.1.0's MTT_musicnn output layer: the 50 most frequent MagnaTagATune tags (listener "
                   "tags: genres, instruments, moods, vocals), names and order as its configuration.py MTT_LABELS "
                   "gives them",
}


def musicnn_input(logmel: torch.Tensor) -> torch.Tensor:
    """Our natural-log mel ``[B, n_mels, T]`` -> musicnn's ``log10(1 + 10000 * power)`` as ``[B, 1, T, n_mels]``.

    ``exp`` undoes our log exactly except below the 1e-10 floor, where musicnn's value is 4e-7 at most.
    """
    return torch.log10(1.0 + 10000.0 * torch.exp(logmel)).transpose(1, 2).unsqueeze(1)


class _ConvReluBN(nn.Module):
    """TensorFlow's ``conv2d(activation=relu)`` then ``batch_normalization`` (inference statistics)."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))

    def max_over_freq(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]``: the block's map max-pooled over frequency."""
        return self(x).amax(dim=3)


DEAD_WEIGHT = 1e-5  # a filter whose every weight is smaller is dead: the checkpoint's dead ones are all < 1e-6


class _PrunedConvReluBN(nn.Module):
    """The inference form of a front-end :class:`_ConvReluBN`, equal to it in eval mode but much cheaper.

    Most of MSD_musicnn's front-end filters are dead (weights under 1e-6: 181 of 204 and 190 of 204 in the timbral
    convolutions, 48, 44 and 34 of 51 in the temporal ones), so their pooled output is the constant
    ``bn(relu(bias))``; only the live filters are convolved. Pooling then comes before the ReLU and batch norm,
    which are monotonic per channel, so they touch one value per frame instead of one per band; a channel whose
    batch norm scales by a negative factor needs the minimum, which is the maximum of its negated filter.
    """

    def __init__(self, block: _ConvReluBN) -> None:
        super().__init__()
        bn, weight, bias = block.bn, block.conv.weight.detach(), block.conv.bias.detach()
        largest = weight.flatten(1).abs().amax(dim=1)
        live = (largest >= DEAD_WEIGHT) | (largest == largest.max())  # one convolution at least, even if all are dead
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        sign = torch.where(scale[live] >= 0, 1.0, -1.0)
        self.conv = nn.Conv2d(weight.shape[1], int(live.sum()), tuple(weight.shape[2:]))
        self.conv.weight.data = weight[live] * sign[:, None, None, None]
        self.conv.bias.data = bias[live] * sign
        self.register_buffer("sign", sign[:, None])
        self.register_buffer("scale", scale[live][:, None])
        self.register_buffer("shift", (bn.bias.detach() - bn.running_mean * scale)[live][:, None])
        self.register_buffer("dead", (F.relu(bias) * scale + bn.bias.detach() - bn.running_mean * scale)[~live])
        # cat([live, dead]) -> the original channel order
        self.register_buffer("order", torch.argsort(torch.cat([live.nonzero()[:, 0], (~live).nonzero()[:, 0]])))

    def max_over_freq(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]``, as :meth:`_ConvReluBN.max_over_freq` gives in eval mode."""
        pooled = self.conv(x).amax(dim=3) * self.sign
        live = F.relu(pooled) * self.scale + self.shift
        dead = self.dead[None, :, None].expand(live.shape[0], -1, live.shape[2])
        return torch.cat([live, dead], 1).index_select(1, self.order)


class _FoldedMidendConvReluBN(nn.Module):
    """The inference form of the first mid-end :class:`_ConvReluBN`, equal to it in eval mode for the pruned front end.

    Most of its 561 input channels are the dead front-end filters' constants (497 of 561 for MSD_musicnn), so their
    part of the convolution is the same at every frame but the three at each end, where the kernel reaches into the
    zero padding: a bias map, the convolution of the padded all-ones frame axis with each tap's sum of weight times
    constant. Only the live channels are convolved.
    """

    def __init__(self, block: _ConvReluBN, live: torch.Tensor, constants: torch.Tensor) -> None:
        """``live``: which input channels vary; ``constants``: the value of each of the others, in channel order."""
        super().__init__()
        weight, k = block.conv.weight.detach(), block.conv.kernel_size[0]  # [out, 1, k, C]
        self.conv = nn.Conv2d(1, weight.shape[0], (k, int(live.sum())))
        self.conv.weight.data = weight[..., live].clone()
        self.conv.bias.data = block.conv.bias.detach().clone()
        self.bn = block.bn
        self.register_buffer("live", live.nonzero()[:, 0])
        # per output channel and tap: what the constant channels add when that tap is inside the frames
        self.register_buffer("taps", (weight[..., ~live] * constants).sum(-1, keepdim=True))  # [out, 1, k, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, 1, T + k - 1, C]`` zero-padded along time, as the unfolded block takes it."""
        k = self.taps.shape[2]
        inside = F.pad(torch.ones_like(x[:1, :, k - 1 - (k - 1) // 2 : x.shape[2] - (k - 1) // 2, :1]),
                       (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2))  # 1 on the frames, 0 on the padding
        y = self.conv(x.index_select(3, self.live)) + F.conv2d(inside, self.taps)
        return self.bn(F.relu(y))


def _same_pad_time(x: torch.Tensor, k: int) -> torch.Tensor:
    """TensorFlow "same" padding along time (dim 2): the extra sample of an even kernel goes after."""
    before = (k - 1) // 2
    return F.pad(x, (0, 0, before, k - 1 - before))


@dataclass
class Activations:
    """What musicnn's own extractor returns (``[B, T, C]`` maps, pooled vectors ``[B, C]``) plus the logits."""

    timbral: torch.Tensor
    temporal: torch.Tensor
    cnn1: torch.Tensor
    cnn2: torch.Tensor
    cnn3: torch.Tensor
    mean_pool: torch.Tensor
    max_pool: torch.Tensor
    penultimate: torch.Tensor
    logits: torch.Tensor


class Musicnn(nn.Module):
    """``MSD_musicnn`` / ``MTT_musicnn``: input ``[B, 1, T, 96]`` (see :func:`musicnn_input`)."""

    def __init__(self, n_mels: int = 96, n_tags: int = 50, midend: int = 64, backend: int = 200) -> None:
        super().__init__()
        self.bn_input = nn.BatchNorm2d(1, eps=BN_EPS)
        self.timbral = nn.ModuleList([_ConvReluBN(1, 204, (7, int(f * n_mels))) for f in (0.4, 0.7)])
        self.temporal = nn.ModuleList([_ConvReluBN(1, 51, (k, 1)) for k in (128, 64, 32)])
        front = 2 * 204 + 3 * 51
        self.midend = nn.ModuleList([_ConvReluBN(1, midend, (7, c)) for c in (front, midend, midend)])
        pooled = 2 * (front + 3 * midend)
        self.bn_pool = nn.BatchNorm1d(pooled, eps=BN_EPS)
        self.dense = nn.Linear(pooled, backend)
        self.bn_dense = nn.BatchNorm1d(backend, eps=BN_EPS)
        self.out = nn.Linear(backend, n_tags)

    def front_end(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Timbral ``[B, T, 408]`` and temporal ``[B, T, 153]`` features, each max-pooled over frequency."""
        x = self.bn_input(x)
        padded = F.pad(x, (0, 0, 3, 3))
        timbral = [block.max_over_freq(padded) for block in self.timbral]
        temporal = [block.max_over_freq(_same_pad_time(x, block.conv.kernel_size[0])) for block in self.temporal]
        return torch.cat(timbral, 1).transpose(1, 2), torch.cat(temporal, 1).transpose(1, 2)

    def activations(self, x: torch.Tensor) -> Activations:
        timbral, temporal = self.front_end(x)
        front = torch.cat([timbral, temporal], 2)  # [B, T, 561]
        maps, h = [front], front
        for i, block in enumerate(self.midend):
            # a [7, C] kernel over [T, C, 1] is a 1-D convolution over time with C input channels
            y = block(F.pad(h.unsqueeze(1), (0, 0, 3, 3))).squeeze(3).transpose(1, 2)  # [B, T, 64]
            h = y if i == 0 else y + h
            maps.append(h)
        features = torch.cat(maps, 2)  # [B, T, 753]
        max_pool, mean_pool = features.amax(dim=1), features.mean(dim=1)
        pooled = torch.stack([max_pool, mean_pool], 2).flatten(1)  # TF's interleaved [max_0, mean_0, ...]
        penultimate = self.bn_dense(F.relu(self.dense(self.bn_pool(pooled))))
        return Activations(timbral, temporal, maps[1], maps[2], maps[3], mean_pool, max_pool, penultimate,
                           self.out(penultimate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tag logits (``sigmoid`` gives musicnn's tag probabilities)."""
        return self.activations(x).logits

    def pruned(self) -> Musicnn:
        """A copy in eval mode whose front end convolves only the live filters (:class:`_PrunedConvReluBN`), and whose
        first mid-end convolution only the live channels (:class:`_FoldedMidendConvReluBN`): the same activations for
        a fraction of the work; what the exported graph runs."""
        copy = copy_module(self).eval()
        for blocks in (copy.timbral, copy.temporal):
            for i, block in enumerate(blocks):
                if isinstance(block, _ConvReluBN):  # a pruned model prunes to itself
                    blocks[i] = _PrunedConvReluBN(block)
        if isinstance(copy.midend[0], _ConvReluBN):
            # the front end's channels in the mid end's order: each block's live ones vary, its dead ones are constant
            blocks = [*copy.timbral, *copy.temporal]
            live = torch.cat([torch.cat([torch.ones(b.conv.out_channels, dtype=torch.bool),
                                         torch.zeros(b.dead.shape[0], dtype=torch.bool)])[b.order] for b in blocks])
            values = torch.cat([torch.cat([torch.zeros(b.conv.out_channels), b.dead])[b.order] for b in blocks])
            copy.midend[0] = _FoldedMidendConvReluBN(copy.midend[0], live, values[~live])
        return copy


def _conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """TensorFlow ``[kh, kw, in, out]`` -> PyTorch ``[out, in, kh, kw]``."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def _midend_weight(kernel: np.ndarray) -> torch.Tensor:
    """The mid end's ``[7, C, 1, out]`` kernel, which sees ``[T, C]`` as an image, as ``[out, 1, 7, C]``."""
    return torch.from_numpy(np.ascontiguousarray(kernel[:, :, 0, :].transpose(2, 0, 1)[:, None]))


def _set_bn(bn: nn.Module, tensors: dict[str, np.ndarray], name: str) -> None:
    for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                         ("running_var", "moving_variance")):
        getattr(bn, ours).data.copy_(torch.from_numpy(tensors[f"{name}/{theirs}"]))


def load_musicnn(checkpoint: str | Path, model: str = "MSD_musicnn") -> Musicnn:
    """A :class:`Musicnn` with the weights of ``model`` from ``checkpoint`` (the musicnn wheel, or a checkpoint
    prefix such as ``.../MSD_musicnn/``), in eval mode.

    Variable names follow the order TensorFlow created them in ``build_musicnn``: ``conv2d`` .. ``conv2d_7`` and
    ``batch_normalization`` .. ``batch_normalization_10``; every tensor must be used exactly once.
    """
    tensors = read_checkpoint(checkpoint, model)
    model = Musicnn(n_tags=tensors["dense_1/bias"].shape[0])
    convs = [*model.timbral, *model.temporal, *model.midend]
    used = set()
    for i, block in enumerate(convs):
        name = "conv2d" if i == 0 else f"conv2d_{i}"
        kernel = tensors[f"{name}/kernel"]
        block.conv.weight.data.copy_(_midend_weight(kernel) if i >= 5 else _conv_weight(kernel))
        block.conv.bias.data.copy_(torch.from_numpy(tensors[f"{name}/bias"]))
        used |= {f"{name}/kernel", f"{name}/bias"}
    bns = [model.bn_input, *(b.bn for b in convs), model.bn_pool, model.bn_dense]
    for i, bn in enumerate(bns):
        name = "batch_normalization" if i == 0 else f"batch_normalization_{i}"
        _set_bn(bn, tensors, name)
        used |= {f"{name}/{k}" for k in ("gamma", "beta", "moving_mean", "moving_variance")}
    for layer, name in ((model.dense, "dense"), (model.out, "dense_1")):
        layer.weight.data.copy_(torch.from_numpy(tensors[f"{name}/kernel"].T.copy()))
        layer.bias.data.copy_(torch.from_numpy(tensors[f"{name}/bias"]))
        used |= {f"{name}/kernel", f"{name}/bias"}
    unused = sorted(set(tensors) - used)
    if unused:
        raise ValueError(f"checkpoint {checkpoint}: tensors the port does not use: {', '.join(unused[:5])}")
    return model.eval()
