from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth.render import (
    MARK,
    PRODUCT,
    TRAINING_HANDS,
    Hands,
    MarkViews,
    Pose,
    SceneItem,
    busy_background,
    gallery_image,
    random_scene,
    render_frame,
    render_mark_crop,
    render_mark_crops,
    render_mark_views,
)


def _ink_box(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(np.abs(after.astype(int) - before.astype(int)).sum(2) > 60)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


@pytest.mark.parametrize("angle", [0.0, 20.0, -35.0])
@pytest.mark.parametrize("size", [24.0, 80.0])
def test_mark_box_matches_rendered_ink(library, angle, size):
    """Without camera effects, the labelled mark box is where the ink landed."""
    rng = np.random.default_rng(1)
    mark = library.get("stripe")
    item = SceneItem(mark.mask, (0, 0, 0), (255, 255, 255), 0, (0.5, 0.5, 0.5, 0.5), 1)
    pose = Pose(160, 90, size, angle)
    bg = np.full((180, 320, 3), 255, np.uint8)
    blank = SceneItem(np.zeros_like(mark.mask), (0, 0, 0), (255, 255, 255), 0, (0.5, 0.5, 0.5, 0.5), 1)
    product_only, _ = render_frame(bg, [blank], [pose], rng, effects=0.0)
    frame, anns = render_frame(bg, [item], [pose], rng, effects=0.0)
    marks = [a for a in anns if a.category == MARK]
    assert len(marks) == 1
    np.testing.assert_allclose(marks[0].box, _ink_box(product_only, frame), atol=1.5)


def test_random_scene_boxes_inside_frame(library):
    rng = np.random.default_rng(2)
    for _ in range(5):
        frame, boxes, classes = random_scene(rng, [(m.mask, m.colour) for m in library[:3]], 320, 180)
        assert frame.shape == (180, 320, 3) and frame.dtype == np.uint8
        assert boxes.shape == (len(classes), 4)
        assert set(classes.tolist()) <= {MARK, PRODUCT}
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 320).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_empty_scene_has_no_boxes():
    _frame, boxes, classes = random_scene(np.random.default_rng(0), [], 64, 48)
    assert boxes.shape == (0, 4) and classes.shape == (0,)


def test_hidden_mark_is_not_labelled(library):
    """A product drawn over a mark hides it: no box for a mark nobody can see."""
    mark = library[0]
    item = SceneItem(mark.mask, (0, 0, 0), (255, 255, 255), 0, (0.2, 0.2, 0.2, 0.2), 1)
    cover = SceneItem(np.zeros((8, 8), np.uint8), (0, 0, 0), (90, 90, 90), 0, (3.0, 3.0, 3.0, 3.0), 2)
    bg = busy_background(np.random.default_rng(0), 180, 320)
    _, anns = render_frame(
        bg, [item, cover], [Pose(160, 90, 40), Pose(160, 90, 40)], np.random.default_rng(0), effects=0
    )
    assert [a for a in anns if a.category == MARK and a.item == 0] == []


def test_crop_and_gallery_image(library):
    crop = render_mark_crop(np.random.default_rng(0), library[0].mask, library[0].colour)
    assert crop is not None and crop.shape == (64, 64, 3)
    img = gallery_image(library[0].mask, library[0].colour)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.3,0.05,0.25", Hands(0.3, (0.05, 0.25))),
        ("0,0,0", Hands(0.0, (0.0, 0.0))),
        ("1, 0.2, 0.2", Hands(1.0, (0.2, 0.2))),
        ("0.3,0.05", "ODDS,LOW,HIGH"),
        ("a,b,c", "ODDS,LOW,HIGH"),
        ("1.5,0.1,0.2", "probability"),
        ("0.5,0.3,0.1", "low <= high"),
    ],
)
def test_hands_from_arg(text, expected):
    if isinstance(expected, Hands):
        assert Hands.from_arg(text) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            Hands.from_arg(text)


@pytest.mark.parametrize("hands", [TRAINING_HANDS, Hands(0.3, (0.05, 0.25)), Hands(0.0, (0.0, 0.0))])
def test_hands_to_arg_reads_back(hands):
    assert Hands.from_arg(hands.to_arg()) == hands


def test_hands_reach_over_rendered_marks(library):
    """With the same draws, a hand always there changes the crops; never there, it matches the
    training hands whenever those drew none."""
    mark = library[3]
    seeds = range(12)

    def crops(hands):
        return [render_mark_crops(np.random.default_rng(s), mark.mask, mark.colour, (96,), hands=hands) for s in seeds]

    none, always, usual = crops(Hands(0.0)), crops(Hands(1.0, (0.3, 0.3))), crops(TRAINING_HANDS)
    pairs = [(a, b) for a, b in zip(none, always, strict=True) if a is not None and b is not None]
    assert pairs and all(not np.array_equal(a[0], b[0]) for a, b in pairs)
    # The training hands (odds 0.15) drew no hand for most seeds: those crops are the hand-free ones.
    same = sum(a is not None and b is not None and np.array_equal(a[0], b[0]) for a, b in zip(none, usual, strict=True))
    assert same >= len(seeds) // 2


@pytest.mark.parametrize(("hands", "covered"), [(Hands(0.0), False), (Hands(1.0, (0.2, 0.3)), True)])
def test_mark_views_say_where_the_hand_lies(library, hands, covered):
    """The hand mask is cut as the crop is: under it lies the hand's skin colour, and the views
    draw the same crops as ``render_mark_crops``."""
    mark = library[3]
    for seed in range(6):
        views = render_mark_views(np.random.default_rng(seed), mark.mask, mark.colour, (64, 128), hands=hands)
        crops = render_mark_crops(np.random.default_rng(seed), mark.mask, mark.colour, (64, 128), hands=hands)
        if views is None:
            assert crops is None
            continue
        assert crops is not None and all(np.array_equal(a, b) for a, b in zip(views.crops, crops, strict=True))
        for crop, hand in zip(views.crops, views.hands, strict=True):
            assert hand.shape == crop.shape[:2] and hand.dtype == np.uint8
            assert (hand > 127).any() == covered
        if covered:
            crop, hand = views.crops[1], views.hands[1] > 127
            inside = crop[hand].astype(float).mean(0)
            # Skin is redder than it is blue, whatever the lighting did to it.
            assert inside[0] > inside[2]


def test_hand_layer_must_match_the_frame(library):
    bg = np.zeros((40, 60, 3), np.uint8)
    with pytest.raises(ValueError, match=r"expected an \(40, 60\) uint8 hand layer"):
        render_frame(bg, [], [], np.random.default_rng(0), hand_layer=np.zeros((40, 61), np.uint8))


def test_mark_views_need_a_hand_mask_per_crop():
    with pytest.raises(ValueError, match="one hand mask per crop"):
        MarkViews([np.zeros((8, 8, 3), np.uint8)], [])
    with pytest.raises(ValueError, match=r"expected a \(8, 8\) uint8 hand mask"):
        MarkViews([np.zeros((8, 8, 3), np.uint8)], [np.zeros((8, 8), np.float32)])
