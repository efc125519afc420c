"""WavBriVL: paper-scale size, MoCo steps, DDP queues, zero-shot prompts, rerank, guidance, the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from a2i.cli import main
from a2i.encoders.audio.wavlm_tower import WavLMTower
from a2i.encoders.image.brivl import BriVLImageEncoder
from a2i.encoders.image.vision_language import OpenCLIPVisionLanguage
from a2i.encoders.text.clip_text import CLIPTextEncoder
from a2i.errors import ConfigError
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.generators.score_guidance import ScoreGuidance
from a2i.interfaces import GenerationRequest, per_row_generators
from a2i.methods.wavbrivl import WavBriVL
from a2i.modules.image_augmentation import ImageAugmentation
from a2i.synth.world import WORLD_CLASSES

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "tests" / "conf" / "wavbrivl.yaml"
DDP_SCRIPT = Path(__file__).with_name("ddp_wavbrivl.py")


def count(parameters):
    return sum(p.numel() for p in parameters)


def test_paper_scale_audio_tower_on_the_meta_device():
    with torch.device("meta"):
        model = WavBriVL(WavLMTower(), OpenCLIPVisionLanguage())
    tower = model.audio_encoder
    # WavLM Base+ (94,381,936) + 13 layer weights + 4 encoder layers of 768 (4 heads, FFN 2048:
    # 5,513,984 + 3,072 layer norm each) + MLP 768→512→512.
    layer = 768 * 3 * 768 + 3 * 768 + 768 * 768 + 768 + 2 * 768 * 2048 + 2048 + 768 + 4 * 768
    head = 13 + 4 * layer + 768 * 512 + 512 + 512 * 512 + 512
    assert count(tower.wavlm.parameters()) == 94_381_936
    assert count(tower.parameters()) - 94_381_936 == head == 22_712_333
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert count(trainable) == head  # WavLM frozen (default), CLIP frozen
    # the momentum key encoder copies the trained head only; the frozen WavLM is shared
    key = model.audio_key_encoder
    assert key.wavlm.model.feature_projection.projection.weight is (
        tower.wavlm.model.feature_projection.projection.weight
    )
    assert key.head.mlp[0].weight is not tower.head.mlp[0].weight
    assert model.moco.audio_queue.keys.shape == (9600, 512)


TINY_TOWER = yaml.safe_load(CONF.read_text())["model"]["init_args"]["audio_encoder"]["init_args"]
"""The tiny audio tower of ``tests/conf/wavbrivl.yaml``, also the ``tiny`` fixture's."""


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return WavBriVL(
        WavLMTower(**TINY_TOWER),
        OpenCLIPVisionLanguage(preset="tiny", pretrained="tiny/eval/clip.safetensors"),
        LatentDiffusionGenerator(
            preset="tiny",
            condition_dim=64,
            unet_pretrained="tiny/t2i/unet.safetensors",
            vae_pretrained="tiny/ldm/vae.safetensors",
            condition_dropout=0.0,
            num_inference_steps=3,
        ),
        CLIPTextEncoder(preset="tiny", pretrained="tiny/t2i/text_encoder.safetensors"),
        queue_size=16,
        class_names=[c.caption for c in WORLD_CLASSES],
        rerank_candidates=3,
    ).eval()


def audio(rows=2, seed=1):
    return 0.1 * torch.randn(rows, 8000, generator=torch.Generator().manual_seed(seed))


def test_moco_step_fills_the_queues_and_moves_the_key_encoder(tiny):
    batch_audio, image = audio(3), torch.rand(3, 3, 32, 32)
    features = tiny.image_features(image)
    key_before = tiny.audio_key_encoder.head.mlp[0].weight.clone()
    with torch.no_grad():
        tiny.audio_encoder.head.mlp[0].weight.add_(1.0)  # as if an optimiser step had moved it
    online = tiny.audio_encoder.head.mlp[0].weight.clone()
    pointer = int(tiny.moco.image_queue.pointer)
    losses = tiny.loss_terms(tiny.audio_encoder(batch_audio).pooled, features)
    tiny.update_queues(batch_audio, features)
    assert set(losses) == {"audio_to_image", "image_to_audio", "loss"}
    assert int(tiny.moco.image_queue.pointer) == (pointer + 3) % 16
    assert torch.allclose(tiny.moco.image_queue.keys[pointer : pointer + 3], features)
    expected = 0.99 * key_before + 0.01 * online
    assert torch.allclose(tiny.audio_key_encoder.head.mlp[0].weight, expected)
    with torch.no_grad():
        tiny.audio_encoder.head.mlp[0].weight.sub_(1.0)


