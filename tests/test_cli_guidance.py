"""The real ``a2i`` command guides a newcomer: typos, help, progress and where a run went."""

from pathlib import Path

import pytest

from a2i.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "tests" / "conf"
GAN = str(CONF / "sound2vision_gan.yaml")


def exit_code(args):
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


@pytest.mark.parametrize("command", ["fit", "test", "predict"])
def test_an_abbreviated_option_is_refused_with_the_full_one(command, capsys):
    assert exit_code([command, "--config", GAN, "--trainer.max_step", "5"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "a2i: error: unknown option --trainer.max_step (did you mean '--trainer.max_steps'?)",
        f"(options: a2i {command} --help)",
    ]


def test_a_mistyped_option_suggests_the_closest_one(capsys):
    assert exit_code(["fit", "--config", GAN, "--trainer.max_stpes", "5"]) == 2
    err = capsys.readouterr().err
    assert "unknown option --trainer.max_stpes (did you mean '--trainer.max_steps'?)" in err


def test_a_mistyped_command_suggests_the_closest_one(capsys):
    assert exit_code(["fitt", "--config", GAN]) == 2
    assert "invalid subcommand 'fitt' (did you mean 'fit'?)" in capsys.readouterr().err


def test_a_tool_refuses_an_abbreviated_option(tmp_path, capsys):
    assert exit_code(["world", "--ou", str(tmp_path / "w")]) == 2
    assert "--out" in capsys.readouterr().err and not (tmp_path / "w").exists()


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_help_starts_with_the_shipped_configs_and_methods_in_plain_text(command, capsys):
    assert exit_code([command, "--help"]) == 0
    out = capsys.readouterr().out
    head = "\n".join(out.splitlines()[:40])
    assert out.startswith(f"usage: a2i {command} [-h]")
    assert "configs shipped with a2i (--config NAME): audiotoken," in head
    assert "methods (--model.class_path): a2i.methods.audiotoken.AudioToken," in head
    for markup in (":class:", ":meth:", ":func:", "``", ".. note::", ".. warning::"):
        assert markup not in out, markup


def test_plain_text_renders_docstring_markup():
    from a2i.commands.catalog import plain_text

    assert plain_text("Lightning's ``Trainer`` and :class:`~a2i.interfaces.Crop`") == (
        "Lightning's Trainer and Crop"
    )
    assert plain_text(":meth:`the loop <a.b.run>`; .. note:: Example:: x") == (
        "the loop; Note: Example: x"
    )
