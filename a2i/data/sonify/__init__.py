"""Sonified images served as a training set (Seeing Sound §3); :mod:`a2i.build.sonify` builds them."""
