"""Tiny runs trained once by the real CLI, and test sounds, shared by the pipeline tests."""

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory, fit_run):
    return fit_run("sound2vision_gan.yaml", tmp_path_factory.mktemp("gan"))


@pytest.fixture(scope="session")
def ldm_run(tmp_path_factory, fit_run):
    return fit_run("sound2vision_ldm.yaml", tmp_path_factory.mktemp("ldm"))


@pytest.fixture(scope="session")
def audiotoken_run(tmp_path_factory, fit_run):
    return fit_run("audiotoken.yaml", tmp_path_factory.mktemp("audiotoken"))


@pytest.fixture(scope="session")
def sounds(tmp_path_factory):
    """Five tones of 0.3 to 1.9 s (shorter and longer than the 1 s clips) and a broken wav."""
    folder = tmp_path_factory.mktemp("sounds")
    paths = []
    for i in range(5):
        t = np.arange(round((0.3 + 0.4 * i) * 16000)) / 16000
        paths.append(folder / f"tone{i}.wav")
        sf.write(
            paths[-1], (0.3 * np.sin(2 * np.pi * 220.0 * (i + 1) * t)).astype(np.float32), 16000
        )
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt ")
    return paths, folder / "broken.wav"
