"""Build docker/Dockerfile and run a2i inside the image, without a Docker daemon or a registry.

``make docker-check`` runs it (it is not part of ``make test``: the build downloads every wheel of
requirements.lock). Steps, each timed:

1. the base: ``--base`` if given (an image a registry or local storage has), else a Debian
   bookworm minbase with Python 3.11 made by ``debootstrap`` and imported with ``podman import``
   (made once; ``--rebuild_base`` makes it again);
2. ``buildah build --isolation chroot`` of docker/Dockerfile (``--pull=never`` from the local
   base) with ``BASE`` (and ``TORCH_INDEX`` where given) as build arguments;
3. in a working container of the image (``buildah run``; ``podman run`` needs cgroups these
   machines do not give): ``a2i --help``, then ``a2i world`` writes two test clips and ``a2i
   predict`` draws them with the tiny GAN whose weights ship with a2i.

It prints one line per step and a summary, and exits 1 naming the step that failed. Without the
tools (buildah; debootstrap and podman for a local base; root for debootstrap) it prints why it is
skipped and exits 0. Where pip trusts a CA bundle of its own (``PIP_CERT``, e.g. behind a proxy that
re-signs HTTPS), pip in the build is given it as a build secret (``--ca_bundle``). The full build log goes to ``--log``. Run::

    nice python benchmarks/docker_check.py            # make docker-check
    python benchmarks/docker_check.py --base python:3.11-slim --torch_index URL
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL_BASE = "localhost/a2i-base:bookworm-python3.11"
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
"""Debian's Python 3.11 as ``python`` with ``venv``, as in python:3.11-slim, and the CA bundle
pip needs to reach the package index over HTTPS."""
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SMOKE_CLIPS = 2
PREDICT = (
    f"a2i world --out /tmp/world --train 0 --val 0 --test {SMOKE_CLIPS} --audio_only"
    " && a2i predict --config tiny/sound2vision_gan_shipped --audio_dir /tmp/world/audio/test"
    " --output_dir /tmp/images"
    " && find /tmp/images -name '*.png' ! -name grid.png | wc -l"
)
"""The tiny predict run inside the image: world clips in, images out; prints the image count
(one per clip; the grid of all is not counted)."""


class CheckFailed(Exception):
    """A step failed: its name and the end of its output."""


def say(line: str) -> None:
    print(f"docker-check: {line}", flush=True)


def run(command: list[str], step: str, log: Path | None = None) -> str:
    """Run ``command``; its stdout (to ``log`` as well, with stderr, where given).

    Raises:
        CheckFailed: It exited non-zero (with the last lines of its output).
    """
    with tempfile.TemporaryFile("w+") as captured:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=captured, text=True)
        captured.seek(0)
        errors = captured.read()
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ {shlex.join(command)}\n{done.stdout}{errors}\n")
    if done.returncode != 0:
        tail = "\n".join((done.stdout + errors).strip().splitlines()[-15:])
        raise CheckFailed(f"{step} failed (exit {done.returncode}): {shlex.join(command)}\n{tail}")
    return done.stdout


def missing_tools(make_base: bool) -> str | None:
    """Why the check cannot run here, or None."""
    needed = ["buildah"] + (["debootstrap", "podman"] if make_base else [])
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not installed (Debian: apt-get install -y buildah "
            "podman debootstrap)"
        )
    if make_base and os.geteuid() != 0:
        return "debootstrap makes the local base as root only (or give --base IMAGE)"
    return None


def has_image(name: str) -> bool:
    """Whether buildah's local storage holds ``name`` (False without buildah)."""
    if shutil.which("buildah") is None:
        return False
    found = subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True)
    return found.returncode == 0


def make_base(mirror: str, log: Path) -> float:
    """Bootstrap Debian bookworm with Python 3.11 and import it as :data:`LOCAL_BASE`."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="a2i-base-") as folder:
        root = Path(folder) / "root"
        bootstrap = ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}"]
        run([*bootstrap, "bookworm", str(root), mirror], "debootstrap", log)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", "-", LOCAL_BASE], stdin=tar.stdout, capture_output=True
        )
        tar.wait()
        if tar.returncode or imported.returncode:
            raise CheckFailed(f"podman import failed: {imported.stderr.decode()[-2000:]}")
    return time.perf_counter() - start


def image_size(name: str) -> str:
    """Size of the image's layers as ``buildah images`` shows it (``6.95 GB``)."""
    listing = json.loads(run(["buildah", "images", "--json", name], "buildah images"))
    return str(listing[0]["size"])


