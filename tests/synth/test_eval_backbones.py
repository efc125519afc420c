"""a2i.synth.eval_backbones: which backbones a run trains is checked before any training."""

import pytest

from a2i.errors import ConfigError
from a2i.synth.eval_backbones import train_eval_backbones


@pytest.mark.parametrize("parts", [("audio_tower",), ("clip", "inception")])
def test_unknown_parts_or_a_tower_without_its_clip_are_refused(tmp_path, parts):
    with pytest.raises(ConfigError, match="parts must be among"):
        train_eval_backbones(tmp_path, parts=parts)
    assert not any(tmp_path.iterdir())
