"""The one atomic writer: old file or whole new file, never half of one, and no clobbering."""

import os
import stat

import pytest
import torch

from a2i.errors import OutputExistsError
from a2i.io_utils import (
    TEMP_GLOB,
    atomic_write,
    atomic_write_text,
    current_umask,
    file_problem,
    printable,
)
from a2i.pretrained import save_state_dict


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_files_get_the_mode_of_the_users_umask_even_from_private_writers(tmp_path, umask):
    assert current_umask() == umask
    save_state_dict({"w": torch.zeros(2)}, tmp_path / "model.safetensors")  # safetensors: 0600
    atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"model.safetensors": 0o666 & ~umask, "config.yaml": 0o666 & ~umask}


def test_writes_through_a_hidden_temp_file_in_the_same_folder(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.match(TEMP_GLOB)
        tmp.write_text("new")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_text_is_written_as_utf8_and_replaces_the_old_file(tmp_path):
    target = tmp_path / "card.md"
    target.write_text("old")
    atomic_write_text(target, "§4.1 → ok\n")
    assert target.read_bytes() == "§4.1 → ok\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["card.md"]


def test_an_error_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_refuses_to_overwrite_before_writing_anything(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(OutputExistsError, match=r"out\.txt' exists; use --force") as info:
        with atomic_write(target, overwrite=False, remedy="use --force") as tmp:
            tmp.write_text("new")
    assert isinstance(info.value, FileExistsError)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_write(target) as tmp:  # overwriting is the default
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_printable_escapes_what_a_terminal_would_act_on():
    name = "evil\x1b]0;pwned\x07\x1b[2K\nfake line\u202eevil.wav\udcff"
    shown = printable(name)
    assert shown == "evil\\x1b]0;pwned\\x07\\x1b[2K\\x0afake line\\u202eevil.wav\\udcff"
    assert shown.isprintable() and shown.encode("utf-8")
    assert printable("Bösendorfer – 鐘.wav") == "Bösendorfer – 鐘.wav"


def test_a_broken_link_is_named_as_one(tmp_path):
    (tmp_path / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    assert file_problem(tmp_path / "gone.wav") == "broken link"
    assert file_problem(tmp_path / "empty.wav") == "empty (0 bytes)"
    assert file_problem(tmp_path / "never.wav") == "missing"
