"""The real ``a2i`` command on tiny configs: help, config checks, fit → test → predict."""

import importlib
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import soundfile as sf
import torch
import yaml

from a2i.cli import A2ICLI, main
from a2i.commands import LIGHTNING_COMMANDS, TOOLS
from a2i.commands.catalog import DATAMODULE_BASE, METHOD_BASE, known_subclasses
from a2i.commands.console import quiet_expected_messages
from a2i.config_files import configs_root, resolve_config
from a2i.errors import ConfigError
from a2i.pipelines.writer import read_manifest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "tests" / "conf"


def exit_code(args):
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


def test_help_lists_every_command_with_its_line(capsys):
    assert exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    for name, line in {**LIGHTNING_COMMANDS, **TOOLS}.items():
        assert f"  {name} " in out and line.split()[0] in out
    assert exit_code(["--version"]) == 0
    assert capsys.readouterr().out.startswith("a2i 0.")


def test_help_lines_are_the_commands_own():
    assert set(LIGHTNING_COMMANDS) == set(A2ICLI.subcommands())
    for name, line in TOOLS.items():
        assert importlib.import_module(f"a2i.commands.{name}").HELP == line


def test_help_version_and_world_help_import_no_heavy_library():
    code = (
        "import sys\n"
        "from a2i.__main__ import main\n"
        "for args in (['--help'], ['--version'], ['world', '--help'], ['serve', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('torch', 'lightning', 'diffusers', 'transformers', 'open_clip', 'gradio')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stderr, done.stderr
    assert "usage: a2i world" in done.stdout and "usage: a2i serve" in done.stdout


def test_fit_help_lists_methods_datamodules_and_shipped_configs(capsys):
    assert exit_code(["fit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--config" in out
    assert "methods (--model.class_path): a2i.methods.audiotoken.AudioToken," in out
    assert "a2i.synth.datamodule.SyntheticWorldDataModule" in out
    assert "tiny/sound2vision_gan," in out


@pytest.mark.parametrize(("base", "module"), [(METHOD_BASE, "a2i.methods"), (DATAMODULE_BASE, "")])
def test_known_subclasses_are_real_subclasses(base, module):
    base_module, _, base_name = base.rpartition(".")
    base_class = getattr(importlib.import_module(base_module), base_name)
    found = known_subclasses(base)
    assert found and all(name.startswith(module) for name in found)
    for name in found:
        module_name, _, class_name = name.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module_name), class_name), base_class)


def test_shipped_configs_by_name_scheme_or_repository_path(tmp_path):
    shipped = str(configs_root() / "tiny" / "sound2vision_gan.yaml")
    for name in (
        "tiny/sound2vision_gan",
        "tiny/sound2vision_gan.yaml",
        "a2i://configs/tiny/sound2vision_gan.yaml",
    ):
        assert resolve_config(name) == shipped
    local = tmp_path / "mine.yaml"
    local.write_text("trainer: {max_steps: 1}\n")
    assert resolve_config(str(local)) == str(local)
    with pytest.raises(ConfigError, match="did you mean tiny/sound2vision_gan"):
        resolve_config("tiny/sound2vision_gn")


def test_a_shipped_config_by_name_through_the_command(capsys):
    assert exit_code(["fit", "--print_config", "--config", "tiny/sound2vision_gan"]) == 0
    assert "a2i.methods.sound2vision.Sound2Vision" in capsys.readouterr().out
    assert exit_code(["fit", "--config", "tiny/sound2vision_gn"]) == 2
    assert "did you mean tiny/sound2vision_gan" in capsys.readouterr().err


