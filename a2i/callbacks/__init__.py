"""Lightning callbacks shared by every method."""

from a2i.callbacks.image_logger import ImageLogger

__all__ = ["ImageLogger"]
