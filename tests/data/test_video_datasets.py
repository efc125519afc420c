"""Raw video datasets → ``a2i prepare`` → shards → datamodules → training, on world fixtures."""

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from video_fixtures import (
    VGGSOUND_LABELS,
    kill_at_second_shard,
    write_celebvhq_fixture,
    write_vegas_fixture,
    write_vggsound_fixture,
)

from a2i.build.clips import VideoClip, holdout
from a2i.build.prepare import plan_clip_shards
from a2i.cli import main
from a2i.data.celebvhq import CelebVHQDataModule
from a2i.data.vegas import VEGASDataModule
from a2i.data.vggsound import VGGSoundDataModule, vggsound_classes
from a2i.errors import ConfigError, DatasetNotFoundError, ManifestError

pytestmark = pytest.mark.xdist_group("video")


@pytest.fixture(scope="module")
def vggsound(tmp_path_factory):
    root = tmp_path_factory.mktemp("vggsound")
    special = write_vggsound_fixture(root)
    return root, special


def problems(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t")[-1] for line in lines}


def digests(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.glob("shards/*"))
    }


def vggsound_data(root: Path, prepared: Path, **options) -> VGGSoundDataModule:
    """The fixture's three labels, every clip in train, one 64 px shard unless ``options`` say."""
    settings = {
        "classes": list(VGGSOUND_LABELS),
        "val_fraction": 0.0,
        "shard_size": 32,
        "frame_size": 64,
        **options,
    }
    return VGGSoundDataModule(str(root), prepared=str(prepared), **settings)


def test_vggsound_class_list_is_the_official_csv_labels():
    classes = vggsound_classes()
    assert len(classes) == len(set(classes)) == 310
    assert classes == sorted(classes)
    assert set(VGGSOUND_LABELS) <= set(classes)


def test_vggsound_prepare_counts_logs_and_serves(vggsound, tmp_path):
    root, special = vggsound
    data = vggsound_data(
        root,
        tmp_path / "prepared",
        val_fraction=0.25,
        shard_size=4,
        batch_size=4,
        clip_seconds=10.0,
        image_size=32,
    )
    keys = [f"yt{i:03d}-x_{i // 6}_000030" for i in range(18)]
    train_keys = [k for i, k in enumerate(keys) if i % 6 < 4]
    expected_val = {k for k in train_keys if holdout(k, 0.25, 0)}
    assert not (tmp_path / "prepared").exists()  # construction reads nothing
    # the scan reports what is on disk: the missing clip is logged, not fatal
    assert sum(data.clip_counts.values()) == 17
    assert special["missing"][0] in (tmp_path / "prepared" / "scan_problems.log").read_text()
    report = data.prepare_data(progress=False)
    dropped = problems(tmp_path / "prepared" / "problems.log")
    assert set(dropped) == {special["corrupt"][0], special["no_audio"][0]}
    assert "no audio track" in dropped[special["no_audio"][0]]
    kept_val = len(
        expected_val - set(special["corrupt"] + special["no_audio"] + special["missing"])
    )
    assert report.kept == {"train": 15 - 6 - kept_val, "val": kept_val, "test": 6}
    data.setup("fit")
    train = data.dataset("train")
    item = train[0]
    assert item["audio"].shape == (160000,) and item["image"].shape == (3, 32, 32)
    by_key = {clip["key"]: clip for _, clip in train.clips + data.dataset("test").clips}
    if special["short"][0] in by_key:  # 6 s clip kept, padded at load time
        assert by_key[special["short"][0]]["meta"]["seconds"] == pytest.approx(6.0, abs=0.1)
    assert by_key.get(special["rotated"][0], {"meta": {"rotation": 90}})["meta"]["rotation"] == 90
    batch = next(iter(data.train_dataloader()))
    assert batch["audio"].shape == (4, 160000) and batch["label"].dtype == torch.int64
    assert data.prepare_data(progress=False) is None  # complete: nothing to redo