def test_expected_messages_are_dropped_and_others_kept(caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # (pytest's configuration ignores UserWarning)
        quiet_expected_messages()
        expected = "Found 204 module(s) in eval mode at the start of training. This may lead"
        warnings.warn(expected, UserWarning, stacklevel=1)
        warnings.warn("a real problem", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a real problem"]
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        logger.info("💡 Tip: For seamless cloud logging and experiment tracking, try litlogger")
        logger.info("Restoring states from the checkpoint path at x.ckpt")
    assert [r.getMessage() for r in caplog.records] == [
        "Restoring states from the checkpoint path at x.ckpt"
    ]


def test_running_a_command_in_process_from_another_program_is_quiet(monkeypatch, capsys):
    # make demo and the benchmarks call main(args) while their own flags are on sys.argv
    monkeypatch.setattr(sys, "argv", ["demo", "--out", "runs/x"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert exit_code(["fit", "--print_config", "--config", "tiny/sound2vision_gan"]) == 0
    assert not [w for w in caught if "LightningCLI's args" in str(w.message)]


@pytest.mark.parametrize(
    ("command", "dropped"), [("predict", True), ("embed", True), ("fit", False)]
)
def test_loop_limits_are_restated_only_where_a_loop_runs(caplog, command, dropped):
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    line = "`Trainer(limit_val_batches=1)` was configured so 1 batch will be used."
    try:
        quiet_expected_messages(command)
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info(line)
            logger.info("Seed set to 0")
    finally:
        quiet_expected_messages()
    assert [r.getMessage() for r in caplog.records] == ([] if dropped else [line])


@pytest.mark.parametrize("name", ["sound2vision_ldm.yaml", "sound2vision_gan.yaml"])
def test_print_config_of_paper_configs(name, capsys):
    assert exit_code(["fit", "--print_config", "--config", str(ROOT / "configs" / name)]) == 0
    assert "a2i.methods.sound2vision.Sound2Vision" in capsys.readouterr().out


def test_mistyped_key_is_named(capsys):
    args = ["fit", "--config", str(CONF / "sound2vision_gan.yaml"), "--model.init_args.los", "l2"]
    assert exit_code(args) != 0
    assert "los" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory, fit_run):
    run = fit_run("sound2vision_gan.yaml", tmp_path_factory.mktemp("run"))
    return run / "config.yaml", run / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_fit_saves_config_and_trainable_only_checkpoint(fitted_run):
    config, ckpt = fitted_run
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert any(k.startswith("audio_encoder.") for k in state)
    assert not any(k.startswith(("generator.", "image_encoder.")) for k in state)
    assert "Sound2Vision" in config.read_text()


def logged_scalars(folder: Path) -> dict[str, float]:
    """Last value of every scalar in the TensorBoard event files under ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars[tag] = accumulator.Scalars(tag)[-1].value
    return scalars


@pytest.mark.slow
def test_test_subcommand_evaluates_the_checkpoint(fitted_run, tmp_path):
    config, ckpt = fitted_run
    args = ["test", "--config", str(config), "--trainer.logger.init_args.save_dir"]
    main([*args, str(tmp_path / "trained"), "--ckpt_path", str(ckpt)])
    main([*args, str(tmp_path / "fresh")])  # the same seed-0 weights fit started from
    trained, fresh = logged_scalars(tmp_path / "trained"), logged_scalars(tmp_path / "fresh")
    assert {"test/loss", "test/retrieval_top1", "test/feature_distance"} <= set(trained)
    assert 0.0 <= trained["test/retrieval_top1"] <= 1.0
    assert torch.isfinite(torch.tensor(trained["test/loss"]))
    assert trained["test/loss"] != fresh["test/loss"]  # the checkpoint's weights were used


@pytest.mark.slow
def test_test_keeps_the_model_arguments_given_with_a_checkpoint(fitted_run, tmp_path):
    """Regression: Lightning parsed the checkpoint's hyper-parameters over the user's config."""
    config, ckpt = fitted_run
    out = tmp_path / "eval"
    main(
        ["test", "--config", str(config), "--ckpt_path", str(ckpt),
         "--model.init_args.temperature", "0.5", "--trainer.logger.init_args.save_dir", str(out)]
    )  # fmt: skip
    (saved,) = out.rglob("config.yaml")
    assert yaml.safe_load(saved.read_text())["model"]["init_args"]["temperature"] == 0.5


@pytest.mark.slow
def test_test_with_a_checkpoint_of_other_components_is_one_line(fitted_run, capsys):
    _, ckpt = fitted_run  # a GAN run
    args = ["test", "--config", str(CONF / "sound2vision_ldm.yaml"), "--ckpt_path", str(ckpt)]
    assert exit_code(args) == 2
    error = capsys.readouterr().err
    assert "trained with other components than the config builds: generator" in error


def write_inputs(folder: Path) -> None:
    rng = torch.Generator().manual_seed(0)
    (folder / "sub").mkdir(parents=True)
    for rel in ("a.wav", "sub/b.flac"):
        sf.write(folder / rel, (0.1 * torch.randn(8000, generator=rng)).numpy(), 16000)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("this is not audio")
    good = (folder / "a.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(good[:30])


@pytest.mark.slow
def test_predict_on_folder_reports_bad_inputs_and_never_overwrites(fitted_run, tmp_path, capsys):
    config, ckpt = fitted_run
    inputs, out = tmp_path / "in", tmp_path / "out"
    write_inputs(inputs)
    args = [
        "predict",
        "--config",
        str(config),
        "--ckpt_path",
        str(ckpt),
        "--audio_dir",
        str(inputs),
        "--output_dir",
        str(out),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "logs"),
    ]
    assert exit_code(args) == 1
    _, rows = read_manifest(out)
    status = {r["input"]: r["status"] for r in rows}
    assert status == {
        "a.wav": "ok",
        "sub/b.flac": "ok",
        "empty.wav": "failed",
        "notes.wav": "failed",
        "truncated.wav": "failed",
    }
    assert all(r["error"] for r in rows if r["status"] == "failed")
    assert (
        (out / "a.wav.png").exists()
        and (out / "sub" / "b.flac.png").exists()
        and (out / "grid.png").exists()
    )
    assert "empty.wav" in capsys.readouterr().err

    before = (out / "a.wav.png").stat().st_mtime_ns
    (
        (inputs / "empty.wav").unlink(),
        (inputs / "notes.wav").unlink(),
        (inputs / "truncated.wav").unlink(),
    )
    main(args)  # all inputs fine now: exit status 0, finished inputs not recomputed
    assert (out / "a.wav.png").stat().st_mtime_ns == before
    assert "0 images written, 2 inputs already done" in capsys.readouterr().out


def test_world_subcommand_materialises_a_world_the_manifest_datamodule_reads(tmp_path, capsys):
    from a2i.data.manifest import ManifestDataModule

    out = tmp_path / "world"
    main(
        [
            "world",
            "--out",
            str(out),
            "--train",
            "6",
            "--val",
            "2",
            "--test",
            "2",
            "--image_size",
            "32",
        ]
    )
    assert "wrote 10 clips" in capsys.readouterr().out
    data = ManifestDataModule(root=str(out), batch_size=3, clip_seconds=1.0, image_size=32)
    batch = next(iter(data.train_dataloader()))
    assert batch["audio"].shape == (3, 16000) and batch["image"].shape == (3, 3, 32, 32)
    assert exit_code(["world", "--out", str(out)]) == 2  # never writes into a non-empty folder


@pytest.mark.slow
def test_data_delivering_other_clips_than_the_encoder_expects_is_refused(tmp_path, capsys):
    args = [
        "fit",
        "--config",
        str(CONF / "sound2vision_gan.yaml"),
        "--data.init_args.clip_seconds",
        "2.0",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    assert exit_code(args) == 2
    assert "data.init_args.clip_seconds is 2.0 but the model's audio encoder expects 1.0" in (
        capsys.readouterr().err
    )


def test_a_config_mistake_is_one_line_with_a_hint(capsys):
    args = ["fit", "--config", str(CONF / "sound2vision_gan.yaml"), "--model.init_args.los", "l2"]
    assert exit_code(args) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        "a2i: error: unknown key 'model.init_args.los' of a2i.methods.sound2vision.Sound2Vision "
        "(did you mean 'loss'?)"
    )
    assert "usage:" not in err and len(err.splitlines()) == 2


def test_test_with_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    missing = tmp_path / "gone.ckpt"
    args = ["test", "--config", str(CONF / "sound2vision_gan.yaml"), "--ckpt_path", str(missing)]
    assert exit_code(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"a2i: error: --ckpt_path '{missing}' does not exist (or is not a file)"
    )
