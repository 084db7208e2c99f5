"""The PyTorch port of musicnn against the original TensorFlow graph, and the checkpoint reader.

``tests/data/musicnn_msd_reference.npz`` and ``musicnn_mtt_reference.npz`` hold three input patches (cut from the
generated example clip by our own front end) and what the ORIGINAL MSD_musicnn and MTT_musicnn graphs computed for them
under TensorFlow 2.15 (every 8th frame of each feature map, the pooled vectors, the penultimate layer and the tag
logits); ``scripts/musicnn_parity.py`` made them.
The wheel itself is fetched by ``scripts/setup.sh``.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import torch
from conftest import ROOT
from genrecast.training import DEFAULT_WHEEL as WHEEL
from genrecast.training.musicnn import MSD_TAGS, load_musicnn, musicnn_input
from genrecast.training.tf_checkpoint import CheckpointError, parse_checkpoint, read_checkpoint

FIXTURES = {"MSD_musicnn": ROOT / "tests" / "data" / "musicnn_msd_reference.npz",
            "MTT_musicnn": ROOT / "tests" / "data" / "musicnn_mtt_reference.npz"}
FIXTURE = FIXTURES["MSD_musicnn"]
MAPS = ("timbral", "temporal", "cnn1", "cnn2", "cnn3")


@pytest.fixture(scope="module")
def msd():
    assert WHEEL.is_file(), f"{WHEEL} missing: scripts/setup.sh fetches it (make setup)"
    return load_musicnn(WHEEL, "MSD_musicnn")


def test_checkpoint_has_every_weight_and_no_optimiser_state():
    tensors = read_checkpoint(WHEEL, "MSD_musicnn")
    assert sum(v.size for v in tensors.values()) == 792_079  # the 792k parameters musicnn's paper states
    assert not [n for n in tensors if "Adam" in n or "power" in n]
    assert tensors["conv2d/kernel"].shape == (7, 38, 1, 204) and tensors["conv2d_1/kernel"].shape == (7, 67, 1, 204)


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_musicnn"])
def test_every_checkpoint_tensor_is_used(model):
    net = load_musicnn(WHEEL, model)  # raises if a tensor is left over or missing
    assert sum(p.numel() for p in net.parameters()) + sum(b.numel() for n, b in net.named_buffers()
                                                           if "num_batches" not in n) == 792_079


@pytest.mark.parametrize("model", FIXTURES)
def test_port_matches_the_tensorflow_graph_layer_by_layer(model):
    ref = np.load(FIXTURES[model])
    x = torch.from_numpy(ref["x"].astype(np.float32)).unsqueeze(1)
    with torch.no_grad():
        acts = load_musicnn(WHEEL, model).activations(x)
    for name in (*MAPS, "mean_pool", "max_pool", "penultimate", "logits"):
        ours = getattr(acts, name).numpy()
        ours = ours[:, ::8] if name in MAPS else ours
        theirs = ref[name]
        assert ours.shape == theirs.shape, name
        # float32 summation order differs between the two libraries: 1e-4 relative to the layer's scale
        assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max()), name
    tags = torch.sigmoid(acts.logits).numpy()
    np.testing.assert_allclose(tags, 1 / (1 + np.exp(-ref["logits"])), atol=1e-5)


def test_pruned_front_end_computes_the_same_activations(msd):
    """The exported graph's front end convolves only the live filters, and its mid end only their channels: same
    maps, pooled vectors and tags, layer by layer."""
    pruned = msd.pruned()
    assert [b.conv.out_channels for b in (*pruned.timbral, *pruned.temporal)] == [23, 14, 3, 7, 17]
    assert [b.conv.out_channels for b in msd.timbral] == [204, 204]  # the port itself is untouched
    # the mid end's first convolution sees only the live filters' 64 channels; the 497 constant ones are a bias map
    assert pruned.midend[0].conv.in_channels == 1 and pruned.midend[0].conv.kernel_size == (7, 64)
    assert msd.midend[0].conv.kernel_size == (7, 561)
    ref = np.load(FIXTURE)
    x = torch.cat([torch.from_numpy(ref["x"].astype(np.float32)).unsqueeze(1),
                   2 * torch.randn(2, 1, *ref["x"].shape[1:], generator=torch.Generator().manual_seed(0))])
    with torch.no_grad():
        ours, theirs = pruned.activations(x), msd.activations(x)
        again = pruned.pruned().activations(x)
    for name in (*MAPS, "mean_pool", "max_pool", "penultimate", "logits"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert a.shape == b.shape, name
        assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max()), name
        assert torch.equal(getattr(again, name), a), name


def test_pruned_mtt_network_computes_the_same_activations():
    """MagnaTagATune's network has more live filters (the heads read it beside the Million Song one), pruned alike."""
    net = load_musicnn(WHEEL, "MTT_musicnn")
    pruned = net.pruned()
    assert [b.conv.out_channels for b in (*pruned.timbral, *pruned.temporal)] == [112, 80, 38, 37, 47]
    assert pruned.midend[0].conv.kernel_size == (7, 314)
    x = 2 * torch.randn(3, 1, 187, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = pruned.activations(x), net.activations(x)
    for name in (*MAPS, "mean_pool", "max_pool", "penultimate", "logits"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max()), name


def test_synthetic_groove_is_tagged_electronic(msd):
    ref = np.load(FIXTURE)
    with torch.no_grad():
        tags = torch.sigmoid(msd(torch.from_numpy(ref["x"].astype(np.float32)).unsqueeze(1))).mean(0)
    top = {MSD_TAGS[i] for i in torch.argsort(tags, descending=True)[:3]}
    assert top & {"electronic", "electronica", "electro", "House", "dance"}, top


def test_musicnn_input_is_log10_of_one_plus_10000_power():
    power = torch.tensor([[[1e-10, 1e-4, 1.0]]])
    x = musicnn_input(torch.log(power))
    np.testing.assert_allclose(x[0, 0, :, 0].numpy(), np.log10(1 + 1e4 * power.numpy()[0, 0]), rtol=1e-6, atol=1e-6)


def test_reader_refuses_what_is_not_a_bundle(tmp_path):
    with pytest.raises(CheckpointError, match="not a TensorFlow bundle index"):
        parse_checkpoint(b"\0" * 100, b"")
    with pytest.raises(CheckpointError, match="neither the musicnn wheel"):
        read_checkpoint(tmp_path / "absent/")
    text = tmp_path / "notes.wav"  # a file, but neither a wheel nor a prefix: it once said "No such file"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=re.escape(f"{text}: neither the musicnn wheel (*.whl) nor a checkpoint")):
        read_checkpoint(text, "MSD_musicnn")
    with pytest.raises(CheckpointError, match="holds no checkpoint musicnn/MSD_nothing/"):
        read_checkpoint(WHEEL, "MSD_nothing")
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"PK not really a zip")
    with pytest.raises(CheckpointError, match="bad.whl"):
        read_checkpoint(bad, "MSD_musicnn")


def test_reader_refuses_a_truncated_data_file():
    import zipfile

    with zipfile.ZipFile(WHEEL) as whl:
        table = whl.read("musicnn/MSD_musicnn/.index")
        data = whl.read("musicnn/MSD_musicnn/.data-00000-of-00001")
    assert struct.unpack_from("<Q", table, len(table) - 8)[0] == 0xDB4775248B80FB57
    with pytest.raises(CheckpointError, match="truncated"):
        parse_checkpoint(table, data[: len(data) // 2])