def test_vggsound_rotated_clip_is_stored_upright(vggsound, tmp_path):
    root, special = vggsound
    data = vggsound_data(root, tmp_path / "p", image_size=64)
    data.prepare_data(progress=False)
    clips = data.dataset("train").clips
    index = next(i for i, (_, c) in enumerate(clips) if c["key"] == special["rotated"][0])
    image = data.dataset("train")[index]["image"]
    plain = data.dataset("train")[index - 1]["image"]  # an unrotated clip of the same world
    # the world's ground fills the bottom rows: an upright frame is brighter-ground at the bottom
    rows = image.mean(dim=(0, 2))
    reference = plain.mean(dim=(0, 2))
    assert torch.corrcoef(torch.stack([rows, reference]))[0, 1] > 0.5


def test_unknown_subset_class_is_named(vggsound, tmp_path):
    root, _ = vggsound
    with pytest.raises(ConfigError, match="dog barkin"):
        VGGSoundDataModule(
            str(root), prepared=str(tmp_path / "p"), classes=["dog barkin"]
        ).prepare_data(progress=False)


def test_missing_root_says_what_to_do(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"vggsound\.csv"):
        VGGSoundDataModule(str(tmp_path / "nowhere")).prepare_data(progress=False)


def test_strict_mode_refuses_missing_videos(vggsound, tmp_path):
    root, special = vggsound
    missing = root / "video" / f"{special['missing'][0]}.mp4"
    with pytest.raises(ManifestError) as info:
        VGGSoundDataModule(str(root), prepared=str(tmp_path / "p"), strict=True).prepare_data()
    message = str(info.value)
    assert f"1 listed file(s) cannot be used (e.g. {missing} (missing))" in message
    assert "set strict: false" in message


@pytest.mark.slow
def test_killed_prepare_resumes_to_identical_shards(vggsound, tmp_path):
    root, _ = vggsound
    args = [
        "prepare",
        "--config",
        "tests/conf/data/vggsound.yaml",
        "--data.init_args.root",
        str(root),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    a2i = [sys.executable, "-m", "a2i", *args]
    done = subprocess.run([*a2i, "--data.init_args.prepared", str(whole)], env=env)
    assert done.returncode == 1  # the fixture's corrupt video, named after the rest is done
    dying = [sys.executable, "-c", kill_at_second_shard("a2i.build.prepare", "a2i.cli"), *args]
    run = subprocess.run([*dying, "--data.init_args.prepared", str(killed)], env=env)
    assert run.returncode == -signal.SIGKILL
    partial = digests(killed)
    finished = {name: digest for name, digest in partial.items() if not name.startswith(".")}
    assert len(finished) == 2 < len(digests(whole))  # one shard: its .tar and .json
    assert finished.items() <= digests(whole).items()
    assert len(partial) == 4  # and the second shard's two temp files
    done = subprocess.run([*a2i, "--data.init_args.prepared", str(killed)], env=env)
    assert done.returncode == 1
    assert digests(killed) == digests(whole)
    assert (killed / "problems.log").read_text() == (whole / "problems.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sound2vision_gan", "audiotoken"])
