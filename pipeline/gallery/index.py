"""The gallery index: reference vectors in FAISS, their metadata in SQLite, on disk atomically.

An index folder holds ``vectors.faiss`` (identity vectors: which brand), ``authenticity.npz``
(authenticity vectors of the same references, by id), ``meta.sqlite`` and ``index.json`` (model
version, counts, the index kind and the checksums of the other files). It is derived from a gallery
folder (formats.md section 1) and can always be rebuilt from it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import faiss
import numpy as np

from pipeline.alerts import seller_id
from pipeline.gallery.references import DEFAULT_VIEW_SIZES, reference_views
from pipeline.infer.embedder import Embedder, Embeddings
from pipeline.infer.models import file_sha256

INDEX_FORMAT = "fakewatch-index/2"
DATA_FILES = ("vectors.faiss", "authenticity.npz", "meta.sqlite")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
SELLERS_TABLE = (
    "CREATE TABLE IF NOT EXISTS sellers (brand TEXT NOT NULL, seller TEXT NOT NULL, PRIMARY KEY (brand, seller));"
)

# Exact search while the gallery is small; an inverted file with 8-bit scalar codes beyond,
# which keeps 1M vectors of 128 dims near 130 MB and searches a few lists per query.
EXACT_LIMIT = 100_000


class GalleryError(RuntimeError):
    """A gallery or index is unusable; the message says why and what to do."""


@dataclass(frozen=True)
class Neighbours:
    """Search results for Q queries and K neighbours."""

    similarity: np.ndarray  # (Q, K) float32 cosine similarity, best first
    brand: np.ndarray  # (Q, K) object array of brand ids ("" where no neighbour)
    ref: np.ndarray  # (Q, K) int64 reference ids (-1 where no neighbour)

    def __post_init__(self) -> None:
        if self.similarity.shape != self.brand.shape or self.similarity.shape != self.ref.shape:
            raise ValueError(
                f"expected equal (Q, K) arrays, got {self.similarity.shape}, {self.brand.shape}, {self.ref.shape}"
            )


class Gallery(Protocol):
    """Finds the nearest authentic references of query vectors."""

    model_version: str

    def search(self, vectors: np.ndarray, k: int) -> Neighbours: ...

    def authenticity(self, vector: np.ndarray, brand: str) -> tuple[float, int]: ...

    def threshold(self, brand: str) -> float: ...

    def reference_image(self, ref: int) -> np.ndarray | None: ...

    def authorized_sellers(self, brand: str) -> frozenset[str]: ...


def make_faiss_index(dim: int, count: int, train: np.ndarray | None = None) -> faiss.Index:
    """An empty index suited to ``count`` vectors: exact below EXACT_LIMIT, IVF-SQ8 above."""
    if count <= EXACT_LIMIT:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    nlist = int(min(65536, max(1024, 4 * np.sqrt(count))))
    quantiser = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantiser, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    if train is None:
        raise ValueError("an approximate index needs training vectors")
    index.train(np.ascontiguousarray(train[: max(nlist * 40, 100_000)], dtype=np.float32))
    index.nprobe = 24
    return index


def gallery_images(folder: Path) -> list[tuple[str, Path]]:
    """(brand, image path) for every image of a gallery folder, sorted; raises on a bad layout.

    Hidden folders and files (``.git``, ``.thumbs``, macOS ``._logo.png`` copies) are not part of
    a gallery, as the evaluation's list of enrolled brands reads it too.
    """
    if not folder.is_dir():
        raise GalleryError(f"gallery folder not found: {folder}")
    items = []
    for brand_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        brand = brand_id(brand_dir)
        items += [(brand, img) for img in brand_images(brand_dir)]
    if not items:
        raise GalleryError(f"{folder}: no brand folders with .png/.jpg/.jpeg/.webp images")
    return items


def brand_images(brand_dir: Path) -> list[Path]:
    """A brand folder's reference images, sorted (hidden files left out)."""
    return [p for p in sorted(brand_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]


def brand_id(brand_dir: Path) -> str:
    """The brand id a gallery sub-folder stands for: its name, which must match [a-z0-9_-]+
    (formats.md section 1); raises ``GalleryError`` otherwise."""
    brand = brand_dir.name
    if not brand or not all(c in "abcdefghijklmnopqrstuvwxyz0123456789_-" for c in brand):
        raise GalleryError(f"{brand_dir}: brand folder names must match [a-z0-9_-]+")
    return brand


@dataclass(frozen=True)
class BrandInfo:
    """What a brand folder's optional ``brand.json`` says (formats.md section 1)."""

    title: str
    authorized_sellers: tuple[str, ...] = ()

    @classmethod
    def from_folder(cls, brand_dir: Path) -> BrandInfo:
        """Read ``brand_dir/brand.json``; a brand without one is titled by its folder name.

        Raises ``GalleryError`` naming the file when it is not JSON or a field has the wrong type.
        """
        meta = brand_dir / "brand.json"
        if not meta.is_file():
            return cls(brand_dir.name)
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GalleryError(f"{meta}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise GalleryError(f'{meta}: expected an object such as {{"title": "Acme"}}, got {type(data).__name__}')
        sellers = data.get("authorized_sellers", [])
        try:
            if not isinstance(sellers, list) or not all(isinstance(s, str) for s in sellers):
                raise ValueError("not a list of strings")
            # The rule a stream's seller is held to, so that every id listed here can match one.
            ids = {str(seller_id(s)) for s in sellers}
        except ValueError:
            raise GalleryError(
                f'{meta}: "authorized_sellers" must be a list of seller ids such as ["seller-17"]'
            ) from None
        return cls(str(data.get("title", brand_dir.name)), tuple(sorted(ids)))


def check_readable(paths: list[Path], shown: int = 10) -> None:
    """Raise one ``GalleryError`` listing every image in ``paths`` that cannot be read, before any
    long work: a gallery of thousands should not fail at its last image, one file at a time."""
    bad = []
    for path in paths:
        try:
            read_rgb(path)
        except GalleryError:
            bad.append(path)
    if bad:
        more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
        names = ", ".join(str(p) for p in bad[:shown])
        raise GalleryError(f"{len(bad)} of {len(paths)} gallery images cannot be read: {names}{more}")


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB, flattening alpha onto white (8-bit, 16-bit and float
    images alike: brand kits ship 16-bit PNGs)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise GalleryError(f"{path}: not a readable image")
    if img.dtype == np.uint16:
        img = ((img.astype(np.float32) + 128) / 257).astype(np.uint8)
    elif img.dtype != np.uint8:  # float (EXR, TIFF): [0, 1]
        img = (np.clip(img.astype(np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255
        img = (img[:, :, :3].astype(np.float32) * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(img[:, :, ::-1])


class GalleryIndex:
    """An opened index folder: FAISS vectors plus SQLite metadata.

    Open with ``GalleryIndex.open(path, model_version)``; a version mismatch is refused.
    """

    def __init__(
        self, path: Path, index: faiss.Index, auth_ids: np.ndarray, auth: np.ndarray, db: sqlite3.Connection, info: dict
    ) -> None:
        self.path = path
        self.index = index
        self.auth_ids = auth_ids
        self.auth = auth
        self.db = db
        self.info = info
        self.model_version: str = info["model"]
        self._refresh()

    def _refresh(self) -> None:
        rows = self.db.execute("SELECT id, brand FROM refs").fetchall()
        self._brand_of = {int(i): b for i, b in rows}
        self._thresholds = dict(self.db.execute("SELECT brand, threshold FROM brands").fetchall())
        self._has_sellers = (
            self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sellers'").fetchone()
            is not None
        )
        self._sellers: dict[str, frozenset[str]] = {}
        if self._has_sellers:
            pairs: dict[str, set[str]] = {}
            for b, seller in self.db.execute("SELECT brand, seller FROM sellers"):
                pairs.setdefault(b, set()).add(seller)
            self._sellers = {b: frozenset(v) for b, v in pairs.items()}
        row_of = {int(i): r for r, i in enumerate(self.auth_ids)}
        by_brand: dict[str, list[int]] = {}
        for i, b in rows:
            if int(i) in row_of:
                by_brand.setdefault(b, []).append(int(i))
        self._auth_rows = {b: np.array([row_of[i] for i in ids], np.int64) for b, ids in by_brand.items()}

    # --- building -----------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        gallery: str | Path,
        out: str | Path,
        embedder: Embedder,
        model_version: str,
        views: int = 12,
        quantile: float = 0.02,
        progress: Callable[[int, int], None] | None = None,
        view_sizes: tuple[float, float] = DEFAULT_VIEW_SIZES,
    ) -> GalleryIndex:
        """Embed every image of ``gallery`` (with camera views) into a new index at ``out``.

        ``views`` crops per image (the plain crop and camera views whose mark measures
        ``view_sizes`` pixels) are stored; the index records both, and ``add_brand`` uses them.

        The folder is written next to ``out`` and renamed into place, so a failed build
        leaves any previous index untouched.
        """
        gallery, out = Path(gallery), Path(out)
        items = gallery_images(gallery)
        # Read every brand.json before the long embedding: a malformed one fails the build at once.
        infos = {brand: BrandInfo.from_folder(gallery / brand) for brand in sorted({b for b, _ in items})}
        check_readable([path for _, path in items])
        if out.exists() and not (out / "index.json").is_file() and (not out.is_dir() or any(out.iterdir())):
            raise GalleryError(f"{out}: exists and is not a gallery index (an index is only written over an index)")
        try:
            tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=out.parent if out.parent.exists() else None))
        except OSError as exc:
            raise GalleryError(f"cannot write an index in {out.parent}: {exc.strerror}") from None
        try:
            db = _create_db(tmp / "meta.sqlite")
            vectors: list[Embeddings] = []
            ids = []
            next_id = 0
            for n, (brand, path) in enumerate(items):
                vecs = _embed_image(embedder, read_rgb(path), views, n, view_sizes)
                rows = [(next_id + k, brand, str(path.relative_to(gallery)), k) for k in range(len(vecs))]
                db.executemany("INSERT INTO refs (id, brand, image, view) VALUES (?, ?, ?, ?)", rows)
                vectors.append(vecs)
                ids.append(np.arange(next_id, next_id + len(vecs), dtype=np.int64))
                next_id += len(vecs)
                if progress:
                    progress(n + 1, len(items))
            for brand, info in infos.items():
                _insert_brand(db, brand, info)
            all_vecs = Embeddings.concat(vectors)
            all_ids = np.concatenate(ids)
            index = make_faiss_index(all_vecs.identity.shape[1], len(all_vecs), all_vecs.identity)
            index.add_with_ids(all_vecs.identity, all_ids)
            _calibrate(db, all_vecs.authenticity, all_ids, quantile)
            db.execute("INSERT INTO settings (key, value) VALUES ('gallery', ?)", (str(gallery.resolve()),))
            db.commit()
            db.close()
            _write_index(
                tmp,
                index,
                all_ids,
                all_vecs.authenticity.astype(np.float16),
                {
                    "model": model_version,
                    "dim": int(all_vecs.identity.shape[1]),
                    "views": views,
                    "view_sizes": [float(v) for v in view_sizes],
                    "quantile": quantile,
                },
            )
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(out, model_version)

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, model_version: str | None = None) -> GalleryIndex:
        """Open an index folder, checking its files' checksums and the model version."""
        path = Path(path)
        info_path = path / "index.json"
        if not info_path.is_file():
            raise GalleryError(
                f"{path}: not a gallery index (no index.json); build one with "
                f"'fakewatch gallery build GALLERY --out {path}'"
            )
        info = json.loads(info_path.read_text())
        if info.get("format") != INDEX_FORMAT:
            raise GalleryError(f"{path}: unknown index format {info.get('format')!r}")
        for name in DATA_FILES:
            if file_sha256(path / name) != info["sha256"][name]:
                raise GalleryError(f"{path / name}: checksum mismatch; the index is damaged, rebuild it")
        if model_version is not None and info["model"] != model_version:
            raise GalleryError(
                f"{path}: built with embedder {info['model']}, but the loaded embedder is {model_version}; "
                f"rebuild the index with 'fakewatch gallery build'"
            )
        index = faiss.read_index(str(path / "vectors.faiss"))
        with np.load(path / "authenticity.npz") as data:
            auth_ids, auth = data["ids"], data["vectors"]
        db = sqlite3.connect(str(path / "meta.sqlite"), check_same_thread=False)
        return cls(path, index, auth_ids, auth, db, info)

    @property
    def view_sizes(self) -> tuple[float, float]:
        """The mark's size range in the camera views this index was built with, in pixels."""
        lo, hi = self.info.get("view_sizes", DEFAULT_VIEW_SIZES)
        return float(lo), float(hi)

    # --- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def brands(self) -> list[str]:
        return sorted(self._thresholds)

    def search(self, vectors: np.ndarray, k: int = 16) -> Neighbours:
        """The ``k`` nearest references of each (Q, D) query vector."""
        q = np.ascontiguousarray(vectors, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.info["dim"]:
            raise ValueError(f"expected (Q, {self.info['dim']}) vectors, got {q.shape}")
        if len(q) == 0 or len(self) == 0:
            empty = np.zeros((len(q), 0))
            return Neighbours(empty.astype(np.float32), empty.astype(object), empty.astype(np.int64))
        sim, ids = self.index.search(q, min(k, len(self)))
        brands = np.vectorize(lambda i: self._brand_of.get(int(i), ""), otypes=[object])(ids)
        return Neighbours(sim.astype(np.float32), brands, ids.astype(np.int64))

    def authenticity(self, vector: np.ndarray, brand: str) -> tuple[float, int]:
        """Similarity of an authenticity vector to ``brand``'s nearest reference, and its id."""
        rows = self._auth_rows.get(brand)
        if rows is None or len(rows) == 0:
            return 0.0, -1
        sims = self.auth[rows].astype(np.float32) @ np.asarray(vector, np.float32)
        best = int(np.argmax(sims))
        return float(sims[best]), int(self.auth_ids[rows[best]])

    def threshold(self, brand: str) -> float:
        """The similarity below which a mark of ``brand`` no longer looks authentic."""
        return float(self._thresholds.get(brand, 1.0))

    def title(self, brand: str) -> str:
        row = self.db.execute("SELECT title FROM brands WHERE brand = ?", (brand,)).fetchone()
        return row[0] if row else brand

    @property
    def records_sellers(self) -> bool:
        """Whether this index recorded its brands' authorized sellers (indexes built before did not)."""
        return self._has_sellers

    def authorized_sellers(self, brand: str) -> frozenset[str]:
        """The sellers ``brand.json`` names as authorized to sell ``brand`` (none where it names none,
        and none for an index built before seller lists were recorded: rebuild it to read them)."""
        return self._sellers.get(brand, frozenset())

    def reference_image(self, ref: int) -> np.ndarray | None:
        """The gallery image a reference came from, when the gallery folder is still there."""
        row = self.db.execute("SELECT image FROM refs WHERE id = ?", (int(ref),)).fetchone()
        gal = self.db.execute("SELECT value FROM settings WHERE key = 'gallery'").fetchone()
        if row is None or gal is None:
            return None
        path = Path(gal[0]) / row[0]
        return read_rgb(path) if path.is_file() else None

    def stats(self) -> dict:
        """Counts and settings, for ``fakewatch gallery stats``."""
        per_brand = self.db.execute(
            "SELECT brand, COUNT(DISTINCT image), COUNT(*) FROM refs GROUP BY brand ORDER BY brand"
        ).fetchall()
        return {
            "path": str(self.path),
            "model": self.model_version,
            "kind": self.info["kind"],
            "views": self.info["views"],
            "view_sizes": list(self.view_sizes),
            "vectors": len(self),
            "brands": len(self._thresholds),
            "images": sum(r[1] for r in per_brand),
            "per_brand": {
                b: {
                    "title": self.title(b),
                    "images": i,
                    "vectors": v,
                    "threshold": round(self.threshold(b), 4),
                    "authorized_sellers": sorted(self.authorized_sellers(b)),
                }
                for b, i, v in per_brand
            },
        }

    # --- changes --------------------------------------------------------------------------

    def add_brand(self, brand_dir: Path, embedder: Embedder) -> int:
        """Enrol (or re-enrol) one brand folder without a full rebuild; returns vectors added."""
        brand = brand_id(brand_dir)
        images = brand_images(brand_dir)
        if not images:
            raise GalleryError(f"{brand_dir}: no .png/.jpg/.jpeg/.webp images")
        info = BrandInfo.from_folder(brand_dir)  # a malformed brand.json fails before anything changes
        check_readable(images)
        self.remove_brand(brand, missing_ok=True, save=False)
        start = int(self.db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM refs").fetchone()[0])
        vecs_all, ids_all = [], []
        for n, path in enumerate(images):
            vecs = _embed_image(embedder, read_rgb(path), self.info["views"], start + n, self.view_sizes)
            ids = np.arange(start, start + len(vecs), dtype=np.int64)
            self.db.executemany(
                "INSERT INTO refs (id, brand, image, view) VALUES (?, ?, ?, ?)",
                [(int(i), brand, str(path.resolve()), k) for k, i in enumerate(ids)],
            )
            vecs_all.append(vecs)
            ids_all.append(ids)
            start += len(vecs)
        vecs, ids = Embeddings.concat(vecs_all), np.concatenate(ids_all)
        self.index.add_with_ids(vecs.identity, ids)
        self.auth_ids = np.concatenate([self.auth_ids, ids])
        self.auth = np.concatenate([self.auth, vecs.authenticity.astype(np.float16)])
        _insert_brand(self.db, brand, info)
        _calibrate(self.db, vecs.authenticity, ids, self.info["quantile"])
        self.save()
        return len(vecs)

    def remove_brand(self, brand: str, missing_ok: bool = False, save: bool = True) -> int:
        """Remove a brand's references; returns how many vectors went."""
        ids = np.array([r[0] for r in self.db.execute("SELECT id FROM refs WHERE brand = ?", (brand,))], np.int64)
        if len(ids) == 0 and not missing_ok:
            raise GalleryError(f"brand {brand!r} is not in the index {self.path}")
        if len(ids):
            self.index.remove_ids(ids)  # type: ignore[arg-type]  # SWIG takes int64 arrays
            keep = ~np.isin(self.auth_ids, ids)
            self.auth_ids, self.auth = self.auth_ids[keep], self.auth[keep]
        self.db.execute("DELETE FROM refs WHERE brand = ?", (brand,))
        self.db.execute("DELETE FROM brands WHERE brand = ?", (brand,))
        if self._has_sellers:
            self.db.execute("DELETE FROM sellers WHERE brand = ?", (brand,))
        if save:
            self.save()
        return len(ids)

    def save(self) -> None:
        """Write the changed index back atomically (a copy renamed over the old folder)."""
        self.db.commit()
        tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=self.path.parent))
        try:
            dst = sqlite3.connect(str(tmp / "meta.sqlite"))
            self.db.backup(dst)
            dst.close()
            _write_index(
                tmp,
                self.index,
                self.auth_ids,
                self.auth,
                {k: self.info[k] for k in ("model", "dim", "views", "view_sizes", "quantile") if k in self.info},
            )
            old = self.path.with_name(self.path.name + ".old")
            os.replace(self.path, old)
            os.replace(tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.db.close()
        self.db = sqlite3.connect(str(self.path / "meta.sqlite"), check_same_thread=False)
        self.info = json.loads((self.path / "index.json").read_text())
        self._refresh()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> GalleryIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _create_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path))
    db.executescript(
        """
        CREATE TABLE refs (id INTEGER PRIMARY KEY, brand TEXT NOT NULL, image TEXT NOT NULL, view INTEGER NOT NULL);
        CREATE INDEX refs_brand ON refs (brand);
        CREATE TABLE brands (brand TEXT PRIMARY KEY, title TEXT, threshold REAL NOT NULL);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
        """
        + SELLERS_TABLE
    )
    return db


def _insert_brand(db: sqlite3.Connection, brand: str, info: BrandInfo) -> None:
    """One brand's row (its threshold is calibrated after) and its authorized sellers."""
    db.execute("INSERT INTO brands (brand, title, threshold) VALUES (?, ?, 0)", (brand, info.title))
    # Indexes written before sellers were recorded lack the table: adding a brand creates it.
    db.execute(SELLERS_TABLE)
    db.executemany("INSERT INTO sellers (brand, seller) VALUES (?, ?)", [(brand, s) for s in info.authorized_sellers])


def _embed_image(
    embedder: Embedder, image: np.ndarray, views: int, seed: int, view_sizes: tuple[float, float]
) -> Embeddings:
    return embedder.embed(reference_views(image, views, seed, embedder.crop_size, view_sizes))


def _calibrate(db: sqlite3.Connection, vectors: np.ndarray, ids: np.ndarray, quantile: float) -> None:
    """Per-brand authenticity threshold from the brand's own references only.

    Each camera view is compared with the brand's other references: how similar an authentic
    mark seen by a camera is to the nearest reference. A low quantile of that spread is where
    "no longer authentic" begins, so a new brand needs no counterfeit examples.
    """
    owners = dict(db.execute("SELECT id, brand FROM refs").fetchall())
    views = dict(db.execute("SELECT id, view FROM refs").fetchall())
    brand_of = np.array([owners[int(i)] for i in ids], dtype=object)
    for brand in sorted(set(brand_of)):
        sel = brand_of == brand
        v = vectors[sel]
        camera = np.array([views[int(i)] > 0 for i in ids[sel]])
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        nearest = sims.max(axis=1)[camera] if camera.any() else sims.max(axis=1)
        nearest = nearest[np.isfinite(nearest)]
        thr = float(np.quantile(nearest, quantile)) if len(nearest) else 1.0
        db.execute("UPDATE brands SET threshold = ? WHERE brand = ?", (thr, brand))


def _write_index(folder: Path, index: faiss.Index, auth_ids: np.ndarray, auth: np.ndarray, info: dict) -> None:
    faiss.write_index(index, str(folder / "vectors.faiss"))
    np.savez(folder / "authenticity.npz", ids=auth_ids, vectors=auth)
    kind = "exact" if isinstance(index, faiss.IndexIDMap2) else "ivf-sq8"
    full = {
        "format": INDEX_FORMAT,
        **info,
        "kind": kind,
        "vectors": int(index.ntotal),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sha256": {n: file_sha256(folder / n) for n in DATA_FILES},
    }
    (folder / "index.json").write_text(json.dumps(full, indent=2) + "\n")
