"""Seeing Sound: what trains, AST's padding mask, the null condition, save/load, the CLI."""

from pathlib import Path

import pytest
import torch
import yaml

from a2i.audio.io import fit_length, write_audio
from a2i.build.prepare import LatentFeature
from a2i.build.sonify.features import AudioTokensFeature
from a2i.cli import main
from a2i.encoders.audio.ast import ASTAudioEncoder
from a2i.encoders.text.clip_text import CLIPTextEncoder
from a2i.errors import ConfigError
from a2i.generators.pixart import PixArtGenerator
from a2i.interfaces import GenerationRequest
from a2i.methods.pretraining import AudioProjectorPretraining
from a2i.methods.seeing_sound import CACHED_AUDIO_TOKENS, SeeingSound
from a2i.pipelines import AudioToImagePipeline
from a2i.pipelines.loading import build_method

ROOT = Path(__file__).resolve().parents[2]
CLIP = 32000  # 2 s at 16 kHz: half of the tiny AST's 4 s, as 5 s of AST's 10.24 s


def build(train="projector", seed=0, **kwargs):
    torch.manual_seed(seed)
    return SeeingSound(
        ASTAudioEncoder(preset="tiny"),
        PixArtGenerator(preset="tiny", num_inference_steps=2),
        clip_seconds=2.0,
        train=train,
        **kwargs,
    )


def batch(size=2):
    generator = torch.Generator().manual_seed(1)
    return {
        "audio": 0.1 * torch.randn(size, CLIP, generator=generator),
        "image": torch.rand(size, 3, 32, 32, generator=generator),
    }


