"""Seeing Sound's sonification of image collections (§3, A.1-A.9): concepts, pool, retrieval, mixing.

:mod:`~a2i.data.sonify.images` (SAM / folder), :mod:`~a2i.data.sonify.concepts` and
:mod:`~a2i.data.sonify.vlm` (sounding concepts, the A.2 filter), :mod:`~a2i.data.sonify.pool`
and :mod:`~a2i.data.sonify.pool_cache` (the audio pool, chunked and embedded once),
:mod:`~a2i.data.sonify.retrieval` (Algorithm 1), :mod:`~a2i.data.sonify.mixing` (LUFS mixing and
recipes), :mod:`~a2i.data.sonify.build` (the resumable run) and
:mod:`~a2i.data.sonify.datamodule` (``SonifiedImagesDataModule``); ``a2i sonify`` runs it.
"""
