"""Every shipped config parses against the real class signatures (litgpt's config-hub test)."""

from pathlib import Path

import pytest

from a2i.cli import main

ROOT = Path(__file__).resolve().parents[1]
EVAL_CONFIGS = sorted((ROOT / "configs" / "eval").glob("*.yaml"))
DATA_CONFIGS = sorted((ROOT / "configs" / "data").glob("*.yaml"))
CONFIGS = sorted(
    set((ROOT / "configs").rglob("*.yaml")) - set(EVAL_CONFIGS) - set(DATA_CONFIGS)
) + sorted((ROOT / "tests" / "conf").glob("*.yaml"))
METHOD_FOR_EVAL = ROOT / "configs" / "tiny" / "sound2vision_ldm.yaml"


def printed_config(capsys: pytest.CaptureFixture[str], command: str, *args: str) -> str:
    """What ``a2i COMMAND --print_config ARGS`` prints; a parse error fails with a2i's line."""
    with pytest.raises(SystemExit) as info:
        main([command, "--print_config", *args])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    return captured.out


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_parses(config, capsys):
    assert "class_path" in printed_config(capsys, "fit", "--config", str(config))


@pytest.mark.parametrize("config", EVAL_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_evaluation_config_parses_on_top_of_a_method_config(config, capsys):
    """Evaluation configs hold only a harness callback: they are added to a method's config."""
    printed = printed_config(
        capsys, "test", "--config", str(METHOD_FOR_EVAL), "--config", str(config)
    )
    harness = "Downstream" if config.stem.startswith("downstream") else "Evaluation"
    assert f"a2i.callbacks.{harness.lower()}.{harness}" in printed


@pytest.mark.parametrize("config", DATA_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_data_config_parses_on_top_of_a_method_config(config, capsys):
    """Dataset configs hold only a data section: they replace a method config's data."""
    printed = printed_config(
        capsys, "fit", "--config", str(METHOD_FOR_EVAL), "--config", str(config)
    )
    assert config.stem in printed.lower()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_paper_configs_stop_with_a_clear_missing_checkpoint_or_data_error(
    name, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("A2I_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(ROOT / "configs" / name)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "not available offline" in err or "dataset not found" in err
