"""``a2i sonify`` end to end: shards, filter, re-rendering from recipes, refusal, resume after SIGKILL."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile as sf
import torch
from video_fixtures import kill_at_second_shard

from a2i.build.sonify.build import read_recipes, render_sample
from a2i.build.sonify.retrieval import IndexSettings
from a2i.cli import main as a2i_main
from a2i.commands.sonify import build_datamodule, main
from a2i.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sonified(sonify_inputs, make_config, tmp_path_factory):
    """One uninterrupted run; its exit status and console output."""
    out = tmp_path_factory.mktemp("runs") / "complete"
    config = make_config(sonify_inputs, out)
    printed = io.StringIO()
    with pytest.raises(SystemExit) as info, contextlib.redirect_stdout(printed):
        main(["--config", str(config)])
    return out, config, info.value.code, printed.getvalue()


def test_sonify_writes_shards_filters_non_sonic_images_and_names_bad_pool_files(sonified, capsys):
    out, config, code, printed = sonified
    assert code == 1  # the broken pool file is reported after everything else was done
    assert "a2i sonify: test 1, train 5, val 2 samples in " in printed
    assert "4 filtered (non-sonic caption or no sounding concept), 0 failed" in printed
    assert "a2i sonify: retrieval: " in printed and "exact FAISS index; see " in printed
    problems = (out / "problems.log").read_text()
    assert problems.count("non-sonic caption ('logo')") == 2  # sa_3, sa_9
    assert problems.count("non-sonic caption ('sign')") == 2  # sa_5, sa_11
    assert "broken.wav" in (out / "pool" / "problems.log").read_text()
    summary = json.loads((out / "prepared.json").read_text())
    assert sum(summary["samples"].values()) == 8 and summary["failed"] == 0
    search = json.loads((out / "retrieval.json").read_text())  # how the pool was searched
    assert search["index"] == "exact" and search["recall_at_k"] == 1.0 and search["queries"] > 0
    datamodule = build_datamodule(["--config", str(config)])
    assert datamodule.is_prepared()
    with pytest.raises(SystemExit) as again:  # complete: nothing to do but name the failures
        main(["--config", str(config)])
    said = capsys.readouterr()
    assert again.value.code == 1 and "already complete" in said.out
    assert "broken.wav" in said.err
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["audio"].shape == (2, 80000) and batch["image"].shape == (2, 3, 16, 16)
    # tiny AST: 100 patches + its two summary tokens, cached as §4.3 does
    assert batch["features/audio_tokens"].shape == (2, 102, 64)
    assert all(batch["caption"])


def test_every_mixture_re_renders_from_its_recipe_without_retrieval(sonified):
    out, config, _, _ = sonified
    datamodule = build_datamodule(["--config", str(config)])
    reader = datamodule.pool_reader()
    samples = read_recipes(out / "recipes.jsonl", datamodule.image_items)
    records = {}
    for tar in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                key, _, kind = member.name.partition(".")
                records.setdefault(key, {})[kind] = archive.extractfile(member).read()
    assert sorted(records) == sorted(s.key for s in samples)
    for sample in samples:
        stored = json.loads(records[sample.key]["json"])
        audio, rate = sf.read(io.BytesIO(records[sample.key]["flac"]), dtype="float32")
        again = render_sample(sample, reader, datamodule.settings)
        assert again.meta["recipe"] == stored["meta"]["recipe"]
        assert rate == 16000
        assert torch.allclose(again.audio, torch.from_numpy(audio), atol=1 / 32768 + 1e-6)
        for source in stored["meta"]["recipe"]["sources"]:
            assert source["score"] >= source["threshold"] and source["candidates"] >= 1
            assert -25.0 <= source["lufs"] <= -21.0


def test_the_faiss_index_is_chosen_on_the_command_line(sonify_inputs, make_config, tmp_path):
    config = make_config(sonify_inputs, tmp_path / "out")
    flags = ["--data.init_args.retrieval_index", "ivf", "--data.init_args.retrieval_nprobe", "8"]
    datamodule = build_datamodule(["--config", str(config), *flags])
    assert datamodule.retrieval_index == IndexSettings(kind="ivf", nprobe=8)


def test_a_changed_recipe_is_refused_with_the_difference_named(
    sonify_inputs, sonified, make_config
):
    out, _, _, _ = sonified
    changed = make_config(sonify_inputs, out, config_name="changed", top_k=3)
    with pytest.raises(ConfigError, match="top_k"):
        main(["--config", str(changed)])


def test_empty_missing_and_unreadable_pool_files_are_named_and_fail_the_run(
    sonify_inputs, make_config, tmp_path, capsys
):
    inputs = tmp_path / "inputs"
    shutil.copytree(sonify_inputs, inputs)
    pool = inputs / "pool"
    (pool / "broken.wav").unlink()  # (undecodable: named already) only the unusable ones are left
    (pool / "empty.wav").write_bytes(b"")
    (pool / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    unusable = {"empty.wav": "empty (0 bytes)", "gone.wav": "broken link"}
    if os.geteuid() != 0:  # (root reads any file)
        shutil.copy(pool / "rain" / "rain.wav", pool / "locked.wav")
        (pool / "locked.wav").chmod(0)
        unusable["locked.wav"] = "permission denied"
    with pytest.raises(SystemExit) as info:
        main(["--config", str(make_config(inputs, tmp_path / "out"))])
    assert info.value.code == 1
    err = capsys.readouterr().err
    for name, problem in unusable.items():
        assert f"  unusable pool file: {pool / name}: {problem}" in err
    assert f"{len(unusable)} pool file(s) missing, empty or unreadable (named above)" in err


@pytest.mark.slow
def test_resume_after_sigkill_gives_identical_shards(
    sonify_inputs, sonified, make_config, tmp_path
):
    complete, _, _, _ = sonified
    out = tmp_path / "killed"
    config = make_config(sonify_inputs, out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    script = kill_at_second_shard("a2i.build.sonify.build", "a2i.commands.sonify")
    dying = [sys.executable, "-c", script, "--config", str(config)]
    run = subprocess.run(dying, env=env, stderr=subprocess.DEVNULL)
    assert run.returncode == -signal.SIGKILL
    shards = out / "shards"
    assert len(list(shards.glob("*.tar"))) == 1 and len(list(shards.glob(".*.tmp"))) == 2
    with pytest.raises(SystemExit):
        main(["--config", str(config)])
    names = sorted(p.name for p in (complete / "shards").iterdir())
    assert names == sorted(p.name for p in shards.iterdir())
    for name in names:
        assert (shards / name).read_bytes() == (complete / "shards" / name).read_bytes()
    for name in ("recipes.jsonl", "problems.log", "concepts.jsonl"):
        assert (out / name).read_text() == (complete / name).read_text()


@pytest.mark.slow
def test_a_method_trains_on_the_sonified_images_through_the_cli(sonified, tmp_path):
    _, config, _, _ = sonified
    a2i_main(
        ["fit", "--config", str(ROOT / "configs" / "tiny" / "sound2vision_ldm.yaml"), "--config", str(config),
         "--data.init_args.clip_seconds", "4.0", "--data.init_args.image_size", "32",
         "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
         "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]
    )  # fmt: skip
    assert list((tmp_path / "runs").rglob("last.ckpt"))


@pytest.mark.parametrize("command", ["fit", "sonify"])
def test_the_paper_data_config_stops_with_the_missing_checkpoint_error(
    command, capsys, tmp_path, monkeypatch
):
    config = ROOT / "configs" / "data" / "sonified_sam.yaml"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("A2I_CACHE", str(tmp_path / "cache"))
    args = [command, "--config", str(config)]
    if command == "fit":
        method = ROOT / "configs" / "tiny" / "sound2vision_ldm.yaml"
        args = ["fit", "--config", str(method), "--config", str(config)]
    with pytest.raises(SystemExit) as info:
        a2i_main(args)
    assert info.value.code == 2
    error = capsys.readouterr().err
    assert "not available offline" in error and "hf download" in error


def test_remote_code_needs_the_flag_typed_for_the_run(sonify_inputs, make_config, tmp_path, capsys):
    """A config naming CogVLM stops before any image is described, naming the opt-in flag."""
    marker = tmp_path / "remote_code_ran"
    model = tmp_path / "cogvlm"
    model.mkdir()
    (model / "config.json").write_text('{"auto_map": {"AutoModelForCausalLM": "modeling.Model"}}')
    (model / "modeling.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    cogvlm = {
        "class_path": "a2i.build.sonify.vlm.VLMConceptSource",
        "init_args": {"model": str(model), "family": "cogvlm", "tokenizer": str(model)},
    }
    captions = {
        "class_path": "a2i.build.sonify.concepts.CaptionConcepts",
        "init_args": {"captions": str(sonify_inputs / "captions.json")},
    }
    out = tmp_path / "sonified"
    config = make_config(sonify_inputs, out, concepts=[captions, cogvlm])
    with pytest.raises(SystemExit) as info:
        a2i_main(["sonify", "--config", str(config)])
    assert info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("a2i: error: concept source 'cogvlm' would run the Python code")
    assert error.strip().endswith(
        "add --data.init_args.trust_remote_code true (a2i sonify, a2i fit)"
    )
    assert not (out / "concepts.jsonl").exists() and not marker.exists()
    allowed = ["--config", str(config), "--data.init_args.trust_remote_code", "true"]
    assert [s.trust_remote_code for s in build_datamodule(allowed).concept_sources] == [True, True]
    assert not marker.exists()  # (building the sources loads no model)
