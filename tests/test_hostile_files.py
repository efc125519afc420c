"""Files an attacker would hand over: crafted checkpoints, pickles, configs that are not YAML.

A checkpoint's hyper-parameters never configure a run (not even ``fit``'s resume), a pickle never
runs, and each refusal is one ``a2i: error:`` line with exit status 2 (issue 25, items 5 and 6).
"""

import os
import shlex
import sys
from pathlib import Path

import pytest
import torch

from a2i.cli import main
from a2i.errors import WeightsFileError
from a2i.pipelines.loading import read_checkpoint
from a2i.pretrained import load_tensors, resolve_weights

CONF = Path(__file__).resolve().parent / "conf"
GAN = str(CONF / "sound2vision_gan.yaml")


class Payload:
    """Pickles as a call to ``os.system``: what a booby-trapped checkpoint holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def booby_trapped(path: Path, marker: Path) -> Path:
    """A Lightning-looking checkpoint whose unpickling would create ``marker``."""
    torch.save({"state_dict": {}, "hyper_parameters": {"note": Payload(marker)}}, path)
    return path


def one_error_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run ``a2i ARGS``; its exit status must be 2 and its stderr one a2i line."""
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    (line,) = [line for line in err.splitlines() if line.startswith("a2i: error:")]
    assert "Traceback" not in err and "weights_only" not in err, err
    return line


def test_a_pickled_checkpoint_never_runs_and_is_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    ckpt = booby_trapped(tmp_path / "last.ckpt", marker)
    for command in ("fit", "test"):
        logs = ["--trainer.logger.init_args.save_dir", str(tmp_path / command)]
        line = one_error_line(capsys, [command, "--config", GAN, "--ckpt_path", str(ckpt), *logs])
        assert line == (
            f"a2i: error: '{ckpt}' is not a tensors-only checkpoint (it would import "
            f"{os.system.__module__}.system); a2i reads tensors and plain containers only and "
            "never unpickles code"
        )
    assert not marker.exists()


def test_a_pickled_pretrained_file_never_runs_and_is_one_line(tmp_path, capsys):
    marker = tmp_path / "pwned"
    weights = booby_trapped(tmp_path / "encoder.pt", marker)
    pretrained = ["--model.init_args.audio_encoder.init_args.pretrained", str(weights)]
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    line = one_error_line(capsys, ["fit", "--config", GAN, *pretrained, *logs])
    assert f"'{weights}' (given by SpectrogramResNet.pretrained) is not a tensors-only" in line
    assert "never unpickles code" in line
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a torch file (the file is empty)"),
        (b"hello, I am text", "not a torch file (KeyError)"),
        (bytes(range(7, 256)), "is not a tensors-only checkpoint (not torch's format"),
    ],
    ids=["empty", "text", "binary"],
)
def test_files_that_are_not_torch_files_are_named_with_their_reason(tmp_path, content, reason):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=r"weights\.pt") as info:
        resolve_weights(str(path), "Encoder.pretrained").state_dict()
    assert reason in str(info.value) and "weights_only" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_a_cut_checkpoint_and_one_holding_no_dict_are_refused(tmp_path):
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, whole)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(WeightsFileError, match=r"not a torch file .*zip archive"):
        load_tensors(cut)
    listed = tmp_path / "list.ckpt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(WeightsFileError, match="holds a list, not a Lightning checkpoint"):
        read_checkpoint(listed)


def edited_hyper_parameters(edit: str, module: str) -> dict:
    """Hyper-parameters naming a class of ``module``: as the method, or as its generator."""
    if edit == "method":
        return {"_class_path": f"{module}.Method"}
    return {
        "_class_path": "a2i.methods.sound2vision.Sound2Vision",
        "generator": {"class_path": f"{module}.Generator", "init_args": {}},
    }


@pytest.mark.parametrize(
    ("edit", "refusal"),
    [
        ("method", "was written by {}.Method, but the config builds"),
        ("generator", "trained with other components than the config builds: generator = {}."),
    ],
)
def test_a_class_path_edited_into_a_checkpoint_imports_nothing(
    edit, refusal, tmp_path, capsys, monkeypatch
):
    """Lightning parsed the checkpoint's hyper-parameters as a config: its class paths imported."""
    module = f"a2i_import_probe_{edit}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": edited_hyper_parameters(edit, module)}, ckpt)
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path / "logs")]
    line = one_error_line(capsys, ["fit", "--config", GAN, "--ckpt_path", str(ckpt), *logs])
    assert not marker.exists() and module not in sys.modules
    assert refusal.format(module) in line


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory, fit_run) -> Path:
    """``last.ckpt`` of a GAN run stopped after 2 of its steps."""
    return fit_run("sound2vision_gan.yaml", tmp_path_factory.mktemp("run")) / "checkpoints"


def adam_steps(checkpoint: dict) -> set[float]:
    return {float(state["step"]) for state in checkpoint["optimizer_states"][0]["state"].values()}


@pytest.mark.slow
def test_fit_resumes_with_the_config_not_the_checkpoints_hyper_parameters(two_steps, tmp_path):
    """A checkpoint edited to export over a file outside the run changes nothing; resume works."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "audio_encoder.safetensors").write_text("the user's file")
    crafted = torch.load(two_steps / "last.ckpt", weights_only=True)
    assert crafted["global_step"] == 2 and adam_steps(crafted) == {2.0}
    crafted["hyper_parameters"].update(export_dir=str(outside), overwrite_export=True)
    torch.save(crafted, tmp_path / "crafted.ckpt")
    main(
        ["fit", "--config", GAN, "--ckpt_path", str(tmp_path / "crafted.ckpt"),
         "--trainer.max_steps", "3", "--trainer.logger.init_args.save_dir", str(tmp_path / "run")]
    )  # fmt: skip
    assert [p.name for p in outside.iterdir()] == ["audio_encoder.safetensors"]
    assert (outside / "audio_encoder.safetensors").read_text() == "the user's file"
    (last,) = (tmp_path / "run").rglob("last.ckpt")
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == 3 and adam_steps(resumed) == {3.0}  # one step more
    assert resumed["hyper_parameters"]["export_dir"] is None  # the config's


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"- data\n- model\n", "holds a list, not a mapping of config sections"),
        (b"42\n", "holds a number, not a mapping of config sections"),
        (b"", "holds nothing, not a mapping of config sections"),
        (bytes(range(128, 256)), "is not a text file (not UTF-8)"),
        (b"data: [1,\n", "is not valid YAML (expected the node content"),
        (b"a: 1\n\x00", "is not valid YAML (special characters are not allowed)"),
    ],
    ids=["list", "scalar", "empty", "binary", "cut", "nul"],
)
@pytest.mark.parametrize("command", ["prepare", "sonify", "fit"])
def test_a_config_that_is_not_a_yaml_mapping_is_one_line(
    command, content, reason, tmp_path, capsys
):
    config = tmp_path / "config.yaml"
    config.write_bytes(content)
    line = one_error_line(capsys, [command, "--config", str(config)])
    assert line.startswith(f"a2i: error: --config '{config}' {reason}")


def test_a_config_that_would_construct_python_objects_constructs_none(tmp_path, capsys):
    marker = tmp_path / "pwned"
    config = tmp_path / "config.yaml"
    command = shlex.quote(f"touch {marker}")
    config.write_text(f"data: !!python/object/apply:os.system [{command}]\n")
    line = one_error_line(capsys, ["prepare", "--config", str(config)])
    assert "is not valid YAML (could not determine a constructor" in line
    assert not marker.exists()
