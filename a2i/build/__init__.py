"""Dataset builders: raw videos or images become the shards that :mod:`a2i.data` reads.

Video datasets: :mod:`~a2i.build.video` decodes, :mod:`~a2i.build.frames` picks the training
frame, :mod:`~a2i.build.prepare` caches frozen features and writes :mod:`~a2i.build.shards`;
:mod:`~a2i.build.annotations` reads published clip lists and frame annotations. Images:
:mod:`~a2i.build.sonify` (Seeing Sound). A datamodule runs its builder in Lightning's
``prepare_data`` (``a2i prepare`` / ``a2i sonify`` call the same), so training only reads shards.
Builders sit below :mod:`a2i.data` and import encoders, generators and CLAP; the serving data
layer imports none of them (``tests/test_layers.py``).
"""
