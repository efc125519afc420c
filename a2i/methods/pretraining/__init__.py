"""Training the parts the methods start from: generators, VAEs, text-to-image models, audio classifiers.

Sound2Vision §3 trains its generator on an image-only dataset, conditioned on the features of a
frozen, self-supervised image encoder (§3.2: SwAV ResNet-50 + IC-GAN; §6.1: ViT + LDM); the audio
encoder comes later (stage 2, :mod:`a2i.methods.sound2vision`). The papers start from published
stage-1 weights. In the synthetic world a2i trains them itself: with ``train_image_encoder=True``
the tiny encoder learns jointly with the generator (an autoencoder whose bottleneck is the
conditioning space), then both are exported as safetensors and frozen for stage 2.

AudioToken starts from a published text-to-image LDM and a published audio classifier; the world's
tiny ones come from :class:`TextToImagePretraining` and :class:`AudioClassifierPretraining` (also
Seeing Sound's tiny PixArt and AST). Seeing Sound's optional projector pre-training (App. A.11) is
:class:`AudioProjectorPretraining`.

Every trainer takes :class:`~a2i.methods.base.A2IMethod`'s ``export_dir`` and lists what it writes
in :meth:`~a2i.methods.base.A2IMethod.trained_parts`; the base class writes the files.
"""

from a2i.methods.pretraining.audio_classifier import AudioClassifierPretraining
from a2i.methods.pretraining.audio_projector import AudioProjectorPretraining
from a2i.methods.pretraining.autoencoder import AutoencoderPretraining
from a2i.methods.pretraining.generator import GeneratorPretraining
from a2i.methods.pretraining.text_to_image import TextToImagePretraining

__all__ = [
    "AudioClassifierPretraining",
    "AudioProjectorPretraining",
    "AutoencoderPretraining",
    "GeneratorPretraining",
    "TextToImagePretraining",
]
