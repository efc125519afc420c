"""Seeing Sound's sonification of image collections (§3, A.1-A.9): concepts, pool, retrieval, mixing.

:mod:`~a2i.build.sonify.images` (SAM / folder), :mod:`~a2i.build.sonify.concepts` and
:mod:`~a2i.build.sonify.vlm` (sounding concepts, the A.2 filter), :mod:`~a2i.build.sonify.pool`
and :mod:`~a2i.build.sonify.pool_cache` (the audio pool, chunked and embedded once),
:mod:`~a2i.build.sonify.retrieval` (Algorithm 1), :mod:`~a2i.build.sonify.mixing` (LUFS mixing and
recipes) and :mod:`~a2i.build.sonify.build` (the resumable run).
:class:`~a2i.data.sonify.datamodule.SonifiedImagesDataModule` runs it in ``prepare_data`` and
serves the result; ``a2i sonify`` runs it from the command line.
"""
