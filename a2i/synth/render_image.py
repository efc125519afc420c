"""Anti-aliased procedural images of the synthetic world: a background and up to two objects.

Shapes are signed distance functions in a local frame where the object's bounding square is
``[-1, 1]²`` and every shape touches that square on at least two opposite sides, so an object's
*size* (the side of its bounding square, as a fraction of the image side) is also the longest
extent a judge can measure. Coverage is the distance to the edge in pixels clipped to a one-pixel
ramp, which anti-aliases at any resolution: a 32×32 and a 64×64 render of one scene hold the same
geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

ShapeName = Literal[
    "circle",
    "square",
    "triangle",
    "diamond",
    "cross",
    "bar",
    "pillar",
    "hourglass",
    "dome",
    "star",
]

OUTDOOR_COLOURS = ((0.53, 0.77, 0.95), (0.26, 0.60, 0.22))
"""Sky and grass: the background of a dry (outdoor) scene."""
INDOOR_COLOURS = ((0.58, 0.58, 0.58), (0.45, 0.30, 0.17))
"""Grey wall and brown floor: the background of a reverberant (indoor) scene."""

_CROSS_ARM = 0.36
_BAR_HALF_HEIGHT = 0.4
_HOURGLASS_HALF_WIDTH = 0.8
# A regular five-pointed star of outer radius R spans 2·R·sin 72° wide and R(1 + cos 36°) high;
# R = 1 / sin 72° makes it exactly 2 wide, and shifting it down by R(1 - cos 36°)/2 centres it.
_STAR_RADIUS = 1.0 / np.sin(np.radians(72.0))
_STAR_SHIFT = _STAR_RADIUS * (1.0 - np.cos(np.radians(36.0))) / 2.0
_STAR_INNER = 0.38196601  # inner/outer radius ratio of a regular pentagram


@dataclass(frozen=True)
class ObjectLayout:
    """Where and how one object is drawn (image coordinates in ``[0, 1]``, y pointing down).

    Attributes:
        shape: Shape name.
        colour: RGB in ``[0, 1]``.
        centre: ``(x, y)`` centre of the bounding square.
        size: Side of the bounding square as a fraction of the image side.
    """

    shape: ShapeName
    colour: tuple[float, float, float]
    centre: tuple[float, float]
    size: float


@dataclass(frozen=True)
class SceneLayers:
    """The separable parts of a rendered image (what the judge is trained to recover).

    Attributes:
        background: ``(3, H, W)`` background alone.
        ground: ``(H, W)`` coverage of the lower region (grass or floor); the rest is sky or wall.
        objects: ``(S, H, W)`` coverage of each object, in scene source order.
        colours: ``(S, 3)`` object colours.
    """

    background: np.ndarray
    ground: np.ndarray
    objects: np.ndarray
    colours: np.ndarray

    def compose(self) -> np.ndarray:
        """Alpha-blend the objects over the background into a ``(3, H, W)`` image."""
        image = self.background.copy()
        for coverage, colour in zip(self.objects, self.colours, strict=True):
            image += coverage[None] * (colour[:, None, None] - image)
        return image


@lru_cache(maxsize=8)
def _pixel_centres(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = (np.arange(image_size) + 0.5) / image_size
    y, x = np.meshgrid(centres, centres, indexing="ij")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _box(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float) -> np.ndarray:
    qu, qv = np.abs(u) - half_u, np.abs(v) - half_v
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    return outside + np.minimum(np.maximum(qu, qv), 0.0)


def _convex(u: np.ndarray, v: np.ndarray, vertices: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Distance to a convex polygon (counter-clockwise vertices) as the max over its edges.

    Exact inside and along edges; it slightly underestimates distance beyond corners, which
    only affects the one-pixel anti-aliasing ramp.
    """
    distance = np.full(u.shape, -np.inf)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        nx, ny = y1 - y0, x0 - x1
        norm = np.hypot(nx, ny)
        distance = np.maximum(distance, ((u - x0) * nx + (v - y0) * ny) / norm)
    return distance


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Exact distance to a regular five-pointed star (after Inigo Quilez's ``sdStar5``)."""
    k1x, k1y = 0.809016994375, -0.587785252292
    px, py = np.abs(u), v + _STAR_SHIFT
    for kx, ky in ((k1x, k1y), (-k1x, k1y)):
        fold = 2.0 * np.maximum(kx * px + ky * py, 0.0)
        px, py = px - fold * kx, py - fold * ky
    px = np.abs(px)
    py = py - _STAR_RADIUS
    bax, bay = _STAR_INNER * _STAR_RADIUS * -k1y, _STAR_INNER * _STAR_RADIUS * k1x - _STAR_RADIUS
    h = np.clip((px * bax + py * bay) / (bax * bax + bay * bay), 0.0, 1.0)
    return np.hypot(px - bax * h, py - bay * h) * np.sign(py * bax - px * bay)


def shape_distance(shape: ShapeName, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance to ``shape`` in its local frame (negative inside, y pointing up)."""
    if shape == "circle":
        return np.hypot(u, v) - 1.0
    if shape == "square":
        return _box(u, v, 1.0, 1.0)
    if shape == "triangle":
        return _convex(u, v, ((-1.0, -1.0), (1.0, -1.0), (0.0, 1.0)))
    if shape == "diamond":
        return (np.abs(u) + np.abs(v) - 1.0) / np.sqrt(2.0)
    if shape == "cross":
        return np.minimum(_box(u, v, 1.0, _CROSS_ARM), _box(u, v, _CROSS_ARM, 1.0))
    if shape == "bar":
        return _box(u, v, 1.0, _BAR_HALF_HEIGHT)
    if shape == "pillar":
        return _box(u, v, _BAR_HALF_HEIGHT, 1.0)
    if shape == "hourglass":
        w = _HOURGLASS_HALF_WIDTH
        upper = _convex(u, v, ((0.0, -1.0), (w, 1.0), (-w, 1.0)))
        lower = _convex(u, v, ((-w, -1.0), (w, -1.0), (0.0, 1.0)))
        return np.minimum(upper, lower)
    if shape == "dome":
        return np.maximum(np.hypot(u, v + 0.5) - 1.0, -(v + 0.5))
    if shape == "star":
        return _star(u, v)
    raise ValueError(f"unknown shape '{shape}'")


def object_coverage(layout: ObjectLayout, image_size: int) -> np.ndarray:
    """Anti-aliased coverage ``(H, W)`` in ``[0, 1]`` of one object."""
    x, y = _pixel_centres(image_size)
    half = layout.size / 2.0
    u = (x - layout.centre[0]) / half
    v = (layout.centre[1] - y) / half
    distance_pixels = shape_distance(layout.shape, u, v) * half * image_size
    return np.clip(0.5 - distance_pixels, 0.0, 1.0)


def render_layers(
    objects: tuple[ObjectLayout, ...],
    indoor: bool,
    horizon: float,
    brightness: float,
    image_size: int,
) -> SceneLayers:
    """Render the background and each object's coverage at ``image_size``.

    Args:
        objects: Objects in scene source order.
        indoor: Wall and floor (reverberant scene) instead of sky and grass.
        horizon: Height of the ground edge as a fraction of the image, from the top.
        brightness: Multiplier of the background colours (small scene-to-scene variation).
        image_size: Side of the square image in pixels.
    """
    _, y = _pixel_centres(image_size)
    upper, lower = INDOOR_COLOURS if indoor else OUTDOOR_COLOURS
    ground = np.clip(0.5 + (y - horizon) * image_size, 0.0, 1.0)
    top = np.asarray(upper)[:, None, None] * brightness
    bottom = np.asarray(lower)[:, None, None] * brightness
    background = np.clip(top + ground[None] * (bottom - top), 0.0, 1.0)
    coverage = np.stack([object_coverage(o, image_size) for o in objects])
    colours = np.asarray([o.colour for o in objects], dtype=np.float64)
    return SceneLayers(background=background, ground=ground, objects=coverage, colours=colours)
