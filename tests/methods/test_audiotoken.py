"""AudioToken: the Embedder's size, eqs. 7-8, what trains, token injection, save/load, the CLI."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from a2i.cli import main
from a2i.encoders.audio.beats import BEATsAudioEncoder
from a2i.encoders.text.clip_text import CLIPTextEncoder
from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.interfaces import GenerationRequest
from a2i.methods.audiotoken import (
    OFFICIAL_EMBEDDER_KEYS,
    AudioToken,
    AudioTokenEmbedder,
    classification_loss,
    l1_penalty,
    load_embedder,
)
from a2i.modules.pooling import AttentivePooling
from a2i.synth.world import WORLD_CLASSES

ROOT = Path(__file__).resolve().parents[2]


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_embedder_has_the_papers_parameter_count_at_full_size():
    with torch.device("meta"):
        model = AudioToken(
            BEATsAudioEncoder(preset="paper"),
            CLIPTextEncoder(preset="paper"),
            LatentDiffusionGenerator(preset="paper", condition_dropout=0.0),
        )
    assert model.audio_encoder.token_dim == 2304 and model.text_encoder.width == 768
    assert count(model.embedder) == 8_853_507  # AudioToken §3
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 8_853_507


def test_classification_and_l1_terms_by_hand():
    token = torch.tensor([[3.0, 4.0], [1.0, -1.0]])
    label = torch.tensor([[3.0, 4.0], [1.0, 1.0]])  # cosines 1 and 0
    assert float(classification_loss(token, label)) == pytest.approx((0.0 + 1.0) / 2)
    # The official mean of |e_audio| over batch and dimensions, not the per-row sum (4.5).
    assert float(l1_penalty(token)) == pytest.approx((3.0 + 4.0 + 1.0 + 1.0) / 4)


def test_class_targets_of_the_shipped_text_encoder_tell_the_world_classes_apart():
    encoder = CLIPTextEncoder(
        preset="tiny", pretrained="tiny/t2i/text_encoder.safetensors", freeze=True
    )
    with torch.no_grad():
        targets = F.normalize(encoder.pooled_label([c.caption for c in WORLD_CLASSES]), dim=-1)
    cosine = targets @ targets.T
    mutual = cosine[~torch.eye(len(cosine), dtype=torch.bool)]
    assert len(cosine) == 10 and float(mutual.mean()) < 0.2  # output states: 0.956


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return AudioToken(
        BEATsAudioEncoder(preset="tiny", clip_seconds=1.0),
        CLIPTextEncoder(preset="tiny"),
        LatentDiffusionGenerator(
            preset="tiny", condition_dim=64, condition_dropout=0.0, num_inference_steps=2
        ),
        lambda_cl=0.01,
    )


def batch(size=2):
    generator = torch.Generator().manual_seed(1)
    return {
        "audio": 0.1 * torch.randn(size, 16000, generator=generator),
        "image": torch.rand(size, 3, 32, 32, generator=generator),
        "caption": ["a red circle", "a blue triangle"][:size],
    }


def test_only_the_embedder_gets_gradients_and_enters_the_optimizer(tiny):
    tiny.zero_grad(set_to_none=True)
    losses = tiny.step(batch(), "train")
    assert set(losses) == {"ldm", "l1", "cl", "loss"}
    losses["loss"].backward()
    with_grad = {n.split(".")[0] for n, p in tiny.named_parameters() if p.grad is not None}
    assert with_grad == {"embedder"}
    optimizer = tiny.configure_optimizers()
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in tiny.embedder.parameters()}


def test_injected_token_changes_the_text_encoder_only_from_its_position(tiny):
    encoder = tiny.text_encoder
    prompt = ["A photo of a <audio>"]
    position = int((encoder.tokenize(prompt)[0] == encoder.placeholder_id).nonzero())
    first = encoder(prompt, torch.zeros(1, encoder.width))
    second = encoder(prompt, torch.ones(1, encoder.width))
    assert torch.equal(first[:, :position], second[:, :position])  # causal: earlier tokens fixed
    assert not torch.allclose(first[:, position], second[:, position])
    plain = encoder(["A photo of a"])
    assert torch.equal(plain[:, :position], first[:, :position])
    with pytest.raises(ConfigError, match="placeholder"):
        encoder(["A photo of a dog"], torch.zeros(1, encoder.width))


def test_saved_embedder_reloads_to_identical_images(tiny, tmp_path):
    audio = batch()["audio"]
    before = tiny.generate_from_audio(audio, GenerationRequest(seeds=(3,)))
    tiny.export_dir = str(tmp_path)
    tiny.on_fit_end()
    path = tmp_path / "embedder.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedder.safetensors"]
    assert path.stat().st_size < 2_000_000
    with pytest.raises(FileExistsError):
        tiny.on_fit_end()
    reloaded = AudioToken(
        tiny.audio_encoder,
        tiny.text_encoder,
        tiny.generator,
        lambda_cl=0.01,
        embedder_pretrained=str(path),
    )
    assert torch.equal(reloaded.generate_from_audio(audio, GenerationRequest(seeds=(3,))), before)
    assert before.shape == (2, 1, 3, 32, 32)


def test_prompt_without_placeholder_is_refused():
    with pytest.raises(ConfigError, match="placeholder"):
        AudioToken(
            BEATsAudioEncoder(preset="tiny", clip_seconds=1.0),
            CLIPTextEncoder(preset="tiny"),
            LatentDiffusionGenerator(preset="tiny", condition_dim=64),
            prompt="A photo of a dog",
        )


@pytest.mark.slow
def test_cli_fit_test_predict_on_the_tiny_config(tmp_path):
    config = ROOT / "tests" / "conf" / "audiotoken.yaml"
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    exported = tmp_path / "export" / "embedder.safetensors"
    export = ["--model.init_args.export_dir", str(exported.parent)]
    main(["fit", "--config", str(config), *export, *logs])
    assert exported.is_file()
    (ckpt,) = tmp_path.rglob("last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert {k.split(".")[0] for k in state} == {"embedder"}
    main(["test", "--config", str(config), "--ckpt_path", str(ckpt), *logs])
    out = tmp_path / "images"
    main(
        [
            "predict",
            "--config",
            str(config),
            "--ckpt_path",
            str(ckpt),
            "--output_dir",
            str(out),
            *logs,
        ]
    )
    assert len(list(out.rglob("*.png"))) == 8 + 1  # the test split's 8 clips + grid


def official_embedder_state(audio_dim, text_dim, generator):
    """The official FGAEmbedder's state dict (guyyariv/AudioToken embedder.py, FGA/atten.py)."""
    shapes = {
        "fc1.weight": (audio_dim, audio_dim),
        "fc1.bias": (audio_dim,),
        "fc2.weight": (text_dim, audio_dim),
        "fc2.bias": (text_dim,),
        "fga.un_models.0.embed.weight": (text_dim, text_dim, 1),
        "fga.un_models.0.embed.bias": (text_dim,),
        "fga.un_models.0.feature_reduce.weight": (1, text_dim, 1),
        "fga.un_models.0.feature_reduce.bias": (1,),
        "fga.pp_models.0.embed_X.weight": (text_dim, text_dim, 1),
        "fga.pp_models.0.embed_X.bias": (text_dim,),
        "fga.pp_models.0.embed_Y.weight": (text_dim, text_dim, 1),
        "fga.pp_models.0.embed_Y.bias": (text_dim,),
        "fga.reduce_potentials.0.weight": (1, 2, 1),
    }
    return {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}


