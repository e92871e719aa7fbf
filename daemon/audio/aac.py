"""M4A (AAC-LC) written in segments that encode in parallel and join without a gap or a click.

FFmpeg's AAC encoder (through PyAV) is the slowest encoder we use (about 0.026 s per second of
48 kHz audio on one core, more than the `shift` engine itself), so it must not run as one
stream after the chunks.  AAC frames carry their own bits; only the transform's 50 % overlap
ties a frame to its neighbours.  Each segment is encoded with ``MARGIN_FRAMES`` frames of its
neighbours' audio on each side and starts on the global 1024-sample grid, so the frames kept
from it line up with the frames of a single run; the error at a seam equals a single run's
(``tests/integration/test_stream_encode.py``).  The packets are then muxed into MP4 without
re-encoding, with the encoder's priming and the tail trimmed by the edit list.
"""

from __future__ import annotations

import fractions

import numpy as np

BITRATE = 128_000
FRAME = 1024
PRIMING = 1024            # samples the encoder puts before the audio (the first packet's pts is -1024)
MARGIN_FRAMES = 8          # 0.17 s at 48 kHz: the seam error stops falling near here (measured)


def _encoder(rate: int):
    import av

    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = rate, "mono", "fltp", BITRATE
    ctx.open()
    return ctx


def encode_segment(samples: np.ndarray, rate: int, skip: int, keep: int | None) -> tuple[list[bytes], bytes]:
    """Packets ``skip`` … ``skip + keep`` (all the rest when ``keep`` is None) of one encoder run
    over ``samples``, and the stream's AudioSpecificConfig.  Pure: arrays in, bytes out."""
    import av

    ctx = _encoder(rate)
    x = np.clip(np.ascontiguousarray(samples, dtype=np.float32), -1.0, 1.0)
    packets = []
    for i in range(0, len(x), FRAME):
        frame = av.AudioFrame.from_ndarray(x[None, i:i + FRAME], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, i
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    kept = packets[skip:] if keep is None else packets[skip:skip + keep]
    return kept, bytes(ctx.extradata or b"")


def mux(packets, out_path: str, rate: int, total: int) -> None:
    """Write AAC ``packets`` (an iterable, in order) into an MP4 file that plays ``total`` samples."""
    import av

    tb = fractions.Fraction(1, rate)
    with av.open(out_path, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.codec_context.layout, stream.codec_context.bit_rate = "mono", BITRATE
        stream.time_base = tb
        pts = -PRIMING
        end = total  # presentation ends here; the last packet is cut to it
        for data in packets:
            pkt = av.Packet(data)
            pkt.stream, pkt.time_base = stream, tb
            pkt.pts = pkt.dts = pts
            pkt.duration = max(1, min(FRAME, end - pts)) if pts + FRAME > end else FRAME
            container.mux(pkt)
            pts += FRAME
