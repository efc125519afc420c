"""Lightning callbacks shared by every method."""

from a2i.callbacks.image_logger import ImageLogger
from a2i.callbacks.prediction_writer import ImageFolderWriter

__all__ = ["ImageFolderWriter", "ImageLogger"]