def official_forward(state, audio):
    """FGAEmbedder.forward without its dropout, written from the official modules."""
    hidden = F.gelu(F.linear(audio, state["fc1.weight"], state["fc1.bias"]))
    x = F.linear(hidden, state["fc2.weight"], state["fc2.bias"])
    channels = x.transpose(1, 2)
    un = "fga.un_models.0."
    hidden = F.relu(F.conv1d(channels, state[un + "embed.weight"], state[un + "embed.bias"]))
    unary = F.conv1d(hidden, state[un + "feature_reduce.weight"], state[un + "feature_reduce.bias"])
    pair = "fga.pp_models.0.embed_"
    queries = F.normalize(F.conv1d(channels, state[pair + "X.weight"], state[pair + "X.bias"]))
    keys = F.normalize(F.conv1d(channels, state[pair + "Y.weight"], state[pair + "Y.bias"]))
    pairwise = queries.transpose(1, 2).bmm(keys).mean(dim=2)[:, None]
    merged = torch.cat([unary, pairwise], dim=1)
    weights = F.conv1d(merged, state["fga.reduce_potentials.0.weight"])[:, 0].softmax(dim=1)
    return channels.bmm(weights[..., None])[..., 0]


def test_official_embedder_layout_has_the_papers_parameter_count():
    with torch.device("meta"):
        state = official_embedder_state(2304, 768, None)
    assert sum(tensor.numel() for tensor in state.values()) == 8_853_507  # §3


