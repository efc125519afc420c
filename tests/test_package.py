"""The wheel works on its own: installed into a fresh venv, ``a2i world`` and a fit from a config
shipped inside it run from a folder that is not the repository.

The venv borrows this environment's third-party packages (a ``.pth`` line: no download) but not
its editable a2i, so every a2i file comes from the wheel.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("subprocess")]  # wheel builds


def run(args: list, cwd: Path) -> str:
    """Run ``args`` without the caller's PYTHONPATH (a checkout on it hides the installed wheel)."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source (the build leaves no files in the repository)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "configs", source / "configs")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "a2i", source / "a2i", symlinks=True, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    run([*pip, "-w", out, source], cwd=source)
    (built,) = out.glob("a2i-*.whl")
    return built


def test_the_wheel_ships_the_configs_and_assets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for config in (ROOT / "configs").rglob("*.yaml"):
        assert f"a2i/configs/{config.relative_to(ROOT / 'configs').as_posix()}" in names
    assert "a2i/assets/tiny/gan/generator.safetensors" in names
    assert "a2i/commands/world.py" in names


def test_an_installed_wheel_runs_world_and_a_fit_from_a_shipped_config(wheel, tmp_path):
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
    )
    (Path(site.strip()) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert run([env / "bin" / "a2i", "--version"], work).startswith("a2i ")  # its entry point
    world = "'world', '--out', 'world', '--train', '2', '--val', '0', '--test', '0'"
    fit = (
        "'fit', '--config', 'tiny/sound2vision_gan', '--trainer.max_steps', '2', "
        "'--trainer.limit_val_batches', '0', '--trainer.enable_progress_bar', 'false', "
        "'--data.init_args.batch_size', '4', '--trainer.logger.init_args.save_dir', 'logs'"
    )
    code = (  # one process: Lightning is imported once
        "import a2i; print(a2i.__file__)\n"
        "from a2i.__main__ import main\n"
        f"main([{world}])\n"
        f"main([{fit}])\n"
    )
    out = run([python, "-c", code], cwd=work)
    assert out.startswith(str(env)), out  # the installed copy, not the repository's
    assert "wrote 2 clips" in out and (work / "world" / "manifest.jsonl").is_file()
    assert list((work / "logs").rglob("last.ckpt"))
