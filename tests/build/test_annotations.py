"""Published frame selections and clip lists (Sound2Scene, AudioToken), read without unpickling."""

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from video_fixtures import write_vggsound_fixture

from a2i.build.annotations import ClipList, clip_key, convert_pickle, main
from a2i.build.clips import VideoClip
from a2i.build.frames import AnnotatedFrame
from a2i.data.vggsound import VGGSoundDataModule
from a2i.errors import ConfigError, DatasetNotFoundError

RATE = 16000


def clip_at(fps: float, seconds: float = 10.0):
    """Blank frames decoded at ``fps`` over ``seconds``, their times and silent audio."""
    count = round(fps * seconds)
    frames = torch.zeros(count, 8, 8, 3, dtype=torch.uint8)
    return frames, torch.arange(count, dtype=torch.float64) / fps, torch.zeros(int(seconds * RATE))


def choose(selector, key, fps=math.nan, decoded_fps=10.0):
    frames, times, audio = clip_at(decoded_fps)
    choice = selector.select(frames, times, audio, RATE, 0, "dog barking", key=key, fps=fps)
    return choice, times


def test_sound2scene_top10_frames_pick_the_first_at_10_fps(tmp_path):
    # top1_boxes_top10_moments.json as its README shows it: name -> 10 frame numbers, best first
    path = tmp_path / "top1_boxes_top10_moments.json"
    path.write_text(json.dumps({"9fhhMaX_TraI_44000_54000": [47, 46, 45, 23, 42, 9, 44, 56, 2, 1]}))
    selector = AnnotatedFrame(str(path), match="vggsound_ms", unit="frame", frame_rate=10)
    choice, times = choose(selector, "9fhhMaX_TraI_000044")
    assert choice.keep and float(times[choice.index]) == pytest.approx(4.7)
    unlisted, _ = choose(selector, "other_000001")
    assert not unlisted.keep and "not in" in unlisted.reason
    fallback = AnnotatedFrame(str(path), match="vggsound_ms", missing="mid")
    assert choose(fallback, "other_000001")[0].index == 50


def test_audiotoken_frame_numbers_use_the_videos_own_rate(tmp_path):
    # best_frames.json is read as ``frames[name][0]``: a list of candidate frame numbers
    path = tmp_path / "best_frames.json"
    path.write_text(json.dumps({"-_gaZzFfzDQ_517000_527000": [[75, 80], [3]]}))
    selector = AnnotatedFrame(str(path), match="vggsound_ms", unit="frame")
    choice, times = choose(selector, "-_gaZzFfzDQ_000517", fps=25.0, decoded_fps=1.0)
    assert float(times[choice.index]) == 3.0  # frame 75 at 25 fps = 3 s
    with pytest.raises(ValueError, match="frame rate"):
        choose(selector, "-_gaZzFfzDQ_000517")


def test_csv_seconds_and_a_time_outside_the_clip(tmp_path):
    path = tmp_path / "frames.csv"
    path.write_text("key,seconds\na_000001,6.2\nb_000001,12.0\n")
    selector = AnnotatedFrame(str(path))
    choice, times = choose(selector, "a_000001", decoded_fps=1.0)
    assert choice.keep and float(times[choice.index]) == 6.0
    outside, _ = choose(selector, "b_000001")
    assert not outside.keep and "outside the clip" in outside.reason


def test_missing_or_pickled_annotation_files_stop_with_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"download it from https://example\.org/f"):
        AnnotatedFrame(str(tmp_path / "absent.json"), source="https://example.org/f")
    (tmp_path / "unmatch_videos.pkl").write_bytes(pickle.dumps(["KTQig7CKVHU"], protocol=4))
    with pytest.raises(
        ConfigError, match=r"python -m a2i\.build\.annotations .*unmatch_videos\.json"
    ):
        ClipList(str(tmp_path / "unmatch_videos.pkl")).names()
    with pytest.raises(ConfigError, match="youtube id"):
        clip_key("no-times", "vggsound_ms")


