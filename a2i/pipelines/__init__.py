"""Inference without Lightning: one pipeline for every audio-to-image method."""

from a2i.pipelines.audio_to_image import AudioToImageOutput, AudioToImagePipeline

__all__ = ["AudioToImageOutput", "AudioToImagePipeline"]
