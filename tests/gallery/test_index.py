"""Gallery index: build, search, add, remove, checksums and model version, with a fake embedder.

The embedder here is a deterministic stand-in (colour histogram), because this module's job is
storage and search; the real ONNX embedder is exercised by the pipeline tests.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.gallery.index import GalleryError, GalleryIndex, make_faiss_index
from pipeline.synth.clips import write_gallery
from tests.conftest import HistogramEmbedder


@pytest.fixture
def gallery(tmp_path, library):
    return write_gallery(list(library)[:5], tmp_path / "gallery")


@pytest.fixture
def index(tmp_path, gallery):
    return GalleryIndex.build(gallery, tmp_path / "index", HistogramEmbedder(), "emb-test", views=3)


def test_build_and_search(index, library):
    assert len(index.brands) == 5 and len(index) == 15
    stats = index.stats()
    assert stats["kind"] == "exact" and stats["images"] == 5
    ref_vecs = np.stack([index.index.reconstruct(i) for i in range(3)])
    nb = index.search(ref_vecs, k=2)
    assert nb.similarity.shape == (3, 2)
    assert set(nb.brand[:, 0]) == {library[0].slug}


def test_search_empty_queries(index):
    nb = index.search(np.zeros((0, HistogramEmbedder.dim), np.float32))
    assert nb.similarity.shape[0] == 0


def test_search_rejects_wrong_dim(index):
    with pytest.raises(ValueError, match=r"expected \(Q, "):
        index.search(np.zeros((2, 5), np.float32))


def test_other_model_version_is_refused(tmp_path, index):
    index.close()
    with pytest.raises(GalleryError, match="built with embedder emb-test"):
        GalleryIndex.open(tmp_path / "index", "emb-other")


def test_damaged_index_is_refused(tmp_path, index):
    index.close()
    (tmp_path / "index" / "meta.sqlite").write_bytes(b"garbage")
    with pytest.raises(GalleryError, match="checksum mismatch"):
        GalleryIndex.open(tmp_path / "index")


def test_add_and_remove_without_rebuild(tmp_path, index, library):
    extra = write_gallery([library[10]], tmp_path / "more")
    added = index.add_brand(extra / library[10].slug, HistogramEmbedder())
    assert added == 3 and library[10].slug in index.brands and len(index) == 18
    reopened = GalleryIndex.open(tmp_path / "index", "emb-test")
    assert len(reopened) == 18
    assert index.remove_brand(library[0].slug) == 3
    assert library[0].slug not in index.brands and len(index) == 15
    with pytest.raises(GalleryError, match="not in the index"):
        index.remove_brand("nope")


@pytest.mark.parametrize("name", ["Bad Name", "UPPER", "café", "dots.in.it"])
def test_add_refuses_a_folder_name_that_is_not_a_brand_id(tmp_path, index, library, name):
    extra = write_gallery([library[10]], tmp_path / "more") / library[10].slug
    renamed = extra.rename(extra.parent / name)
    with pytest.raises(GalleryError, match=r"brand folder names must match \[a-z0-9_-\]\+"):
        index.add_brand(renamed, HistogramEmbedder())
    assert len(index) == 15 and name not in index.brands


@pytest.mark.parametrize("view_sizes", [(16.0, 110.0), (80.0, 110.0)])
def test_view_sizes_are_recorded_and_reused(tmp_path, gallery, library, view_sizes):
    # add_brand renders its camera views as the build did, so one brand's references never
    # differ from another's by how they were made.
    idx = GalleryIndex.build(gallery, tmp_path / "vs", HistogramEmbedder(), "emb-test", views=3, view_sizes=view_sizes)
    assert idx.view_sizes == view_sizes
    assert json.loads((tmp_path / "vs" / "index.json").read_text())["view_sizes"] == list(view_sizes)
    extra = write_gallery([library[10]], tmp_path / "more")
    idx.add_brand(extra / library[10].slug, HistogramEmbedder())
    idx.close()
    assert GalleryIndex.open(tmp_path / "vs").view_sizes == view_sizes


def test_index_without_view_sizes_reads_as_the_old_range(tmp_path, index):
    from pipeline.gallery.references import DEFAULT_VIEW_SIZES

    index.info.pop("view_sizes")
    assert index.view_sizes == DEFAULT_VIEW_SIZES


@pytest.mark.parametrize("layout", ["empty", "bad-name", "missing"])
def test_bad_gallery_layout(tmp_path, layout):
    folder = tmp_path / "g"
    if layout != "missing":
        folder.mkdir()
    if layout == "bad-name":
        (folder / "Bad Brand").mkdir()
        (folder / "Bad Brand" / "a.png").write_bytes(b"x")
    with pytest.raises(GalleryError):
        GalleryIndex.build(folder, tmp_path / "idx", HistogramEmbedder(), "v")


def test_hidden_folders_and_files_are_not_part_of_a_gallery(tmp_path, gallery, library):
    first = sorted(p for p in gallery.iterdir() if p.is_dir())[0]
    (gallery / ".thumbs").mkdir()
    (gallery / ".thumbs" / "a.png").write_bytes((first / next(first.glob("*.png")).name).read_bytes())
    (first / "._logo.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # what macOS leaves on other disks
    with GalleryIndex.build(gallery, tmp_path / "idx", HistogramEmbedder(), "v", views=1) as idx:
        assert sorted(idx.brands) == sorted(m.slug for m in list(library)[:5]) and len(idx) == 5
        extra = write_gallery([library[10]], tmp_path / "more") / library[10].slug
        (extra / ".hidden.png").write_bytes(b"junk")
        assert idx.add_brand(extra, HistogramEmbedder()) == 1


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ('{"title": ', "brand.json: not valid JSON"),
        ('["Acme"]', "brand.json: expected an object"),
        (b"\xff\xfe", "brand.json: not valid JSON"),
        ('{"authorized_sellers": "seller-17"}', 'authorized_sellers" must be a list'),
        ('{"authorized_sellers": ["seller-17", 17]}', 'authorized_sellers" must be a list'),
        ('{"authorized_sellers": [" "]}', 'authorized_sellers" must be a list'),
        ('{"authorized_sellers": ["a\\nb"]}', 'authorized_sellers" must be a list'),  # one line, as streams'
        ('{"authorized_sellers": ["' + "x" * 129 + '"]}', 'authorized_sellers" must be a list'),
    ],
)
def test_bad_brand_json_is_named(tmp_path, gallery, meta, message):
    brand = sorted(p for p in gallery.iterdir() if p.is_dir())[0]
    target = brand / "brand.json"
    target.write_bytes(meta) if isinstance(meta, bytes) else target.write_text(meta)
    with pytest.raises(GalleryError, match=message):
        GalleryIndex.build(gallery, tmp_path / "idx", HistogramEmbedder(), "v", views=1)


def test_brand_title_comes_from_brand_json(tmp_path, gallery):
    brand = sorted(p for p in gallery.iterdir() if p.is_dir())[0]
    (brand / "brand.json").write_text('{"title": "Acme Corp"}')
    with GalleryIndex.build(gallery, tmp_path / "idx", HistogramEmbedder(), "v", views=1) as idx:
        assert idx.title(brand.name) == "Acme Corp"


@pytest.mark.parametrize(
    ("meta", "sellers"),
    [
        (None, set()),
        ('{"title": "Acme"}', set()),
        ('{"authorized_sellers": []}', set()),
        ('{"authorized_sellers": ["seller-17", " seller-9 ", "seller-17"]}', {"seller-17", "seller-9"}),
    ],
)
def test_authorized_sellers_come_from_brand_json(tmp_path, gallery, meta, sellers):
    brand, other = sorted(p for p in gallery.iterdir() if p.is_dir())[:2]
    if meta is not None:
        (brand / "brand.json").write_text(meta)
    with GalleryIndex.build(gallery, tmp_path / "idx", HistogramEmbedder(), "v", views=1) as idx:
        assert idx.records_sellers
        assert idx.authorized_sellers(brand.name) == sellers
        assert idx.authorized_sellers(other.name) == set()
        assert idx.authorized_sellers("not-enrolled") == set()
        assert idx.stats()["per_brand"][brand.name]["authorized_sellers"] == sorted(sellers)


def test_sellers_follow_add_and_remove(tmp_path, index, library):
    extra = write_gallery([library[10]], tmp_path / "more") / library[10].slug
    (extra / "brand.json").write_text('{"authorized_sellers": ["seller-1"]}')
    index.add_brand(extra, HistogramEmbedder())
    assert GalleryIndex.open(tmp_path / "index").authorized_sellers(extra.name) == {"seller-1"}
    # Re-enrolling replaces the list; removing the brand forgets it.
    (extra / "brand.json").write_text('{"authorized_sellers": ["seller-2"]}')
    index.add_brand(extra, HistogramEmbedder())
    assert index.authorized_sellers(extra.name) == {"seller-2"}
    index.remove_brand(extra.name)
    assert index.authorized_sellers(extra.name) == set()
    assert index.db.execute("SELECT COUNT(*) FROM sellers").fetchone()[0] == 0


def test_an_index_from_before_seller_lists_opens_and_learns_them_on_add(tmp_path, index, library):
    import sqlite3

    from pipeline.infer.models import file_sha256

    index.close()
    folder = tmp_path / "index"
    db = sqlite3.connect(str(folder / "meta.sqlite"))
    db.execute("DROP TABLE sellers")
    db.commit()
    db.close()
    info = json.loads((folder / "index.json").read_text())
    info["sha256"]["meta.sqlite"] = file_sha256(folder / "meta.sqlite")
    (folder / "index.json").write_text(json.dumps(info))
    old = GalleryIndex.open(folder, "emb-test")
    assert not old.records_sellers and old.authorized_sellers(library[0].slug) == set()
    assert old.remove_brand(library[1].slug) == 3  # no sellers table: nothing to forget
    extra = write_gallery([library[10]], tmp_path / "more") / library[10].slug
    (extra / "brand.json").write_text('{"authorized_sellers": ["seller-1"]}')
    old.add_brand(extra, HistogramEmbedder())
    assert old.records_sellers and old.authorized_sellers(extra.name) == {"seller-1"}
    assert GalleryIndex.open(folder, "emb-test").authorized_sellers(extra.name) == {"seller-1"}


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_build_never_replaces_what_is_not_an_index(tmp_path, gallery, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("notes")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("notes")
    with pytest.raises(GalleryError, match="exists and is not a gallery index"):
        GalleryIndex.build(gallery, out, HistogramEmbedder(), "v", views=1)
    assert (out.read_text() if kind == "file" else (out / "notes.txt").read_text()) == "notes"


@pytest.mark.parametrize("kind", ["empty folder", "index"])
def test_build_writes_into_an_empty_folder_or_over_an_index(tmp_path, gallery, kind):
    out = tmp_path / "out"
    if kind == "index":
        GalleryIndex.build(gallery, out, HistogramEmbedder(), "old", views=1).close()
    else:
        out.mkdir()
    with GalleryIndex.build(gallery, out, HistogramEmbedder(), "new", views=1) as idx:
        assert idx.model_version == "new"


class _FailingEmbedder(HistogramEmbedder):
    """Fails on its third batch, as a run stopped part-way through a build would."""

    calls = 0

    def embed(self, crops):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("embedder failed")
        return super().embed(crops)


def test_failed_build_keeps_previous_index(tmp_path, index, gallery):
    index.close()
    before = json.loads((tmp_path / "index" / "index.json").read_text())
    with pytest.raises(RuntimeError, match="embedder failed"):
        GalleryIndex.build(gallery, tmp_path / "index", _FailingEmbedder(), "emb-test", views=3)
    assert json.loads((tmp_path / "index" / "index.json").read_text()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".building-")] == []


@pytest.mark.parametrize("broken", [1, 3, 12])
def test_every_unreadable_image_is_named_before_anything_is_embedded(tmp_path, gallery, broken):
    for n in range(broken):
        (gallery / f"broken{n:02d}").mkdir()
        (gallery / f"broken{n:02d}" / "ref.png").write_bytes(b"not a png")
    embedder = _FailingEmbedder()
    with pytest.raises(GalleryError, match=f"{broken} of {broken + 5} gallery images cannot be read") as err:
        GalleryIndex.build(gallery, tmp_path / "idx", embedder, "v", views=1)
    assert embedder.calls == 0 and not (tmp_path / "idx").exists()
    named = min(broken, 10)
    assert str(err.value).count("ref.png") == named
    assert ("more" in str(err.value)) == (broken > 10)


def test_add_names_an_unreadable_image_before_changing_anything(tmp_path, index, library):
    extra = write_gallery([library[10]], tmp_path / "more") / library[10].slug
    (extra / "zz.png").write_bytes(b"not a png")
    with pytest.raises(GalleryError, match="1 of 2 gallery images cannot be read"):
        index.add_brand(extra, HistogramEmbedder())
    assert len(index) == 15 and library[10].slug not in index.brands


def test_thresholds_are_calibrated_per_brand(index, library):
    for brand in index.brands:
        assert -1.0 <= index.threshold(brand) <= 1.0
    assert index.threshold("unknown-brand") == 1.0


def test_large_galleries_use_an_approximate_index():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(2000, 16)).astype(np.float32)
    idx = make_faiss_index(16, 200_000, vecs)
    assert "IVF" in type(idx).__name__


def test_authenticity_lookup(index, library):
    brand = library[0].slug
    row = int(np.nonzero(index.auth_ids == 1)[0][0])
    sim, ref = index.authenticity(index.auth[row].astype(np.float32), brand)
    assert ref == 1 and sim == pytest.approx(1.0, abs=1e-2)
    assert index.authenticity(index.auth[row].astype(np.float32), "unknown") == (0.0, -1)


_BGR = np.array([[[10, 128, 250], [0, 0, 0]], [[255, 255, 255], [60, 70, 80]]], np.uint8)


@pytest.mark.parametrize(
    ("name", "stored", "expected"),
    [
        ("rgb8.png", _BGR, _BGR[..., ::-1]),
        ("rgb16.png", _BGR.astype(np.uint16) * 257, _BGR[..., ::-1]),
        ("gray16.png", _BGR[..., 0].astype(np.uint16) * 257, np.repeat(_BGR[..., :1], 3, axis=2)),
        # Fully opaque and fully transparent pixels, 16 bits deep: the transparent ones go white.
        (
            "rgba16.png",
            np.dstack([_BGR, np.array([[255, 0], [255, 0]], np.uint8)]).astype(np.uint16) * 257,
            np.where(np.array([[1, 0], [1, 0]], bool)[..., None], _BGR[..., ::-1], 255),
        ),
        ("float.tiff", _BGR.astype(np.float32) / 255, _BGR[..., ::-1]),
    ],
)
def test_read_rgb_takes_every_bit_depth(tmp_path, name, stored, expected):
    import cv2

    from pipeline.gallery.index import read_rgb

    assert cv2.imwrite(str(tmp_path / name), stored)
    img = read_rgb(tmp_path / name)
    assert img.dtype == np.uint8 and img.shape == (2, 2, 3)
    np.testing.assert_array_equal(img, expected)
