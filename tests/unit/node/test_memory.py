"""Allocator tuning: applied on this glibc, honours the operator's environment, never raises."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from secprivnode import memory
from secprivnode.memory import PARAMS, TuningResult, glibc_version, tune_allocator

ALL = tuple(p.name for p in PARAMS)
on_glibc = pytest.mark.skipif(glibc_version() is None, reason="needs glibc")


class FakeLibc:
    """A C library whose mallopt records its calls and answers ``answer``."""

    def __init__(self, answer: int = 1, raises: BaseException | None = None) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer
        self.raises = raises

    def mallopt(self, param: Any, value: Any) -> int:
        self.calls.append((param.value, value.value))
        if self.raises is not None:
            raise self.raises
        return self.answer


def test_the_pinned_values_are_the_documented_ones() -> None:
    by_name = {p.name: p for p in PARAMS}
    assert by_name["M_MMAP_THRESHOLD"].number == -3 and by_name["M_MMAP_THRESHOLD"].value == 128 * 1024
    assert by_name["M_TRIM_THRESHOLD"].number == -1 and by_name["M_TRIM_THRESHOLD"].value == 128 * 1024
    assert by_name["M_ARENA_MAX"].number == -8 and by_name["M_ARENA_MAX"].value == 2


@on_glibc
def test_applies_every_parameter_on_this_glibc() -> None:
    result = tune_allocator(environ={})
    assert result == TuningResult(applied=ALL)


@on_glibc
def test_default_libc_is_loaded_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLibc()
    monkeypatch.setattr(memory, "_load_libc", lambda: fake)
    assert tune_allocator(environ={}).applied == ALL
    assert fake.calls == [(p.number, p.value) for p in PARAMS]


@on_glibc
def test_block_buffers_are_mapped_after_one_was_freed() -> None:
    # The dynamic threshold would serve the second 200 KB buffer from the heap (mallopt(3), Note
    # under M_MMAP_THRESHOLD); once tuned, every such buffer is its own mapping.
    script = textwrap.dedent(
        """
        import ctypes
        from secprivnode.memory import tune_allocator
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
        libc.mallinfo2.restype = Info
        def second_buffer_is_mapped():
            libc.free(libc.malloc(200 * 1024))
            before = libc.mallinfo2().hblks
            p = libc.malloc(200 * 1024)
            mapped = libc.mallinfo2().hblks == before + 1
            libc.free(p)
            return mapped
        untuned = second_buffer_is_mapped()
        tune_allocator(environ={})
        print(untuned, second_buffer_is_mapped(), second_buffer_is_mapped())
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"]


def test_no_mallopt_is_a_logged_no_op(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="secprivnode.memory")
    result = tune_allocator(libc=object(), environ={})
    assert result.applied == () and result.skipped_reason == "the C library has no mallopt"
    assert "malloc tuning skipped: the C library has no mallopt" in caplog.text


def test_not_glibc_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(name: str) -> str:
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(memory.os, "confstr", no_such_name)
    assert glibc_version() is None
    assert tune_allocator(environ={}) == TuningResult(skipped_reason="the C library is not glibc")


def test_musl_like_confstr_answer_is_not_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.os, "confstr", lambda name: None)
    assert glibc_version() is None


def test_unloadable_libc_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> Any:
        raise OSError("no libc")

    monkeypatch.setattr(memory, "glibc_version", lambda: "2.36")
    monkeypatch.setattr(memory, "_load_libc", fail)
    assert tune_allocator(environ={}).skipped_reason == "cannot load the C library: no libc"


def test_refused_and_raising_mallopt_never_raise() -> None:
    assert tune_allocator(libc=FakeLibc(answer=0), environ={}) == TuningResult(refused=ALL)
    raising = FakeLibc(raises=ctypes.ArgumentError("bad argument"))
    assert tune_allocator(libc=raising, environ={}) == TuningResult(refused=ALL)
    assert len(raising.calls) == len(PARAMS)


def test_operator_environment_wins() -> None:
    fake = FakeLibc()
    env = {"MALLOC_ARENA_MAX": "4", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=65536"}
    result = tune_allocator(libc=fake, environ=env)
    assert result == TuningResult(applied=("M_TRIM_THRESHOLD",), operator_set=("M_MMAP_THRESHOLD", "M_ARENA_MAX"))
    assert fake.calls == [(-1, 128 * 1024)]
