"""Reader threads' requests are gathered into batches for one batched decoder
(core/batch_decode.py); failures reach every reader of the batch; closing is clean."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from omicslens.core.batch_decode import BatchingDecoder, DecoderClosed


class RecordingBackend:
    """Decodes "streams" that are just bytes into arrays, slowly, recording batch sizes."""

    def __init__(self, delay: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.gate = delay

    def __call__(self, streams: list[bytes]) -> list[np.ndarray]:
        if self.gate is not None:
            self.gate.wait(5)
        self.sizes.append(len(streams))
        return [np.frombuffer(stream, dtype=np.uint8).copy() for stream in streams]


def _read_at_once(decoder: BatchingDecoder, gate: threading.Event, count: int) -> dict:
    """``count`` reader threads ask at once (the backend is held until all have started)."""
    results: dict[int, np.ndarray] = {}

    def read(number: int) -> None:
        results[number] = decoder.decode(bytes([number, number + 1]))

    threads = [threading.Thread(target=read, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    decoder.close()
    return results


def test_concurrent_requests_are_batched_and_each_gets_its_own_tile() -> None:
    gate = threading.Event()
    backend = RecordingBackend(gate)
    decoder = BatchingDecoder(backend, max_batch=16, max_wait_s=0.05)
    results = _read_at_once(decoder, gate, 12)
    assert sorted(results) == list(range(12))
    for number, tile in results.items():
        np.testing.assert_array_equal(tile, [number, number + 1])
    assert sum(backend.sizes) == 12
    assert max(backend.sizes) > 1  # requests from different threads shared a call
    stats = decoder.stats()
    assert stats.tiles == 12 and stats.batches == len(backend.sizes) and stats.failed_batches == 0


def test_batches_never_exceed_the_limit() -> None:
    gate = threading.Event()
    backend = RecordingBackend(gate)
    decoder = BatchingDecoder(backend, max_batch=3, max_wait_s=0.05)
    assert len(_read_at_once(decoder, gate, 10)) == 10
    assert sum(backend.sizes) == 10 and max(backend.sizes) <= 3


def test_a_failed_batch_reaches_every_reader_and_is_not_data() -> None:
    def broken(streams: list[bytes]) -> list[np.ndarray]:
        raise RuntimeError("nvjpeg: bad stream")

    decoder = BatchingDecoder(broken)
    with pytest.raises(RuntimeError, match="bad stream"):
        decoder.decode(b"abc")
    assert decoder.stats().failed_batches == 1

    short = BatchingDecoder(lambda streams: [])
    with pytest.raises(RuntimeError, match="returned 0 tiles for 1 streams"):
        short.decode(b"abc")
    decoder.close()
    short.close()


def test_after_close_decoding_says_so() -> None:
    decoder = BatchingDecoder(RecordingBackend(), name="gpu test decoder")
    np.testing.assert_array_equal(decoder.decode(b"\x01"), [1])
    decoder.close()
    decoder.close()  # twice is fine
    with pytest.raises(DecoderClosed, match="gpu test decoder is closed"):
        decoder.decode(b"\x01")
    with pytest.raises(ValueError, match="max_batch"):
        BatchingDecoder(RecordingBackend(), max_batch=0)