def smoke_test(image: str, log: Path) -> tuple[str, int, float]:
    """``(first line of a2i --help, images predict drew, seconds)`` in a working container."""
    container = run(["buildah", "from", "--pull=never", image], "buildah from").strip()
    try:
        inside = ["buildah", "run", "--isolation", "chroot", "--env", "HF_HUB_OFFLINE=1"]
        inside += ["--env", "TRANSFORMERS_OFFLINE=1", container, "--"]
        usage = run([*inside, "a2i", "--help"], "a2i --help in the image", log)
        start = time.perf_counter()
        count = run([*inside, "sh", "-c", PREDICT], "a2i world + predict in the image", log)
        seconds = time.perf_counter() - start
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)
    return usage.strip().splitlines()[0], int(count.strip().splitlines()[-1]), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base",
        help=f"image to build from (default: {LOCAL_BASE}, made here with debootstrap)",
    )
    parser.add_argument("--rebuild_base", action="store_true", help="make the local base again")
    parser.add_argument("--mirror", default=DEBIAN_MIRROR, help="Debian mirror for debootstrap")
    parser.add_argument(
        "--torch_index",
        default="",
        help="the Dockerfile's TORCH_INDEX: an index of CPU torch wheels for a smaller image "
        "(default: the lock's CUDA wheels)",
    )
    parser.add_argument(
        "--ca_bundle",
        default=os.environ.get("PIP_CERT", ""),
        help="CA bundle pip in the build trusts, given as the build secret pip_ca (default: "
        "PIP_CERT, what pip trusts here: a proxy that re-signs HTTPS works in the build too)",
    )
    parser.add_argument("--tag", default="localhost/a2i:check", help="name of the built image")
    parser.add_argument(
        "--log", type=Path, default=Path("runs/docker_check.log"), help="the full output"
    )
    args = parser.parse_args(argv)
    base = args.base or LOCAL_BASE
    making_base = args.base is None and (args.rebuild_base or not has_image(LOCAL_BASE))
    reason = missing_tools(making_base)
    if reason is not None:
        say(f"skipped: {reason}")
        return 0
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.write_text("")
    say(f"full output in {args.log}")
    try:
        if making_base:
            say(f"base: debootstrap bookworm minbase ({BASE_PACKAGES}) → {LOCAL_BASE} ...")
            say(f"base: made in {make_base(args.mirror, args.log):.0f} s")
        else:
            say(f"base: {base}")
        pull = "--pull=never" if base == LOCAL_BASE else "--pull=missing"
        build = ["buildah", "build", "--isolation", "chroot", pull]
        build += ["--build-arg", f"BASE={base}", "--build-arg", f"TORCH_INDEX={args.torch_index}"]
        if args.ca_bundle:
            build += ["--secret", f"id=pip_ca,src={args.ca_bundle}"]
            say(f"pip in the build trusts {args.ca_bundle} (build secret pip_ca)")
        build += ["-t", args.tag, "-f", str(ROOT / "docker/Dockerfile"), str(ROOT)]
        torch = f"torch from {args.torch_index}" if args.torch_index else "the lock's CUDA wheels"
        say(f"building {args.tag} ({torch}) ...")
        start = time.perf_counter()
        run(build, "buildah build", args.log)
        built = time.perf_counter() - start
        size = image_size(args.tag)
        say(f"built in {built / 60:.1f} min; image size {size}")
        usage, images, seconds = smoke_test(args.tag, args.log)
        say(f"a2i --help in the image: {usage}")
        say(
            f"a2i world + a2i predict (tiny/sound2vision_gan_shipped) in the image: {images} "
            f"images from {SMOKE_CLIPS} clips in {seconds:.0f} s"
        )
        if images == 0:
            raise CheckFailed("a2i predict in the image wrote no image")
    except CheckFailed as failure:
        say(f"FAILED: {failure}")
        return 1
    say(f"passed (remove the image with: buildah rmi {args.tag})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