def test_official_embedder_weights_load_into_the_right_parameters(tmp_path):
    state = official_embedder_state(12, 8, torch.Generator().manual_seed(0))
    path = tmp_path / "embedder_learned_embeds.bin"
    torch.save(state, path)
    embedder = AudioTokenEmbedder(12, 8)
    load_embedder(embedder, str(path), "AudioToken.embedder_pretrained")
    ours = embedder.state_dict()
    for official, a2i in OFFICIAL_EMBEDDER_KEYS.items():
        assert torch.equal(ours[a2i], state[official]), official
    assert len(OFFICIAL_EMBEDDER_KEYS) == len(ours)
    audio = torch.randn(2, 7, 12)
    torch.testing.assert_close(embedder(audio), official_forward(state, audio))


def test_wrong_or_missing_official_embedder_tensors_are_named(tmp_path):
    state = official_embedder_state(12, 8, torch.Generator().manual_seed(0))
    path = tmp_path / "embedder_learned_embeds.bin"
    torch.save({k: v for k, v in state.items() if k != "fga.pp_models.0.embed_Y.bias"}, path)
    with pytest.raises(ConfigError, match=r"missing: fga\.pp_models\.0\.embed_Y\.bias"):
        load_embedder(AudioTokenEmbedder(12, 8), str(path), "AudioToken.embedder_pretrained")
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"shape: fc1\.weight \(12, 12\) \(expected \(6, 6\)\)"):
        load_embedder(AudioTokenEmbedder(6, 8), str(path), "AudioToken.embedder_pretrained")
    with pytest.raises(
        CheckpointNotFoundError, match="AudioToken/raw/master/output/embedder_learned_embeds"
    ):
        load_embedder(
            AudioTokenEmbedder(12, 8),
            str(tmp_path / "missing" / "embedder_learned_embeds.bin"),
            "AudioToken.embedder_pretrained",
        )


def test_pooling_dropout_is_off_by_default_and_on_at_inference_when_set():
    torch.manual_seed(0)
    tokens = torch.randn(2, 5, 4)
    plain = AttentivePooling(4).eval()
    assert torch.equal(plain(tokens), plain(tokens))
    official = AttentivePooling(4, dropout=0.5).eval()  # the official code's F.dropout
    official.load_state_dict(plain.state_dict())  # same keys as without dropout
    assert not torch.equal(official(tokens), official(tokens))


def test_inference_prompt_is_used_when_no_prompt_is_given(tiny):
    official = "a photo of <audio>, 4k, high resolution"
    model = AudioToken(
        tiny.audio_encoder,
        tiny.text_encoder,
        tiny.generator,
        inference_prompt=official,
    )
    model.embedder.load_state_dict(tiny.embedder.state_dict())
    audio = batch(1)["audio"]
    assert torch.equal(
        model.generate_from_audio(audio, GenerationRequest(seeds=(0,))),
        tiny.generate_from_audio(audio, GenerationRequest(seeds=(0,), prompt=official)),
    )
    assert model.hparams.prompt == "A photo of a <audio>"  # training keeps the paper's prompt
    with pytest.raises(ConfigError, match="inference_prompt"):
        AudioToken(tiny.audio_encoder, tiny.text_encoder, tiny.generator, inference_prompt="4k")


def test_inference_hears_the_official_10_s_while_training_stays_on_the_encoder_clip(tiny, tmp_path):
    from a2i.pipelines import AudioToImagePipeline

    model = AudioToken(
        tiny.audio_encoder, tiny.text_encoder, tiny.generator, inference_clip_seconds=2.0
    )
    model.embedder.load_state_dict(tiny.embedder.state_dict())
    assert (model.clip_seconds, model.training_clip_seconds) == (2.0, 1.0)
    generator = torch.Generator().manual_seed(2)
    first, second = 0.1 * torch.randn(2, 16000, generator=generator)
    heard = AudioToImagePipeline(model).read(torch.cat([first, second]))[0]
    assert heard.shape == (32000,)  # the pipeline reads 2 s, not the encoder's 1 s
    longer = model.audio_token(torch.cat([first, second])[None])
    assert not torch.allclose(longer, model.audio_token(torch.cat([first, first])[None]))

    class TrainingData:
        sample_rate, clip_seconds = 16000, 1.0

    model.check_datamodule(TrainingData())  # data at the encoder's clip is accepted
    TrainingData.clip_seconds = 2.0
    with pytest.raises(ConfigError, match="clip_seconds"):
        model.check_datamodule(TrainingData())


def test_inference_clip_needs_an_encoder_that_takes_any_length(tiny):
    encoder = BEATsAudioEncoder(preset="tiny", clip_seconds=1.0)
    encoder.any_length = False  # as an encoder with a fixed position table (AST)
    with pytest.raises(ConfigError, match="inference_clip_seconds"):
        AudioToken(encoder, tiny.text_encoder, tiny.generator, inference_clip_seconds=10.0)