def test_prepare_then_fit_through_the_cli(vggsound, tmp_path, capsys, method):
    """The same shards train every method (a few steps each, through the real CLI)."""
    root, special = vggsound
    prepared = tmp_path / "prepared"
    data = ["--config", "tests/conf/data/vggsound.yaml", "--data.init_args.root", str(root)]
    data += ["--data.init_args.prepared", str(prepared)]
    with pytest.raises(SystemExit) as stopped:
        main(["prepare", *data])
    assert stopped.value.code == 1  # a video is corrupt: named, after every other clip is done
    said = capsys.readouterr()
    assert "clips/s" in said.out and "2 dropped (1 undecodable; see " in said.out
    (corrupt,) = special["corrupt"]
    assert f"  failed: {root / 'video' / corrupt}.mp4: " in said.err
    assert "1 video(s) undecodable" in said.err
    assert special["missing"][0] not in said.err  # a listed video never downloaded: counted only
    with pytest.raises(SystemExit) as again:  # a complete preparation: the same failure, named
        main(["prepare", *data])
    said = capsys.readouterr()
    assert again.value.code == 1 and "is already complete" in said.out
    assert f"  failed: {root / 'video' / corrupt}.mp4: " in said.err
    runs = ["--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]
    main(["fit", "--config", f"tests/conf/{method}.yaml", *data, *runs, "--trainer.max_steps", "2"])
    assert list((tmp_path / "runs").rglob("last.ckpt"))


def test_streamed_training_epochs_have_a_fixed_length(vggsound, tmp_path):
    root, _ = vggsound
    data = vggsound_data(
        root,
        tmp_path / "p",
        stream_train=True,
        shuffle_buffer=4,
        shard_size=4,
        batch_size=2,
        clip_seconds=1.0,
        image_size=32,
    )
    data.prepare_data(progress=False)
    loader = data.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == len(data.dataset("train")) // 2
    assert batches[0]["audio"].shape == (2, 16000) and batches[0]["image"].shape == (2, 3, 32, 32)
    assert {key for b in batches for key in b["key"]} <= {
        c["key"] for _, c in data.dataset("train").clips
    }


def test_fit_on_unprepared_data_prepares_it_first(vggsound, tmp_path):
    root, _ = vggsound
    main(
        [
            "fit",
            "--config",
            "tests/conf/sound2vision_gan.yaml",
            "--config",
            "tests/conf/data/vggsound.yaml",
            "--data.init_args.root",
            str(root),
            "--data.init_args.prepared",
            str(tmp_path / "p"),
            "--trainer.max_steps",
            "1",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
        ]
    )
    assert json.loads((tmp_path / "p" / "prepared.json").read_text())["dropped"] == 2


def test_vegas_protocol_and_corrupt_video(tmp_path):
    root = tmp_path / "vegas"
    special = write_vegas_fixture(root, per_class=4)
    data = VEGASDataModule(
        str(root),
        train_per_class=2,
        test_per_class=1,
        val_per_class=1,
        shard_size=8,
        frame_size=64,
        clip_seconds=4.0,
        image_size=32,
    )
    assert data.clip_counts == {"train": 6, "val": 3, "test": 3}
    assert data.scan_result.classes == ["Dog", "Rail_transport", "Water_flowing"]
    again = VEGASDataModule(str(root), train_per_class=2, test_per_class=1, val_per_class=1)
    assert [c.key for c in again.scan_result.clips] == [c.key for c in data.scan_result.clips]
    report = data.prepare_data(progress=False)
    assert sum(report.kept.values()) == 11
    assert special["corrupt"][0] in (root / "prepared" / "problems.log").read_text()
    labels = {
        c["label"] for split in ("train", "val", "test") for _, c in data.dataset(split).clips
    }
    assert labels == {0, 1, 2}


def test_celebvhq_split_attributes_and_missing_clip(tmp_path):
    root = tmp_path / "celebvhq"
    special = write_celebvhq_fixture(root, clips=6)
    data = CelebVHQDataModule(
        str(root),
        train_clips=3,
        val_clips=1,
        shard_size=8,
        frame_size=64,
        clip_seconds=4.0,
        image_size=32,
    )
    assert sum(data.clip_counts.values()) == 5
    assert special["missing"][0] in (root / "prepared" / "scan_problems.log").read_text()
    data.prepare_data(progress=False)
    clips = [clip for split in ("train", "test") for _, clip in data.dataset(split).clips]
    assert all(clip["label"] == -1 for clip in clips)
    assert {tuple(c["meta"]["appearance"]) for c in clips} <= {("young",), ("old",)}
    assert clips[0]["meta"]["emotion"] == "neutral"


def test_cached_image_features_reach_sound2vision(vggsound, tmp_path):
    from a2i.build.prepare import ImageFeature
    from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
    from a2i.encoders.image.tiny import TinyImageEncoder
    from a2i.generators.biggan import BigGANGenerator
    from a2i.methods.base import CACHED_IMAGE_FEATURES
    from a2i.methods.sound2vision import Sound2Vision

    root, _ = vggsound
    torch.manual_seed(0)
    encoder = TinyImageEncoder(embed_dim=64, image_size=32)
    data = vggsound_data(
        root,
        tmp_path / "p",
        features=[ImageFeature(encoder)],
        frame_size=32,
        image_size=32,
        batch_size=4,
        clip_seconds=1.0,
    )
    data.prepare_data(progress=False)
    batch = next(iter(data.test_dataloader()))
    assert batch[CACHED_IMAGE_FEATURES].shape == (4, 64)
    model = Sound2Vision(
        SpectrogramResNet(preset="tiny", embed_dim=64, clip_seconds=1.0),
        encoder,
        BigGANGenerator(preset="tiny", condition_dim=64, image_size=32),
    )
    cached = model.cached_or_computed_image_features(batch)
    computed = model.image_features(batch["image"])
    # cached from the frame before JPEG coding: each clip's cache is nearest its own recomputation
    similarity = torch.nn.functional.normalize(cached) @ torch.nn.functional.normalize(computed).T
    assert similarity.diagonal().min() > 0.9
    assert torch.equal(similarity.argmax(dim=1), torch.arange(4))
    with pytest.raises(ConfigError, match="cached"):
        Sound2Vision(
            SpectrogramResNet(preset="tiny", embed_dim=32, clip_seconds=1.0),
            TinyImageEncoder(embed_dim=32, image_size=32),
            BigGANGenerator(preset="tiny", condition_dim=32, image_size=32),
        ).cached_or_computed_image_features(batch)


def test_audio_visual_correlation_picks_the_seconds_the_object_is_on_screen(vggsound, tmp_path):
    from a2i.build.frames import AVCorrelationFrame
    from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
    from a2i.encoders.image.scorers import CLIPScorer
    from a2i.synth.eval_backbones import AUDIO_TOWER

    root, special = vggsound
    tower = SpectrogramResNet(**AUDIO_TOWER, pretrained="tiny/eval/audio_tower.safetensors")
    clip_scorer = CLIPScorer(preset="tiny", pretrained="tiny/eval/clip.safetensors")
    selector = AVCorrelationFrame(tower, clip_scorer)
    data = vggsound_data(root, tmp_path / "p", classes=["raining"], frame_selector=selector)
    data.prepare_data(progress=False)
    clips = {clip["key"]: clip for _, clip in data.dataset("train").clips}
    assert clips[special["object_at_6s"][0]]["meta"]["frame_time"] == pytest.approx(6.0)


def test_celebvhq_crop_faces_cuts_the_annotated_span_and_box(tmp_path):
    import io

    from PIL import Image

    root = tmp_path / "celebvhq"
    write_celebvhq_fixture(root, clips=3)
    info = json.loads((root / "celebvhq_info.json").read_text())
    for clip_id, entry in info["clips"].items():
        entry["duration"] = {"start_sec": 1.0, "end_sec": 3.0}
        entry["bbox"] = {"top": 0, "bottom": 64, "left": 16, "right": 48}  # a 64 x 32 face box
        source = root / "processed" / f"{clip_id}.mp4"
        if source.exists():
            (root / "raw").mkdir(exist_ok=True)
            source.rename(root / "raw" / f"{entry['ytb_id']}.mp4")
    (root / "celebvhq_info.json").write_text(json.dumps(info))
    data = CelebVHQDataModule(
        str(root),
        video_dir="raw",
        crop_faces=True,
        train_clips=2,
        val_clips=0,
        shard_size=8,
        frame_size=64,
        clip_seconds=2.0,
        image_size=32,
    )
    assert {clip.crop for clip in data.scan_result.clips} == {(0, 64, 16, 48)}
    data.prepare_data(progress=False)
    dataset = data.dataset("train")
    shard, clip = dataset.clips[0]
    assert clip["meta"]["seconds"] == pytest.approx(2.0, abs=0.05)
    with Image.open(io.BytesIO(dataset._read(shard, clip["members"]["jpg"]))) as frame:
        assert frame.size == (32, 64)  # width x height of the box, face-centred


def test_predict_on_a_folder_needs_no_training_data(tmp_path):
    """A run config naming VGGSound predicts on a folder of wavs where VGGSound is absent."""
    from a2i.audio.io import write_audio

    write_audio(tmp_path / "in" / "a.wav", torch.zeros(16000).uniform_(-0.1, 0.1), 16000)
    fit = ["--config", "tests/conf/sound2vision_gan.yaml", "--trainer.max_steps", "1"]
    main(["fit", *fit, "--trainer.logger.init_args.save_dir", str(tmp_path / "run")])
    (ckpt,) = (tmp_path / "run").rglob("last.ckpt")
    main(
        [
            "predict",
            "--config",
            "tests/conf/sound2vision_gan.yaml",
            "--config",
            "tests/conf/data/vggsound.yaml",
            "--ckpt_path",
            str(ckpt),
            "--data.init_args.root",
            str(tmp_path / "no_vggsound_here"),
            "--audio_dir",
            str(tmp_path / "in"),
            "--output_dir",
            str(tmp_path / "out"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "logs"),
        ]
    )
    assert (tmp_path / "out" / "a.wav.png").exists()


@pytest.mark.slow
def test_worker_processes_write_the_same_shards_with_every_feature_cached(vggsound, tmp_path):
    from a2i.build.prepare import AudioFeature, ImageFeature, LatentFeature
    from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
    from a2i.encoders.image.tiny import TinyImageEncoder
    from a2i.generators.autoencoder import KLAutoencoder

    root, _ = vggsound
    torch.manual_seed(0)
    features = [
        ImageFeature(TinyImageEncoder(embed_dim=16, image_size=32).freeze()),
        AudioFeature(SpectrogramResNet(preset="tiny", embed_dim=8, clip_seconds=1.0).freeze()),
        LatentFeature(KLAutoencoder(preset="tiny", image_size=32).freeze(), image_size=32),
    ]
    outputs = {}
    for workers in (0, 2):
        data = vggsound_data(
            root,
            tmp_path / f"w{workers}",
            features=features,
            prepare_workers=workers,
            shard_size=4,
            frame_size=32,
            image_size=32,
            clip_seconds=1.0,
        )
        report = data.prepare_data(progress=False)
        assert report.shards_written == 5
        outputs[workers] = digests(tmp_path / f"w{workers}")
        item = data.dataset("test")[0]
    assert outputs[0] == outputs[2]
    assert item["features/image"].shape == (16,) and item["features/audio"].shape == (8,)
    assert item["features/latents"].shape[:2] == (2, 4)  # posterior mean and std


def test_a_folder_prepared_with_another_recipe_is_refused(vggsound, tmp_path):
    from a2i.build.frames import CLIPBestFrame
    from a2i.encoders.image.scorers import CLIPScorer

    root, _ = vggsound
    common = dict(prepared=str(tmp_path / "p"), classes=["raining"], val_fraction=0.0)
    VGGSoundDataModule(str(root), **common).prepare_data(progress=False)
    other = VGGSoundDataModule(
        str(root),
        frame_selector=CLIPBestFrame(CLIPScorer(preset="tiny")),
        **common,
    )
    assert not other.is_prepared()
    with pytest.raises(ConfigError, match="frame_selector"):
        other.prepare_data(progress=False)


def test_empty_video_is_reported_by_the_scan(tmp_path):
    root = tmp_path / "celebvhq"
    write_celebvhq_fixture(root, clips=3)
    (root / "processed" / "face000_0.mp4").write_bytes(b"")
    with pytest.raises(Exception, match=r"face000_0\.mp4 \(empty"):
        CelebVHQDataModule(str(root), train_clips=1, strict=True).clip_counts  # noqa: B018
    data = CelebVHQDataModule(str(root), train_clips=1)
    assert sum(data.clip_counts.values()) == 1
    log = (root / "prepared" / "scan_problems.log").read_text()
    assert "face000_0\t" in log and "empty (0 bytes)" in log and "face002_0" in log


def test_split_is_written_and_a_split_file_replaces_the_rule(tmp_path):
    root = tmp_path / "vegas"
    write_vegas_fixture(root, per_class=4)
    first = VEGASDataModule(str(root), train_per_class=2, test_per_class=1, val_per_class=1)
    counts = first.clip_counts
    written = (root / "prepared" / "splits.csv").read_text().splitlines()
    assert written[0] == "key,split" and len(written) == 1 + sum(counts.values())
    custom = tmp_path / "split.csv"
    custom.write_text(
        "key,split\n" + "\n".join(f"{line.split(',')[0]},test" for line in written[1:4])
    )
    second = VEGASDataModule(
        str(root),
        prepared=str(tmp_path / "p"),
        split_file=str(custom),
        train_per_class=2,
        test_per_class=1,
        val_per_class=1,
    )
    assert second.clip_counts == {"test": 3}
    custom.write_text("key,split\nDog_video_dog01,holdout\n")
    with pytest.raises(Exception, match=r"split\.csv:2: split must be"):
        VEGASDataModule(str(root), prepared=str(tmp_path / "q"), split_file=str(custom)).clip_counts  # noqa: B018


def test_read_only_dataset_folder_asks_for_a_writable_prepared_folder(tmp_path):
    root = tmp_path / "celebvhq"
    write_celebvhq_fixture(root, clips=2)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="prepared"):
        CelebVHQDataModule(str(root), prepared=str(blocker / "prepared")).prepare_data()


