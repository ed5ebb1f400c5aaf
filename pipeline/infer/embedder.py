"""Mark crop embedding with the shipped ONNX embedder (two vectors per crop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.boxes import CROP_SIZE
from pipeline.infer.models import EMBEDDER_FILE, MODELS_DIR
from pipeline.infer.session import DEFAULT_PROVIDERS, OnnxSession


@dataclass(frozen=True)
class Embeddings:
    """Two unit vectors per crop.

    Attributes:
        authenticity: (N, D) float32; near for renderings of one authentic mark, further for fakes.
        identity: (N, E) float32; near for marks of one brand, counterfeits included.
    """

    authenticity: np.ndarray
    identity: np.ndarray

    def __post_init__(self) -> None:
        for name in ("authenticity", "identity"):
            v = getattr(self, name)
            if v.ndim != 2 or v.dtype != np.float32:
                raise ValueError(f"Embeddings.{name}: expected (N, D) float32, got {v.shape} {v.dtype}")
        if len(self.authenticity) != len(self.identity):
            raise ValueError(f"Embeddings: {len(self.authenticity)} authenticity vs {len(self.identity)} identity rows")

    def __len__(self) -> int:
        return len(self.identity)

    @classmethod
    def empty(cls, auth_dim: int, identity_dim: int) -> Embeddings:
        return cls(np.zeros((0, auth_dim), np.float32), np.zeros((0, identity_dim), np.float32))

    @classmethod
    def concat(cls, parts: Sequence[Embeddings]) -> Embeddings:
        return cls(np.concatenate([p.authenticity for p in parts]), np.concatenate([p.identity for p in parts]))

    def __getitem__(self, index: slice) -> Embeddings:
        return Embeddings(self.authenticity[index], self.identity[index])


class Embedder(Protocol):
    """Maps (N, S, S, 3) uint8 crops to their ``Embeddings``; S is ``crop_size``."""

    @property
    def version(self) -> str: ...

    @property
    def crop_size(self) -> int: ...

    def embed(self, crops: np.ndarray) -> Embeddings: ...


def check_crops(crops: np.ndarray, size: int = CROP_SIZE) -> None:
    """Raise unless ``crops`` is (N, size, size, 3) uint8."""
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or crops.dtype != np.uint8:
        raise ValueError(f"expected (N, {size}, {size}, 3) uint8 crops, got {crops.shape} {crops.dtype}")


def input_side(shape: Sequence[object], default: int = CROP_SIZE) -> int:
    """The crop side an embedder graph declares in its (N, S, S, 3) input shape (``default`` if dynamic)."""
    side = shape[1] if len(shape) == 4 else None
    return side if isinstance(side, int) and side > 0 else default


class OnnxEmbedder:
    """The ONNX crop embedder, run in batches of ``batch``."""

    def __init__(
        self,
        path: str | Path = MODELS_DIR / EMBEDDER_FILE,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        batch: int = 256,
        threads: int = 0,
    ) -> None:
        self.session = OnnxSession(path, providers, threads)
        self.batch = batch
        # The crop side is the model's: a 96 px embedder takes 96 px crops, and every caller cuts
        # its crops at this size.
        self.crop_size = input_side(self.session.input_shape)
        if len(self.session.output_names) != 2:
            raise ValueError(f"{path}: expected an embedder with authenticity and identity outputs")
        probe = self.outputs(self.session.run(np.zeros((1, self.crop_size, self.crop_size, 3), np.uint8)))
        self.auth_dim = probe.authenticity.shape[1]
        self.identity_dim = probe.identity.shape[1]

    @property
    def version(self) -> str:
        return self.session.info.version if self.session.info else "unverified"

    @staticmethod
    def outputs(values: Sequence[np.ndarray]) -> Embeddings:
        """The graph's two outputs as ``Embeddings``."""
        return Embeddings(np.asarray(values[0], np.float32), np.asarray(values[1], np.float32))

    def embed(self, crops: np.ndarray) -> Embeddings:
        """Embed (N, S, S, 3) uint8 crops, S = ``crop_size``."""
        check_crops(crops, self.crop_size)
        if len(crops) == 0:
            return Embeddings.empty(self.auth_dim, self.identity_dim)
        parts = [
            self.outputs(self.session.run(np.ascontiguousarray(crops[i : i + self.batch])))
            for i in range(0, len(crops), self.batch)
        ]
        return Embeddings.concat(parts)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> OnnxEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
