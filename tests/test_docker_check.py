"""benchmarks/docker_check.py without building: skipped with its reason where the tools are
missing, and the Dockerfile's base is an argument defaulting to python:3.11-slim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_without_buildah_the_check_is_skipped_with_the_reason(
    load_benchmark, monkeypatch, capsys, tmp_path
):
    check = load_benchmark("docker_check")
    monkeypatch.setattr(check.shutil, "which", lambda tool: None)  # nor the local base
    assert check.main(["--log", str(tmp_path / "log")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("docker-check: skipped: buildah and debootstrap and podman not")
    assert "apt-get install -y buildah podman debootstrap" in printed
    assert not (tmp_path / "log").exists()


def test_making_the_local_base_needs_root(load_benchmark, monkeypatch):
    check = load_benchmark("docker_check")
    monkeypatch.setattr(check.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(check.os, "geteuid", lambda: 1000)
    assert "as root only" in check.missing_tools(make_base=True)
    assert check.missing_tools(make_base=False) is None  # a given --base needs buildah only


def test_the_dockerfile_builds_from_a_base_argument_defaulting_to_python_slim():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE\}$", dockerfile, re.MULTILINE)
    assert re.search(r"^ARG TORCH_INDEX=$", dockerfile, re.MULTILINE)  # CUDA wheels by default