def test_features_are_unit_norm_and_zero_shot_prompts_come_from_the_text_tower(tiny):
    assert torch.allclose(tiny.audio_features(audio()).norm(dim=-1), torch.ones(2))
    texts = tiny.text_features(["a photo of a blue triangle", "a photo of a magenta dome"])
    assert texts.shape == (2, 64)
    assert torch.allclose(texts.norm(dim=-1), torch.ones(2))
    # a target equal to a class prompt's embedding picks that class's prompt
    assert tiny.zero_shot_prompts(texts) == [
        "a photo of a blue triangle",
        "a photo of a magenta dome",
    ]


def test_rerank_keeps_the_candidate_with_the_highest_audio_image_score(tiny):
    waveform = audio()
    images = tiny.generate_from_audio(waveform, GenerationRequest(seeds=(5,)))
    assert images.shape == (2, 1, 3, 32, 32)
    # the candidates drawn by hand: seed 5 · 3 candidates + k, row by row
    target = tiny.generation_target(waveform)
    condition = tiny.text_encoder(tiny.zero_shot_prompts(target))
    negative = tiny.text_encoder([""])
    candidates = [
        tiny.generator.generate(condition, per_row_generators(5 * 3 + k, 2, "cpu"), negative)
        for k in range(3)
    ]
    with torch.no_grad():
        scores = torch.stack([tiny.audio_image_score(c, target) for c in candidates])
    best = scores.argmax(dim=0)
    for row in range(2):
        assert torch.allclose(images[row, 0], candidates[best[row]][row], atol=1e-6)
    # with a target that is a candidate's own embedding, that candidate wins
    chosen = torch.stack([candidates[2][0], candidates[0][1]])
    with torch.no_grad():
        picked = tiny.rerank(candidates, tiny.image_features(chosen))
    assert torch.equal(picked, chosen)


def test_guidance_at_scale_zero_equals_unguided_sampling_for_the_same_seed(tiny):
    tiny.hparams.generation = "guidance"
    tiny.hparams.score_guidance_scale = 0.0
    try:
        waveform = audio()
        guided = tiny.generate_from_audio(waveform, GenerationRequest(seeds=(3,)))[:, 0]
        target = tiny.generation_target(waveform)
        condition = tiny.text_encoder(tiny.zero_shot_prompts(target))
        negative = tiny.text_encoder([""])
        plain = tiny.generator.generate(condition, per_row_generators(3, 2, "cpu"), negative)
        assert torch.equal(guided, plain)
        tiny.hparams.score_guidance_scale = 1.0
        steered = tiny.generate_from_audio(waveform, GenerationRequest(seeds=(3,)))[:, 0]
        assert not torch.allclose(steered, plain, atol=1e-3)
    finally:
        tiny.hparams.generation = "rerank"
        tiny.hparams.score_guidance_scale = 1.0


def test_guidance_draws_under_inference_mode_as_in_a2i_test(tiny):
    """Regression: Lightning's test loop runs in inference mode, where the gradient failed."""
    tiny.hparams.generation = "guidance"
    try:
        waveform = audio()
        expected = tiny.generate_from_audio(waveform, GenerationRequest(seeds=(1,)))
        with torch.inference_mode():
            drawn = tiny.generate_from_audio(waveform, GenerationRequest(seeds=(1,)))
        assert torch.allclose(drawn, expected, atol=1e-5)
    finally:
        tiny.hparams.generation = "rerank"


def test_score_guidance_raises_the_score_it_follows(tiny):
    """Pushed towards a blue triangle's text embedding, draws of a red circle score higher on it."""
    diffusion = tiny.generator.diffusion
    target = tiny.text_features(["a photo of a blue triangle"]).expand(4, -1)
    condition = tiny.text_encoder(["a photo of a red circle"] * 4)
    negative = tiny.text_encoder([""])

    def score(images):
        return tiny.audio_image_score(images, target)

    draws = {}
    for scale in (0.0, 1.0):
        guidance = ScoreGuidance(diffusion, score, scale)
        generators = per_row_generators(0, 4, "cpu")
        draws[scale] = tiny.generator.generate(condition, generators, negative, guidance=guidance)
    with torch.no_grad():
        assert score(draws[1.0]).mean() > score(draws[0.0]).mean()


def test_prompt_replaces_the_class_prompt_and_images_join_the_target(tiny):
    waveform = audio()
    assert {"gain", "mix", "image_blend", "prompt"} <= tiny.supports
    with_prompt = tiny.generate_from_audio(
        waveform, GenerationRequest(seeds=(0,), prompt="a photo of a yellow star")
    )
    assert with_prompt.shape == (2, 1, 3, 32, 32)
    image = torch.rand(1, 3, 32, 32)
    target = tiny.generation_target(waveform, image, image_weight=1.0)
    assert torch.allclose(target, tiny.image_features(image).expand(2, -1), atol=1e-6)


