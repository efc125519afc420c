"""A 2-process DDP fit and a bf16-mixed fit on CPU, through the real CLI in a subprocess.

``strategy=ddp`` relaunches ``sys.argv``, so it runs as its own ``a2i`` process, not inside pytest.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[1] / "conf" / "sound2vision_gan.yaml"

pytestmark = pytest.mark.slow  # DDP and bf16 fits in subprocesses


def run_cli(tmp_path, *extra):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "-m",
        "a2i",
        "fit",
        "--config",
        str(CONF),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        *extra,
    ]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.xdist_group("subprocess")
def test_two_process_ddp_fit_on_cpu(tmp_path):
    done = run_cli(tmp_path, "--trainer.strategy", "ddp", "--trainer.devices", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.rglob("*.ckpt"))


@pytest.mark.xdist_group("subprocess")
def test_bf16_mixed_fit_on_cpu(tmp_path):
    done = run_cli(tmp_path, "--trainer.precision", "bf16-mixed")
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.rglob("*.ckpt"))


@pytest.mark.xdist_group("subprocess")
def test_two_process_ddp_fit_streams_prepared_video_shards(tmp_path):
    """Both ranks stream the same number of batches from WebDataset shards (no DDP hang)."""
    from video_fixtures import write_vggsound_fixture

    from a2i.data.vggsound import VGGSoundDataModule

    write_vggsound_fixture(tmp_path / "raw")
    data_conf = CONF.parent / "data" / "vggsound.yaml"
    prepared = tmp_path / "prepared"
    VGGSoundDataModule(
        str(tmp_path / "raw"),
        prepared=str(prepared),
        val_fraction=0.25,
        shard_size=4,
        frame_size=64,
    ).prepare_data(progress=False)
    done = run_cli(
        tmp_path,
        "--config",
        str(data_conf),
        "--data.init_args.root",
        str(tmp_path / "raw"),
        "--data.init_args.prepared",
        str(prepared),
        "--data.init_args.stream_train",
        "true",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.max_steps",
        "-1",
        "--trainer.max_epochs",
        "2",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.rglob("last.ckpt"))
