"""Read a TensorFlow checkpoint (``<prefix>.index`` + ``<prefix>.data-00000-of-00001``) without TensorFlow.

The ``.index`` is TensorFlow's sorted-table format (LevelDB's SSTable): data blocks of prefix-compressed
key/value entries, an index block naming them, and a 48-byte footer. Each key is a tensor name; each value
a ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c) saying where the tensor's little-endian
bytes lie in the data file. The empty key holds the bundle's header. Only what a checkpoint of plain
numeric tensors needs is read: no compression (TensorFlow writes bundles uncompressed), no slices.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import ModelError

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5  # after each block: a compression byte and a masked crc32c
# TensorFlow's DataType enum -> numpy (little-endian).
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 17: "<u2", 19: "<f2",
           22: "<u4", 23: "<u8"}


@dataclass(frozen=True)
class Entry:
    """Where one tensor lies in the data file."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("a varint runs past the end of its buffer")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of each field of a protobuf message; value is an int for
    varints and fixed ints, bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by checkpoints")
        yield number, wire, value


def _shape(buf: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim (field 2) whose field 1 is the size."""
    dims = []
    for number, _, dim in _fields(buf):
        if number == 2:
            dims.append(next((v for n, _, v in _fields(dim) if n == 1), 0))
    return tuple(dims)


def parse_entry(buf: bytes) -> Entry:
    """A ``BundleEntryProto``: dtype=1, shape=2, shard_id=3, offset=4, size=5, crc32c=6, slices=7."""
    f = {1: 0, 2: b"", 3: 0, 4: 0, 5: 0, 6: 0}
    for number, _, value in _fields(buf):
        if number == 7:
            raise ValueError("sliced (partitioned) tensors are not supported")
        f[number] = value
    return Entry(int(f[1]), _shape(f[2]), int(f[3]), int(f[4]), int(f[5]), int(f[6]))


def _block(data: bytes, handle: bytes) -> list[tuple[bytes, bytes]]:
    """The key/value entries of the block a BlockHandle (offset, size varints) points at."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + _TRAILER > len(data):
        raise ValueError("a block lies past the end of the index")
    if data[offset + size] != 0:
        raise ValueError(f"block compression {data[offset + size]} is not supported (TensorFlow writes none)")
    block = data[offset:offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + length]))
        pos += length
    return entries


def read_index(index: Path) -> dict[str, Entry]:
    """Every tensor's entry in a checkpoint's ``.index`` file, by name."""
    data = Path(index).read_bytes()
    if len(data) < _FOOTER or struct.unpack_from("<Q", data, len(data) - 8)[0] != _MAGIC:
        raise ValueError(f"{index} is not a TensorFlow checkpoint index (no table footer)")
    footer = data[-_FOOTER:]
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)          # the metaindex handle: empty in checkpoints
    entries: dict[str, Entry] = {}
    for _, handle in _block(data, footer[pos:]):
        for key, value in _block(data, handle):
            if key:                       # the empty key is the BundleHeaderProto
                entries[key.decode()] = parse_entry(value)
    return entries


class Checkpoint:
    """A checkpoint's tensors, read on demand from the memory-mapped data file."""

    def __init__(self, prefix: str | Path):
        self.prefix = Path(prefix)
        index = self.prefix.with_name(self.prefix.name + ".index")
        try:
            self.entries = read_index(index)
        except (OSError, ValueError, struct.error) as exc:
            raise ModelError(f"cannot read the checkpoint index {index}: {exc}") from exc
        shards = {e.shard for e in self.entries.values()}
        if shards - {0}:
            raise ModelError(f"{index}: only single-shard checkpoints are supported (shards {sorted(shards)})")
        self.data_path = self.prefix.with_name(self.prefix.name + ".data-00000-of-00001")
        self._data = np.memmap(self.data_path, dtype=np.uint8, mode="r")

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __getitem__(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a native-endian array of its shape (a copy, not a view of the file)."""
        e = self.entries[name]
        if e.dtype not in _DTYPES:
            raise ModelError(f"{name}: TensorFlow dtype {e.dtype} is not supported")
        dtype = np.dtype(_DTYPES[e.dtype])
        if e.offset + e.size > len(self._data) or e.size != dtype.itemsize * int(np.prod(e.shape, dtype=np.int64)):
            raise ModelError(f"{name}: its entry (offset {e.offset}, size {e.size}, shape {e.shape}) does not "
                             f"fit {self.data_path} ({len(self._data)} bytes)")
        raw = np.frombuffer(self._data[e.offset:e.offset + e.size], dtype=dtype)
        return raw.astype(dtype.newbyteorder("="), copy=True).reshape(e.shape)