def test_pickled_lists_convert_and_code_in_a_pickle_never_runs(tmp_path, capsys):
    source, target = tmp_path / "low_quality_videos.pkl", tmp_path / "low.json"
    # AudioToken's files: protocol 4 pickles of a list of YouTube ids
    source.write_bytes(pickle.dumps(["KTQig7CKVHU", "UVWv3ApaxKg"], protocol=4))
    main([str(source), str(target)])
    assert json.loads(target.read_text()) == ["KTQig7CKVHU", "UVWv3ApaxKg"]
    assert "2 entries" in capsys.readouterr().out
    source.write_bytes(pickle.dumps({"a", "b"}, protocol=2))  # sets go through builtins.set
    assert convert_pickle(source, target) == 2 and json.loads(target.read_text()) == ["a", "b"]

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    source.write_bytes(pickle.dumps([Exploit()]))
    with pytest.raises(ConfigError, match="refused"):
        convert_pickle(source, target)
    assert not marker.exists()


def test_clip_lists_drop_by_youtube_id_or_keep_by_key(tmp_path):
    clips = [
        VideoClip(key=f"{ytid}_000030", video="", split=split, meta={"youtube_id": ytid})
        for ytid, split in (("aaa", "train"), ("bbb", "train"), ("ccc", "train"), ("ddd", "test"))
    ]
    (tmp_path / "drop.json").write_text(json.dumps(["bbb", "ddd"]))
    (tmp_path / "keep.txt").write_text("aaa_30000_40000\nbbb_30000_40000\n")
    dropped = ClipList(str(tmp_path / "drop.json"), match="youtube_id", splits=["train"])
    assert [c.key for c in dropped.apply(clips)] == ["aaa_000030", "ccc_000030", "ddd_000030"]
    kept = ClipList(str(tmp_path / "keep.txt"), action="keep", match="vggsound_ms").apply(clips)
    assert [c.key for c in kept] == ["aaa_000030", "bbb_000030"]


def test_prepare_trains_on_the_annotated_frame_of_the_listed_clips(tmp_path):
    root = tmp_path / "vggsound"
    special = write_vggsound_fixture(root)
    target = special["object_at_6s"][0]
    ytid = target.rsplit("_", 1)[0]
    frames = tmp_path / "top1.json"
    frames.write_text(json.dumps({f"{ytid}_30000_40000": [61, 3], "zzz_30000_40000": [5]}))
    data = VGGSoundDataModule(
        str(root),
        prepared=str(tmp_path / "p"),
        classes=["raining"],
        val_fraction=0.0,
        frame_selector=AnnotatedFrame(
            str(frames), match="vggsound_ms", unit="frame", frame_rate=10
        ),
        clip_lists=[ClipList(str(frames), action="keep", match="vggsound_ms")],
        shard_size=32,
        frame_size=64,
    )
    assert [clip.key for clip in data.scan_result.clips] == [target]
    data.prepare_data(progress=False)
    clips = {clip["key"]: clip for _, clip in data.dataset("train").clips}
    assert clips[target]["meta"]["frame_time"] == pytest.approx(6.0)


def test_sound2vision_classes_ship_as_published_and_configs_use_them(tmp_path):
    from a2i.data.vggsound import read_class_file, vggsound_classes

    classes = read_class_file("sound2scene_vggsound50.txt")
    assert len(classes) == len(set(classes)) == 50
    assert set(classes) <= set(vggsound_classes())
    assert classes[:2] == ["airplane flyby", "ambulance siren"]  # the published order = labels
    (tmp_path / "mine.txt").write_text("# comment\ndog barking\n")
    assert read_class_file(str(tmp_path / "mine.txt")) == ["dog barking"]
    with pytest.raises(ConfigError, match="cannot read"):
        read_class_file(str(tmp_path / "absent.txt"))
    for name in ("sound2vision_gan.yaml", "sound2vision_ldm.yaml"):
        text = (Path(__file__).resolve().parents[2] / "configs" / name).read_text()
        assert "classes: sound2scene_vggsound50.txt" in text
