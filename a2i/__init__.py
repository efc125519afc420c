"""a2i: audio-to-image generation."""

__version__ = "0.1.0"
