"""A write the database refuses goes to the process's write-failure handler (storage/writer.py).

The node's handler exits at once: a later write on the same LevelDB handle would append after
the refused write's partial log record and make the next open fail (see
tests/faults/test_disk.py::test_disk_full_on_one_node).
"""

from __future__ import annotations

from collections.abc import Iterator

import plyvel
import pytest

from storage.writer import SyncWriter, set_write_failure_handler


@pytest.fixture
def handler_calls() -> Iterator[list[BaseException]]:
    calls: list[BaseException] = []
    set_write_failure_handler(calls.append)
    try:
        yield calls
    finally:
        set_write_failure_handler(None)


def _refused() -> None:
    raise plyvel.IOError(b"IO error: 000003.log: No space left on device")


def test_refused_write_reaches_the_handler(handler_calls: list[BaseException]) -> None:
    with SyncWriter("t") as w:
        fut = w.submit(_refused)
        with pytest.raises(plyvel.IOError):
            fut.result(5)
    assert len(handler_calls) == 1 and "No space left" in str(handler_calls[0])


def test_other_errors_and_good_writes_do_not(handler_calls: list[BaseException]) -> None:
    def bug() -> None:
        raise ValueError("not a storage refusal")

    with SyncWriter("t") as w:
        assert w.submit(lambda: 7).result(5) == 7
        with pytest.raises(ValueError):
            w.submit(bug).result(5)
    assert handler_calls == []


def test_without_handler_the_error_is_raised() -> None:
    with SyncWriter("t") as w, pytest.raises(plyvel.IOError):
        w.submit(_refused).result(5)
