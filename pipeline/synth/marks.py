"""Brand marks: loading coverage masks and splitting brands into training and held-out sets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# Brands whose id hashes below this fraction are held out from training, once and for all.
# Every validation and evaluation figure is measured on held-out brands only.
HOLDOUT_FRACTION = 0.20


def is_held_out(slug: str, fraction: float = HOLDOUT_FRACTION) -> bool:
    """Return whether a brand id belongs to the held-out split (stable across machines)."""
    digest = hashlib.sha256(slug.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def hex_to_rgb(hex_colour: str) -> tuple[int, int, int]:
    """Convert ``"512BD4"`` into an RGB triple."""
    h = hex_colour.lstrip("#")
    if len(h) != 6:
        return (0, 0, 0)
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def tight_crop(mask: np.ndarray, threshold: int = 16) -> np.ndarray:
    """Crop a coverage mask to the bounding box of its ink."""
    ys, xs = np.nonzero(mask > threshold)
    if len(xs) == 0:
        return mask
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


@dataclass(frozen=True)
class Mark:
    """One brand mark: a coverage mask (0 background, 255 ink) and its brand colour."""

    slug: str
    title: str
    colour: tuple[int, int, int]
    mask: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != np.uint8:
            raise ValueError(f"mark {self.slug!r}: expected a 2-D uint8 mask, got {self.mask.shape} {self.mask.dtype}")


class MarkLibrary(Sequence[Mark]):
    """An ordered collection of marks, loaded from a folder of coverage PNGs.

    The folder holds ``SLUG.png`` files and optionally ``logos.json`` with titles and colours.
    """

    def __init__(self, marks: list[Mark]) -> None:
        self._marks = sorted(marks, key=lambda m: m.slug)
        self._by_slug = {m.slug: m for m in self._marks}

    @classmethod
    def from_folder(cls, folder: str | Path, slugs: Sequence[str] | None = None) -> MarkLibrary:
        """Load every mark in ``folder`` (or only ``slugs``)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"marks folder not found: {folder}")
        meta: dict[str, dict[str, str]] = {}
        meta_path = folder / "logos.json"
        if meta_path.is_file():
            meta = {d["slug"]: d for d in json.loads(meta_path.read_text())}
        paths = sorted(folder.glob("*.png"))
        wanted = set(slugs) if slugs is not None else None
        marks = []
        for path in paths:
            slug = path.stem
            if wanted is not None and slug not in wanted:
                continue
            mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if mask is None or not (mask > 16).any():
                continue
            info = meta.get(slug, {})
            marks.append(
                Mark(
                    slug=slug,
                    title=info.get("title", slug),
                    colour=hex_to_rgb(info.get("hex") or "000000"),
                    mask=tight_crop(mask),
                )
            )
        if not marks:
            raise ValueError(f"no usable mark PNGs in {folder}")
        return cls(marks)

    def __len__(self) -> int:
        return len(self._marks)

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        return self._marks[index]

    def __iter__(self) -> Iterator[Mark]:
        return iter(self._marks)

    def get(self, slug: str) -> Mark:
        """Return the mark of one brand id."""
        return self._by_slug[slug]

    @property
    def slugs(self) -> list[str]:
        """Brand ids, sorted."""
        return [m.slug for m in self._marks]

    def split(self, fraction: float = HOLDOUT_FRACTION) -> tuple[MarkLibrary, MarkLibrary]:
        """Split into (training, held-out) libraries by brand id."""
        held = [m for m in self._marks if is_held_out(m.slug, fraction)]
        train = [m for m in self._marks if not is_held_out(m.slug, fraction)]
        return MarkLibrary(train), MarkLibrary(held)
