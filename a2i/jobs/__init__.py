"""The long jobs, run on the processes Lightning launches: predict, embed, prepare and sonify.

:mod:`~a2i.jobs.folders` turns a folder of sounds into images or embeddings on a trainer's ranks
(``a2i predict``/``a2i embed``, or Python with a :class:`lightning.Trainer`);
:mod:`~a2i.jobs.ranks` runs a dataset builder on ranks Lightning Fabric launches (``a2i prepare``,
``a2i sonify``). The commands only parse options and call these.
"""