def test_videos_sharing_a_key_are_named_not_fatal(tmp_path):
    """``a b.mp4``/``a_b.mp4`` and ``x.mp4``/``x.mkv`` give one key each: the scan goes on."""
    folder = tmp_path / "vegas" / "Dog"
    folder.mkdir(parents=True)
    for name in ("a b.mp4", "a_b.mp4", "x.mp4", "x.mkv", "y.mp4"):
        (folder / name).write_bytes(b"bytes a scan does not decode")
    data = VEGASDataModule(
        str(tmp_path / "vegas"), test_per_class=0, val_per_class=0, prepared=str(tmp_path / "p")
    )
    assert sorted(clip.key for clip in data.scan_result.clips) == ["Dog_a_b", "Dog_x", "Dog_y"]
    unusable = {Path(path).name: problem for _, path, problem in data.scan_result.unusable}
    assert len(unusable) == 2
    assert all("is already that of" in problem for problem in unusable.values())
    assert "Dog_a_b\t" in (tmp_path / "p" / "scan_problems.log").read_text()
    twice = [VideoClip("k", "a.mp4", "train"), VideoClip("k", "b.mp4", "train")]
    with pytest.raises(ConfigError, match=r"repeated: \['k'\]"):
        plan_clip_shards(twice, 4)