def step(model):
    optimizer = model.configure_optimizers()
    model.step(batch(), "train")["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_paper_model_trains_pixart_with_an_audio_projector_on_ast_tokens():
    with torch.device("meta"):
        model = SeeingSound(ASTAudioEncoder(preset="paper"), PixArtGenerator(preset="paper"))
    assert model.audio_encoder.token_count == 1214  # 2 class tokens + 12 × 101 patches
    projector = model.trained.parts["transformer"].caption_projection
    assert (projector.linear_1.in_features, projector.linear_1.out_features) == (768, 1152)
    text_projection = 4096 * 1152 + 1152 + 1152 * 1152 + 1152
    audio_projection = 768 * 1152 + 1152 + 1152 * 1152 + 1152
    transformer = 610_856_096 - text_projection + audio_projection
    trained = sum(p.numel() for p in model.trained.parameters())
    assert trained == transformer == 607_022_240  # the null sequence is a buffer, as PixArt-α's
    assert (model.hparams.lr, model.hparams.weight_decay, model.clip_seconds) == (3.16e-5, 3e-2, 5)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trained


def test_the_results_page_quotes_the_audio_models_measured_parameter_counts():
    """610,856,096 is PixArt-α XL/2-512 with its 4096-d T5 caption projection; the audio model
    after the swap is smaller, and a learned null sequence trains 1214 × 768 more."""
    with torch.device("meta"):
        model = SeeingSound(
            ASTAudioEncoder(preset="paper"),
            PixArtGenerator(preset="paper"),
            null_condition="learned",
        )
    transformer = sum(p.numel() for p in model.generator.transformer.parameters())
    trained = sum(p.numel() for p in model.trained.parameters())
    assert (transformer, trained) == (607_022_240, 607_954_592)
    row = next(
        line
        for line in (ROOT / "docs" / "results.md").read_text().splitlines()
        if line.startswith("| Seeing Sound (sonified PixArt)")
    )
    assert "607,022,240" in row and "607,954,592" in row


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ("projector", {"caption_projection"}),
        ("projector_cross_attention", {"caption_projection", "attn2"}),
    ],
)
def test_only_the_configured_parts_train_and_the_rest_of_pixart_is_untouched(train, expected):
    model = build(train)
    transformer = model.generator.transformer
    trainable = {
        "attn2" if ".attn2." in name else name.split(".")[0]
        for name, p in transformer.named_parameters()
        if p.requires_grad
    }
    assert trainable == expected
    assert not any(p.requires_grad for p in model.generator.vae.parameters())
    assert not any(p.requires_grad for p in model.audio_encoder.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step(model)
    after = model.state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    prefix = "generator.diffusion.denoiser.transformer."
    parts = {
        "attn2" if ".attn2." in k else k[len(prefix) :].split(".")[0]
        for k in changed
        if k.startswith(prefix)
    }
    assert parts == expected  # every other PixArt weight, the VAE and AST are untouched
    assert not any(k.startswith(("audio_encoder.", "generator.diffusion.vae.")) for k in changed)
    assert "trained.null_tokens" not in changed  # PixArt-α's null: a buffer, never trained


def test_the_null_sequence_is_pixarts_untrained_buffer_unless_learned_is_asked():
    """PixArt-α registers its null caption ``y_embedding`` as a buffer: saved, not trained."""
    for null_condition, trained in (("fixed", False), ("learned", True)):
        model = build(null_condition=null_condition)
        assert "trained.null_tokens" in model.state_dict()  # checkpoints and exports hold it
        learned = any(p is model.trained.null_tokens for p in model.trained.parameters())
        assert learned is trained
        before = model.trained.null_tokens.detach().clone()
        model.hparams.condition_dropout = 0.99  # (nearly) every row trains on the null
        step(model)
        assert (not torch.equal(model.trained.null_tokens, before)) is trained


def test_all_trains_the_whole_transformer_but_not_the_vae_or_ast():
    model = build("all")
    assert all(p.requires_grad for p in model.generator.transformer.parameters())
    assert not any(p.requires_grad for p in model.generator.vae.parameters())
    optimized = {id(p) for g in model.configure_optimizers().param_groups for p in g["params"]}
    assert optimized == {id(p) for p in model.trained.parameters()}


def test_padding_mask_matches_the_patches_that_see_audio():
    encoder = ASTAudioEncoder(preset="tiny")
    mask = encoder.heard_tokens(CLIP)
    assert mask.shape == (encoder.token_count,) == (102,)
    # AST's own patch embedding over an fbank that is 1 where the clip has frames, 0 in padding
    fbank = encoder.front_end(torch.zeros(1, CLIP))
    heard = torch.zeros_like(fbank)
    frames = 1 + (CLIP - 400) // 160
    heard[:, :frames] = 1.0
    patches = encoder.model.embeddings.patch_embeddings.projection
    with torch.no_grad():
        coverage = torch.nn.functional.conv2d(
            heard.unsqueeze(1).transpose(2, 3),
            torch.ones_like(patches.weight[:1, :1]),
            stride=patches.stride,
        ).flatten(1)
    assert torch.equal(mask[2:], coverage[0] > 0)
    assert 0 < int(mask.sum()) < len(mask)
    assert bool(encoder.heard_tokens(4 * 16000).all())  # a full clip has no padding


def test_padding_tokens_do_not_change_the_images():
    model = build().eval()
    condition = model.condition(batch()["audio"])
    assert condition.mask.shape == condition.tokens.shape[:2]
    changed = condition.tokens.clone()
    changed[:, ~condition.mask[0]] = 50.0
    seeds = [torch.Generator().manual_seed(0) for _ in range(2)]
    first = model.generator.generate(condition, seeds, model.null(condition))
    seeds = [torch.Generator().manual_seed(0) for _ in range(2)]
    second = model.generator.generate(
        type(condition)(changed, condition.mask), seeds, model.null(condition)
    )
    torch.testing.assert_close(first, second, rtol=0, atol=1e-5)


def test_guidance_scale_one_ignores_the_null_condition():
    model = build().eval()
    audio = batch()["audio"]
    plain = model.generate_from_audio(audio, GenerationRequest(seeds=(0,), guidance_scale=1.0))
    guided = model.generate_from_audio(audio, GenerationRequest(seeds=(0,), guidance_scale=4.5))
    with torch.no_grad():
        model.trained.null_tokens.mul_(-3.0)
    assert torch.equal(
        model.generate_from_audio(audio, GenerationRequest(seeds=(0,), guidance_scale=1.0)), plain
    )
    assert not torch.allclose(
        model.generate_from_audio(audio, GenerationRequest(seeds=(0,), guidance_scale=4.5)), guided
    )


def test_zero_null_condition_has_no_learned_tokens():
    model = build(null_condition="zero")
    assert model.trained.null_tokens is None
    condition = model.condition(batch()["audio"])
    assert torch.equal(model.null(condition).tokens, torch.zeros_like(condition.tokens))


def test_saved_trained_parts_reload_to_identical_images(tmp_path):
    model = build("projector_cross_attention")
    step(model)
    model.eval()
    audio = batch()["audio"]
    before = model.generate_from_audio(audio, GenerationRequest(seeds=(3,)))
    model.export_dir = str(tmp_path)
    model.on_fit_end()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trained.safetensors"]
    # the same frozen parts (same seed) with the trained parts from the export folder
    reloaded = build("projector_cross_attention", pretrained=str(tmp_path)).eval()
    assert torch.equal(reloaded.generate_from_audio(audio, GenerationRequest(seeds=(3,))), before)
    untrained = build("projector_cross_attention").eval()
    assert not torch.equal(
        untrained.generate_from_audio(audio, GenerationRequest(seeds=(3,))), before
    )


def test_mixing_is_a_waveform_sum_before_ast():
    model = build().eval()
    assert {"gain", "mix", "guidance_scale", "num_inference_steps"} <= model.supports
    pipe = AudioToImagePipeline(model)
    first, second = batch()["audio"]
    mixed = pipe([first], mix_with=[second], mix_gains_db=[-6.0]).images[0]
    summed = model.generate_from_audio(
        (first + 10 ** (-6 / 20) * second)[None], GenerationRequest()
    )[0]
    torch.testing.assert_close(mixed, summed)
    with pytest.raises(ConfigError, match="image_blend"):
        pipe([first], image=torch.rand(3, 32, 32))


def test_inconsistent_settings_are_refused():
    with pytest.raises(ConfigError, match=r"condition_dropout to 0\.0"):
        SeeingSound(
            ASTAudioEncoder(preset="tiny"),
            PixArtGenerator(preset="tiny", condition_dropout=0.1),
            clip_seconds=2.0,
        )
    with pytest.raises(ConfigError, match="never trained on"):
        build(condition_dropout=0.0)
    with pytest.raises(ConfigError, match=r"clip_seconds 5\.0"):
        SeeingSound(ASTAudioEncoder(preset="tiny"), PixArtGenerator(preset="tiny"))


@pytest.mark.slow
def test_cli_fit_test_predict_on_the_tiny_config(tmp_path, capsys):
    config = ROOT / "tests" / "conf" / "seeing_sound.yaml"
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    exported = tmp_path / "export" / "trained.safetensors"
    main(
        [
            "fit",
            "--config",
            str(config),
            "--model.init_args.export_dir",
            str(exported.parent),
            *logs,
        ]
    )
    assert exported.is_file()
    (ckpt,) = tmp_path.rglob("last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert {k.split(".")[0] for k in state} == {"trained"}
    main(["test", "--config", str(config), "--ckpt_path", str(ckpt), *logs])
    predict = ["predict", "--config", str(config), *logs]
    out = tmp_path / "images"
    main([*predict, "--ckpt_path", str(ckpt), "--output_dir", str(out)])
    assert len(list(out.rglob("*.png"))) == 8 + 1  # the test split's 8 clips + grid
    from_export = tmp_path / "from_export"
    weights = ["--model.init_args.pretrained", str(exported.parent)]
    main([*predict, *weights, "--output_dir", str(from_export)])
    assert len(list(from_export.rglob("*.png"))) == 8 + 1
    with pytest.raises(SystemExit) as refused:  # neither: the projector would be untrained
        main([*predict, "--output_dir", str(tmp_path / "refused")])
    assert refused.value.code == 2
    assert "trained" in capsys.readouterr().err


def test_tiny_text_to_image_pixart_is_the_starting_point_of_the_world_model(tmp_path):
    """configs/tiny/seeing_sound_t2i.yaml trains text encoder + DiT; the DiT file loads back."""
    config = ROOT / "configs" / "tiny" / "seeing_sound_t2i.yaml"
    data = '{"batch_size": 4, "train_size": 8, "val_size": 4, "test_size": 4}'
    main(
        [
            "fit",
            "--config",
            str(config),
            "--data.init_args",
            data,
            "--trainer.max_steps",
            "2",
            "--trainer.limit_val_batches",
            "0",
            "--model.init_args.export_dir",
            str(tmp_path / "pixart"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    assert sorted(p.name for p in (tmp_path / "pixart").iterdir()) == [
        "text_encoder.safetensors",
        "transformer.safetensors",
    ]
    generator = PixArtGenerator(
        preset="tiny", transformer_pretrained=str(tmp_path / "pixart" / "transformer.safetensors")
    )
    assert generator.condition_dim == 64  # the text width, until Seeing Sound swaps it


def test_contrastive_projector_pretraining_starts_seeing_sound(tmp_path):
    """App. A.11: only the new projector trains; Seeing Sound loads it in place of random init."""
    torch.manual_seed(0)
    stage1 = AudioProjectorPretraining(
        ASTAudioEncoder(preset="tiny"),
        CLIPTextEncoder(preset="tiny"),
        PixArtGenerator(preset="tiny"),
        caption_key="caption",
        export_dir=str(tmp_path),
    )
    text_projection = {k: v.clone() for k, v in stage1.generator.state_dict().items()}
    optimizer = stage1.configure_optimizers()
    loss = stage1.step({**batch(), "caption": ["a red circle", "a blue triangle"]}, "train")["loss"]
    loss.backward()
    optimizer.step()
    assert all(torch.equal(v, text_projection[k]) for k, v in stage1.generator.state_dict().items())
    assert {n.split(".")[0] for n, p in stage1.named_parameters() if p.grad is not None} == {
        "projector"
    }
    stage1.on_fit_end()
    model = build(projector_pretrained=str(tmp_path / "projector.safetensors"))
    for key, value in stage1.projector.state_dict().items():
        assert torch.equal(model.generator.denoiser.projector.state_dict()[key], value)


def test_cached_ast_sequences_and_latents_replace_both_models():
    model = build()
    clips = batch()
    with torch.no_grad():
        tokens = model.audio_encoder(clips["audio"]).tokens
        latents = model.generator.vae.encode(clips["image"])
    torch.manual_seed(5)
    computed = model.generator.training_losses(None, model.condition(clips["audio"]), latents)
    cached = {"key": ["a", "b"], "features/audio_tokens": tokens, "features/latents": latents}
    torch.manual_seed(5)
    assert torch.equal(model.step(cached, "val")["loss"], computed["loss"])
    with pytest.raises(ConfigError, match="audio_tokens"):
        model.step({**cached, "features/audio_tokens": tokens[:, :5]}, "val")
    with pytest.raises(ConfigError, match="latents"):
        model.step({**cached, "features/latents": latents[:, :2]}, "val")


def test_cached_latents_train_the_same_posterior_draws_as_encoding_on_the_fly(caplog):
    """Regression: the cache held posterior means while training on images samples from the
    posterior, so the cached and on-the-fly arms trained different objectives."""
    model = build()
    clips = batch()
    feature = LatentFeature(model.generator.vae, image_size=32)
    with torch.no_grad():
        cached = feature.compute(clips["image"], clips["audio"])
    torch.manual_seed(5)
    on_the_fly = model.step(clips, "val")["loss"]
    torch.manual_seed(5)
    from_cache = model.step({"audio": clips["audio"], "features/latents": cached}, "val")["loss"]
    torch.testing.assert_close(from_cache, on_the_fly)
    means = cached[:, 0]  # a cache written before the fix: posterior means only
    with caplog.at_level("WARNING", logger="a2i.methods.seeing_sound"):
        model.step({"audio": clips["audio"], "features/latents": means}, "val")
        model.step({"audio": clips["audio"], "features/latents": means}, "val")
    assert len(caplog.records) == 1 and "posterior means" in caplog.records[0].getMessage()


@pytest.fixture(scope="module")
def shipped_ast_model():
    torch.manual_seed(0)
    ast = ASTAudioEncoder(preset="tiny", pretrained="tiny/ast/audio_encoder.safetensors")
    return SeeingSound(ast, PixArtGenerator(preset="tiny"), clip_seconds=2.0).eval()


@pytest.mark.parametrize("seconds", [0.7, 3.0, 6.5])  # < the clip, < AST's 4 s window, > both
def test_cache_training_and_predict_give_the_same_ast_tokens(shipped_ast_model, seconds, tmp_path):
    """Regression: the shards' cache zero-padded the waveform to AST's whole window, whereas
    training and ``a2i predict`` feed the model's clip and let AST zero-pad the fbank."""
    model = shipped_ast_model
    audio = 0.1 * torch.randn(round(seconds * 16000), generator=torch.Generator().manual_seed(2))
    feature = AudioTokensFeature(model.audio_encoder, clip_seconds=model.clip_seconds)
    cached = feature.compute(torch.zeros(1, 3, 16, 16), audio[None])
    samples = round(model.clip_seconds * model.sample_rate)
    # what the shard datasets deliver (validation and test crop from the start)
    trained = model.cached_or_computed_condition(
        {"audio": fit_length(audio, samples, random_crop=False)[None]}
    )
    from_cache = model.cached_or_computed_condition({CACHED_AUDIO_TOKENS: cached})
    path = write_audio(tmp_path / "clip.wav", audio, model.sample_rate, subtype="FLOAT")
    predicted = model.condition(AudioToImagePipeline(model).read(path)[0][None])
    for condition in (from_cache, predicted):
        assert torch.equal(condition.tokens, trained.tokens)
        assert torch.equal(condition.mask, trained.mask)


def test_world_config_loads_the_shipped_tiny_weights():
    """configs/tiny/seeing_sound.yaml starts from the shipped tiny PixArt and AST."""
    config = yaml.safe_load((ROOT / "configs" / "tiny" / "seeing_sound.yaml").read_text())
    model = build_method(config["model"], seed=0)
    shipped = PixArtGenerator(
        preset="tiny", transformer_pretrained="tiny/pixart/transformer.safetensors"
    ).transformer.state_dict()
    own = model.generator.transformer.state_dict()
    untouched = [k for k in shipped if not k.startswith("caption_projection.")]
    assert all(torch.equal(own[k], shipped[k]) for k in untouched)
    assert model.generator.condition_dim == model.audio_encoder.token_dim == 64
