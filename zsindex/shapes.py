"""The synthetic "shapes world": coloured shapes on varied backgrounds.

It is the world the shipped demo model was trained on, and the world the demo,
the tests and the quality measurements draw their images from. numpy and
Pillow only, so drawing never needs torch.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (35, 60, 225),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (250, 130, 10),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
# Training also draws shapes in colours outside the palette (greys, teals, pinks, browns...),
# captioned by shape only: the model must learn what a circle looks like apart from the few
# colours it came in. "Outside" means at least UNNAMED_MARGIN RGB units from every palette
# colour, far beyond the shade jitter, and no saturated shade of a palette hue (is_unnamed),
# so no held-out pair is ever drawn this way.
UNNAMED = "unnamed"
UNNAMED_MARGIN = 100.0

# Colour+shape pairs never drawn together in training: they measure whether the
# model composes "colour" and "shape" rather than memorising 24 classes.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("green", "star"), ("blue", "circle"), ("yellow", "square")}
)


@dataclass(frozen=True)
class Thing:
    """One drawn object: colour and shape names."""

    colour: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


def seen_pairs() -> list[tuple[str, str]]:
    return [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT]


def held_out_pairs() -> list[tuple[str, str]]:
    return sorted(HELD_OUT)


def _shape_mask(shape: str, xx: np.ndarray, yy: np.ndarray, r: float, angle: float) -> np.ndarray:
    """Boolean mask of a shape of radius r centred at 0 on the grid (xx, yy)."""
    c, s = math.cos(angle), math.sin(angle)
    x = c * xx + s * yy
    y = -s * xx + c * yy
    if shape == "circle":
        return x * x + y * y <= r * r
    if shape == "square":
        h = r * 0.82
        return (np.abs(x) <= h) & (np.abs(y) <= h)
    if shape == "triangle":
        # Equilateral triangle: inside three half-planes at 120 degrees.
        inside = np.ones_like(x, dtype=bool)
        for k in range(3):
            a = math.pi / 2 + k * 2 * math.pi / 3
            inside &= (x * math.cos(a) + y * math.sin(a)) <= r * 0.5
        return inside
    if shape == "star":
        rho = np.sqrt(x * x + y * y)
        phi = np.arctan2(y, x)
        edge = r * (0.42 + 0.58 * ((1 + np.cos(5 * phi)) / 2) ** 2.2)
        return rho <= edge
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


BACKGROUNDS = ("flat", "gradient", "noise")


def _background(rng: np.random.Generator, size: int, kind_name: str | None = None) -> np.ndarray:
    """A low-saturation background: flat, gradient or noisy (at random unless kind_name says), light or dark."""
    base = rng.uniform(20, 235)
    tint = rng.uniform(-18, 18, size=3)
    img = np.empty((size, size, 3), dtype=np.float32)
    img[:] = base + tint
    drawn = int(rng.integers(0, 3))  # drawn in any case, so that a seed gives the same images as before
    kind = drawn if kind_name is None else BACKGROUNDS.index(kind_name)
    if kind == 1:
        ramp = np.linspace(-1, 1, size, dtype=np.float32)
        direction = rng.uniform(0, 2 * math.pi)
        grad = math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None]
        img += (grad * rng.uniform(10, 45))[..., None]
    elif kind == 2:
        img += rng.normal(0, rng.uniform(4, 16), size=(size, size, 1)).astype(np.float32)
    return img


def draw(
    things: Sequence[Thing], size: int = 256, seed: int | None = None, rng: np.random.Generator | None = None,
    background: str | None = None,
) -> np.ndarray:
    """Draw things on one background; returns an (size, size, 3) uint8 array.

    ``background`` is one of BACKGROUNDS, or None for a random one of them.

    Objects are placed in distinct cells of a grid so that they never overlap;
    sizes, positions, rotations and colour shades vary.
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    ss = 2  # supersampling factor, for anti-aliased edges
    big = size * ss
    img = _background(rng, big, background)
    n = len(things)
    cells = 1 if n == 1 else 2
    order = rng.permutation(cells * cells)[:n]
    cell = big / cells
    coords = np.arange(big, dtype=np.float32) + 0.5
    for thing, slot in zip(things, order):
        cx0, cy0 = (slot % cells) * cell, (slot // cells) * cell
        r = cell * rng.uniform(0.17, 0.33)
        cx = cx0 + rng.uniform(r * 1.05, cell - r * 1.05)
        cy = cy0 + rng.uniform(r * 1.05, cell - r * 1.05)
        mask = _shape_mask(thing.shape, coords[None, :] - cx, coords[:, None] - cy, r, rng.uniform(0, 2 * math.pi))
        if thing.colour == UNNAMED:
            colour = unnamed_colour(rng, img.mean(axis=(0, 1)))
        else:
            colour = (np.array(COLOURS[thing.colour]) + rng.uniform(-18, 18, size=3)).astype(np.float32)
        img[mask] = colour
    small = np.clip(img, 0, 255).reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    return small.round().astype(np.uint8)


_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
_PALETTE_HUES = [colorsys.rgb_to_hsv(*(c / 255))[0] for c in _PALETTE]


def is_unnamed(colour: np.ndarray) -> bool:
    """Far from every palette colour in RGB, and not a saturated shade of a palette hue
    (a dark navy is a kind of blue however far it is from our blue in RGB)."""
    if np.linalg.norm(_PALETTE - colour, axis=1).min() < UNNAMED_MARGIN:
        return False
    hue, saturation, _ = colorsys.rgb_to_hsv(*(colour / 255))
    near_hue = min(min(abs(hue - h), 1 - abs(hue - h)) for h in _PALETTE_HUES) < 30 / 360
    return not (near_hue and saturation > 0.35)


def unnamed_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random colour outside the palette (see is_unnamed), visible on the background."""
    while True:
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        if rng.random() < 0.3:
            colour[:] = colour[0]  # a grey
        if is_unnamed(colour) and np.linalg.norm(colour - background) >= 60:
            return colour


def random_things(
    rng: np.random.Generator, pairs: Sequence[tuple[str, str]], max_objects: int = 1
) -> list[Thing]:
    n = int(rng.integers(1, max_objects + 1))
    picks = rng.choice(len(pairs), size=n, replace=False)
    return [Thing(*pairs[i]) for i in picks]


def save_world(
    folder: Path,
    scenes: Iterable[Sequence[Thing]],
    size: int = 256,
    seed: int = 0,
    fmt: str = "png",
) -> list[Path]:
    """Draw each scene into folder as '<n>-<names>.<fmt>' and return the paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, things in enumerate(scenes):
        name = "+".join(t.name.replace(" ", "-") for t in things)
        path = folder / f"{i:03d}-{name}.{fmt}"
        Image.fromarray(draw(things, size=size, rng=rng)).save(path)
        paths.append(path)
    return paths