def test_a_long_video_keeps_its_first_max_seconds_and_older_folders_stay_valid(tmp_path):
    """A whole-video clip (VEGAS lists whole files) used to be decoded and stored whole: an
    hours-long file held hours of audio and frames in memory."""
    root = tmp_path / "vegas"
    write_vegas_fixture(root, per_class=2)
    common = dict(train_per_class=1, test_per_class=1, val_per_class=0, shard_size=8)
    common |= dict(frame_size=64, clip_seconds=2.0, image_size=32)
    cut = VEGASDataModule(str(root), prepared=str(tmp_path / "cut"), max_seconds=2.5, **common)
    report = cut.prepare_data(progress=False)
    assert f"; {report.cut} longer videos kept their first 2.5 s" in report.describe(cut.prepared)
    clips = [clip for split in ("train", "test") for _, clip in cut.dataset(split).clips]
    assert clips and all(clip["meta"]["seconds"] == 2.5 for clip in clips)  # the files are 4 s
    assert all(clip["meta"]["cut_to_max_seconds"] == 2.5 for clip in clips)

    whole = VEGASDataModule(str(root), prepared=str(tmp_path / "whole"), **common)
    whole.prepare_data(progress=False)
    assert all("cut_to_max_seconds" not in c["meta"] for _, c in whole.dataset("train").clips)
    unbounded = VEGASDataModule(
        str(root), prepared=str(tmp_path / "all"), max_seconds=None, **common
    )
    unbounded.prepare_data(progress=False)
    assert all(c["meta"]["seconds"] == 4.0 for _, c in unbounded.dataset("train").clips)
    with pytest.raises(ConfigError, match="max_seconds must be > 0"):
        VEGASDataModule(str(root), max_seconds=0, **common)
    settings = tmp_path / "whole" / "settings.json"  # as written before max_seconds existed
    stored = json.loads(settings.read_text())
    settings.write_text(json.dumps({k: v for k, v in stored.items() if k != "max_seconds"}))
    assert VEGASDataModule(str(root), prepared=str(tmp_path / "whole"), **common).is_prepared()