def test_components_that_do_not_fit_are_refused():
    tower = WavLMTower(preset="tiny", wavlm_layers=1, embed_dim=64, clip_seconds=0.5, num_layers=1)
    with pytest.raises(ConfigError, match="text tower"):
        WavBriVL(
            WavLMTower(preset="tiny", wavlm_layers=1, embed_dim=256, clip_seconds=0.5),
            BriVLImageEncoder(preset="tiny"),
            class_names=["dog"],
        )
    with pytest.raises(ConfigError, match="together"):
        WavBriVL(
            tower,
            OpenCLIPVisionLanguage(preset="tiny"),
            text_encoder=CLIPTextEncoder(preset="tiny"),
        )
    with pytest.raises(ConfigError, match="64-d"):
        WavBriVL(tower, OpenCLIPVisionLanguage())
    alone = WavBriVL(tower, OpenCLIPVisionLanguage(preset="tiny"), loss="infonce")
    assert alone.moco is None and alone.audio_key_encoder is None and not alone.supports
    with pytest.raises(ConfigError, match="generator"):
        alone.generate_from_audio(audio(), GenerationRequest(seeds=(0,)))


@pytest.mark.slow
def test_cli_fit_test_predict_keep_queues_and_export_the_tower(tmp_path):
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    exported = tmp_path / "export" / "audio_encoder.safetensors"
    export = ["--model.init_args.export_dir", str(exported.parent)]
    main(["fit", "--config", str(CONF), *export, *logs])
    (ckpt,) = tmp_path.rglob("last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    # the trained tower, its momentum copy and both queues; no frozen tower or generator
    assert {k.split(".")[0] for k in state} == {"audio_encoder", "audio_key_encoder", "moco"}
    assert int(state["moco.audio_queue.pointer"]) == 2 * 4  # 2 steps of 4 clips
    model = WavBriVL.load_from_checkpoint(ckpt)
    assert torch.equal(model.moco.image_queue.keys, state["moco.image_queue.keys"])
    tower = WavLMTower(**TINY_TOWER, pretrained=str(exported)).eval()
    waveform = audio()
    with torch.no_grad():
        assert torch.allclose(tower(waveform).pooled, model.eval().audio_encoder(waveform).pooled)
    main(["test", "--config", str(CONF), "--ckpt_path", str(ckpt), *logs])
    out = tmp_path / "images"
    predict = ["predict", "--config", str(CONF), "--ckpt_path", str(ckpt)]
    main([*predict, "--output_dir", str(out), *logs])
    assert len(list(out.rglob("*.png"))) == 8 + 1  # the test split's 8 clips + grid


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
def test_two_process_ddp_ranks_hold_identical_queues_after_a_step(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(DDP_SCRIPT), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for key in ("audio_queue.keys", "audio_queue.pointer", "image_queue.keys"):
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert int(ranks[0]["image_queue.pointer"]) == 2 * 2 * 2  # 2 steps × 2 ranks × batch 2
    # the 8 written rows are the embeddings of 8 different clips: both ranks' batches, gathered
    similarity = ranks[0]["image_queue.keys"][:8] @ ranks[0]["image_features"].T
    best = similarity.max(dim=1)
    assert torch.allclose(best.values, torch.ones(8), atol=1e-5)
    assert len(set(best.indices.tolist())) == 8


def test_image_augmentation_draws_per_image_and_its_extremes_are_exact():
    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ImageAugmentation(0.0, grayscale_probability=0.0)(images), images)
    gray = ImageAugmentation(0.0, grayscale_probability=1.0)(images)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    torch.manual_seed(0)
    jittered = ImageAugmentation(1.0, grayscale_probability=0.0)(images[:1].expand(6, -1, -1, -1))
    assert len({round(float(image.mean()), 5) for image in jittered}) == 6  # one draw per image
    with pytest.raises(ConfigError, match="hue"):
        ImageAugmentation(hue=0.7)


def test_training_frames_are_augmented_and_a_feature_cache_is_refused(tiny, monkeypatch):
    batch = {"audio": audio(2), "image": torch.rand(2, 3, 32, 32)}
    seen = []
    monkeypatch.setattr(
        tiny, "image_augmentation", ImageAugmentation(0.0, grayscale_probability=1.0)
    )
    monkeypatch.setattr(
        tiny, "image_features", lambda image: seen.append(image) or torch.randn(2, 64)
    )
    tiny.training_image_features(batch)
    assert torch.allclose(seen[0][:, 0], seen[0][:, 2]) and not torch.equal(seen[0], batch["image"])
    tiny.cached_or_computed_image_features(batch)  # validation frames stay as they are
    assert torch.equal(seen[1], batch["image"])
    with pytest.raises(ConfigError, match="cached 'features/image'"):
        tiny.training_image_features({**batch, "features/image": torch.randn(2, 64)})
