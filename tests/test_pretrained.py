"""One resolver for "these weights" (offline, one clear error) and one way to export them."""

import socket
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from torch import nn
from transformers import AutoConfig

from a2i.errors import CheckpointNotFoundError, OutputExistsError
from a2i.pretrained import (
    ASSETS_DIR,
    export_parts,
    files_in,
    hub_offline,
    resolve_weights,
    save_module,
)


def test_local_file_as_given_loads_its_tensors(tmp_path):
    module = nn.Linear(3, 2)
    save_module(module, tmp_path / "linear.safetensors", metadata={"note": "x"})
    weights = resolve_weights(str(tmp_path / "linear.safetensors"), "Linear.pretrained")
    assert weights.path == tmp_path / "linear.safetensors" and weights.is_a2i_file
    assert weights.state_dict().keys() == module.state_dict().keys()
    assert torch.equal(weights.state_dict()["weight"], module.weight.detach())
    assert weights.metadata() == {"note": "x"}
    assert weights.holds_only("") and not weights.holds_only("model.")


def test_tensors_only_pt_file_loads_but_is_not_an_a2i_file(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "w.pt")
    weights = resolve_weights(str(tmp_path / "w.pt"), "X.pretrained")
    assert not weights.is_a2i_file
    assert torch.equal(weights.state_dict()["weight"], torch.ones(2))


def test_shipped_asset_and_cache_are_found_by_name(tmp_path, monkeypatch):
    asset = resolve_weights("tiny/gan/generator.safetensors", "BigGANGenerator.pretrained")
    assert asset.path == ASSETS_DIR / "tiny" / "gan" / "generator.safetensors"
    monkeypatch.setenv("A2I_CACHE", str(tmp_path))
    save_module(nn.Linear(1, 1), tmp_path / "cached.safetensors")
    assert resolve_weights("cached.safetensors", "X.pretrained").path == (
        tmp_path / "cached.safetensors"
    )
    assert resolve_weights(None, "X.pretrained") is None  # no weights: the preset's init


@pytest.mark.parametrize("spec", ["missing.safetensors", "~/nowhere/x.pt", "./stage1"])
def test_a_missing_file_is_one_error_naming_it_and_the_field(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("A2I_CACHE", str(tmp_path))
    with pytest.raises(CheckpointNotFoundError) as caught:
        resolve_weights(spec, "TinyImageEncoder.pretrained", download="wget example.org/w")
    assert caught.value.checkpoint == spec and caught.value.field == "TinyImageEncoder.pretrained"
    assert "wget example.org/w" in str(caught.value)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Online as far as the environment says, with an empty hub cache; record any connection."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("the test forbids network access")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_an_uncached_hub_id_fails_without_trying_the_network(no_network):
    weights = resolve_weights(
        "MIT/ast-finetuned-audioset-10-10-0.4593", "ASTAudioEncoder.pretrained"
    )
    assert weights.path is None  # a hub id: only the library's cache can provide it
    with pytest.raises(CheckpointNotFoundError) as caught:
        weights.load(AutoConfig.from_pretrained, library="transformers", download="hf download x")
    assert caught.value.field == "ASTAudioEncoder.pretrained"
    assert "hf download x" in str(caught.value)
    assert no_network == []
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False  # restored after the load


def test_hub_offline_restores_the_flag_after_an_error(no_network):
    with pytest.raises(RuntimeError), hub_offline():
        assert huggingface_hub.constants.HF_HUB_OFFLINE is True
        raise RuntimeError
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False


def test_a_loading_bug_in_present_files_is_not_reported_as_missing(tmp_path):
    save_module(nn.Linear(1, 1), tmp_path / "w.safetensors")
    weights = resolve_weights(str(tmp_path / "w.safetensors"), "X.pretrained")

    def broken(location: str) -> None:
        raise ValueError(f"shape mismatch in {location}")

    with pytest.raises(ValueError, match="shape mismatch"):
        weights.load(broken, library="test")


def test_export_writes_every_part_once_in_the_asked_type(tmp_path):
    parts = {"encoder": nn.Linear(2, 2), "head": {"w": torch.ones(3, dtype=torch.float64)}}
    export_parts(files_in(tmp_path, parts), dtype="float16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder.safetensors", "head.safetensors"]
    head = resolve_weights(str(tmp_path / "head.safetensors"), "X").state_dict()
    assert head["w"].dtype == torch.float16
    assert files_in(None, parts) == {}  # no export_dir: nothing to export


def test_export_refuses_before_writing_any_part(tmp_path):
    (tmp_path / "head.safetensors").write_bytes(b"old")
    parts = {"encoder": nn.Linear(2, 2), "head": nn.Linear(2, 1)}
    with pytest.raises(OutputExistsError, match="overwrite_export") as caught:
        export_parts(files_in(tmp_path, parts))
    assert caught.value.paths == [str(tmp_path / "head.safetensors")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.safetensors"]
    assert (tmp_path / "head.safetensors").read_bytes() == b"old"
    export_parts(files_in(tmp_path, parts), overwrite=True)
    assert resolve_weights(str(tmp_path / "head.safetensors"), "X").state_dict().keys() == {
        "weight",
        "bias",
    }


@pytest.mark.parametrize(
    "config", ["sound2vision_ldm.yaml", "sound2vision_gan.yaml", "audiotoken.yaml"]
)
def test_paper_configs_stop_with_the_missing_checkpoint_error_and_never_connect(
    no_network, config, capsys
):
    """Issue 13 item 11: no hub retries (31 s before), one line naming the checkpoint."""
    from a2i.cli import main

    root = Path(__file__).resolve().parents[1]
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(root / "configs" / config), "--trainer.fast_dev_run", "true"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("a2i: error: checkpoint '") and "is not available offline" in err
    assert no_network == []
