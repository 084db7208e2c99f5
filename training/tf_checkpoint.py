"""Reading a TensorFlow (v1/v2 "bundle") checkpoint without TensorFlow.

A checkpoint is ``<prefix>.index``, an uncompressed LevelDB table mapping each variable's name to a
``BundleEntryProto`` (dtype, shape, byte offset and size), and ``<prefix>.data-00000-of-00001``, the raw
little-endian tensors at those offsets. musicnn's wheel ships its pretrained weights in this form; reading them
directly keeps TensorFlow (and its ancient pins) out of the project.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # compression type byte + crc32c, after every block
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated or not in the bundle format."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _block(data: bytes, handle: bytes) -> bytes:
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if data[offset + size] != 0:
        raise CheckpointError("compressed table blocks are not supported")
    return data[offset : offset + size]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (keys are prefix-compressed against the previous key)."""
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * n_restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + value_len]))
        pos += value_len
    return out


def _fields(msg: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message's (field number, value) pairs: varints as ints, length-delimited as bytes."""
    out, pos = [], 0
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(msg, pos)
        elif wire == 2:
            n, pos = _varint(msg, pos)
            value, pos = msg[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", msg, pos)[0], pos + 4
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", msg, pos)[0], pos + 8
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _entry(value: bytes) -> tuple[int, tuple[int, ...], int, int]:
    """``BundleEntryProto`` -> (dtype, shape, offset, size)."""
    dtype, shape, offset, size = 0, (), 0, 0
    for number, v in _fields(value):
        if number == 1:
            dtype = v
        elif number == 2:
            shape = tuple(dict(_fields(dim)).get(1, 0) for n, dim in _fields(v) if n == 2)
        elif number == 4:
            offset = v
        elif number == 5:
            size = v
        elif number == 7:
            raise CheckpointError("sliced (partitioned) variables are not supported")
    return dtype, shape, offset, size


def parse_checkpoint(table: bytes, data: bytes, skip_optimizer: bool = True) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint given its ``.index`` and ``.data-00000-of-00001`` bytes, by name.

    ``skip_optimizer`` leaves out Adam's slot variables (``.../Adam``, ``.../Adam_1``) and its beta powers,
    which are training state, not weights.
    """
    if len(table) < _FOOTER_SIZE or struct.unpack_from("<Q", table, len(table) - 8)[0] != _TABLE_MAGIC:
        raise CheckpointError("not a TensorFlow bundle index")
    footer = table[-_FOOTER_SIZE:]
    _, pos = _varint(footer, 0)  # metaindex handle: offset ...
    _, pos = _varint(footer, pos)  # ... and size (unused)
    tensors: dict[str, np.ndarray] = {}
    for _, handle in _block_entries(_block(table, footer[pos:])):
        for key, value in _block_entries(_block(table, handle)):
            name = key.decode()
            if not name:  # the bundle header
                continue
            if skip_optimizer and ("/Adam" in name or name.startswith(("beta1_power", "beta2_power"))):
                continue
            dtype, shape, offset, size = _entry(value)
            if dtype not in _DTYPES:
                raise CheckpointError(f"{name} has unsupported dtype {dtype}")
            if offset + size > len(data):
                raise CheckpointError(f"data file truncated ({name} lies past its end)")
            array = np.frombuffer(data, _DTYPES[dtype], size // np.dtype(_DTYPES[dtype]).itemsize, offset)
            tensors[name] = array.reshape(shape).copy()
    return tensors


def read_checkpoint(source: str | Path, model: str = "") -> dict[str, np.ndarray]:
    """The weights of a checkpoint: ``source`` is a prefix (``.../MSD_musicnn/``, ``.../model.ckpt``), or a wheel
    (``musicnn-0.1.0-py3-none-any.whl``) that holds ``musicnn/<model>/`` without being installed or unpacked."""
    source = str(source)
    if not source.endswith(".whl") and not Path(source + ".index").is_file():  # say what is wanted, not ENOENT
        raise CheckpointError(f"{source}: neither the musicnn wheel (*.whl) nor a checkpoint prefix (no "
                              f"{source}.index)")
    try:
        if source.endswith(".whl"):
            with zipfile.ZipFile(source) as whl:
                prefix = f"musicnn/{model}/"
                table, data = whl.read(prefix + ".index"), whl.read(prefix + ".data-00000-of-00001")
        else:
            table = Path(source + ".index").read_bytes()
            data = Path(source + ".data-00000-of-00001").read_bytes()
        return parse_checkpoint(table, data)
    except KeyError:
        raise CheckpointError(f"{source}: holds no checkpoint musicnn/{model}/") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"checkpoint {source}: {getattr(exc, 'strerror', None) or exc}") from None
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {source}{'/' + model if model else ''}: {exc}") from None
