"""Process settings for CPU machines (``a2i/runtime.py``): what is set, and when it is left alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from a2i import runtime


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("restore_threads")
def test_threads_are_the_cores_the_workers_leave(monkeypatch):
    for name in (*runtime.THREAD_ENV, runtime.KEEP_DEFAULTS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 8)
    assert runtime.fit_cpu_threads(processes=1, loader_workers=2) == 6
    assert torch.get_num_threads() == 6
    assert runtime.fit_cpu_threads(processes=2, loader_workers=1) == 3
    assert runtime.fit_cpu_threads(processes=4, loader_workers=4) == 1  # never below one


@pytest.mark.usefixtures("restore_threads")
@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", runtime.KEEP_DEFAULTS_ENV])
def test_threads_left_alone_when_the_user_chose(monkeypatch, name):
    monkeypatch.setenv(name, "1")
    before = torch.get_num_threads()
    assert runtime.fit_cpu_threads(processes=1, loader_workers=1) is None
    assert torch.get_num_threads() == before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
@pytest.mark.parametrize(
    ("env", "tuned"),
    [({}, True), ({"A2I_KEEP_DEFAULTS": "1"}, False), ({"MALLOC_TOP_PAD_": "131072"}, False)],
)
def test_allocator_tuned_unless_the_user_chose(env, tuned):
    """In a fresh process (the setting is once per process)."""
    code = "from a2i.runtime import tune_allocator; print(tune_allocator())"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "A2I_"))}
    out = subprocess.run(
        [sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(tuned)
