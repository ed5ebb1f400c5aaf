"""Rendering livestream-like frames: products carrying marks on busy backgrounds.

The renderer works in two steps so that clips stay coherent over time: a ``SceneItem`` holds
what does not change (the mark's shape and colour, the product's look), and ``render_frame``
draws items at given poses with camera effects on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.boxes import CROP_SIZE, cut_crops

MARK = 0
PRODUCT = 1
CLASS_NAMES = ("mark", "product")
# Size range, in pixels, of a mark in an embedder training crop before the crop is scaled: the
# marks of streams, from tiny to large.
MARK_SIZES = (16.0, 110.0)


@dataclass(frozen=True)
class Hands:
    """How often a rendered crop shows a presenter's hand over the mark (``odds``), and how far it
    reaches over it (``reach``: a range of fractions of the mark's size)."""

    odds: float = 0.15
    reach: tuple[float, float] = (0.05, 0.2)

    def __post_init__(self) -> None:
        if not 0.0 <= self.odds <= 1.0:
            raise ValueError(f"hand odds: expected a probability in [0, 1], got {self.odds}")
        if not 0.0 <= self.reach[0] <= self.reach[1] <= 1.0:
            raise ValueError(f"hand reach: expected 0 <= low <= high <= 1, got {self.reach}")

    @classmethod
    def from_arg(cls, text: str) -> Hands:
        """``"ODDS,LOW,HIGH"``, e.g. ``"0.3,0.05,0.25"`` (the labelled clips' hands)."""
        try:
            odds, low, high = (float(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"hands: expected ODDS,LOW,HIGH (three numbers), got {text!r}") from None
        return cls(odds, (low, high))

    def to_arg(self) -> str:
        """The ``from_arg`` text of these hands."""
        return f"{self.odds},{self.reach[0]},{self.reach[1]}"


# The hands of the embedder's and verifier's training crops.
TRAINING_HANDS = Hands()

_SKIN = [(224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (241, 194, 125)]
_WORDS = ["SALE", "NEW", "LIVE", "50%", "HOT", "BUY", "SHOP", "VIP", "TOP", "OK", "FREE"]


def luminance(rgb: tuple[int, int, int] | np.ndarray) -> float:
    """Perceived brightness of an RGB colour, 0..255."""
    r, g, b = (float(v) for v in rgb)
    return 0.299 * r + 0.587 * g + 0.114 * b


def pick_mark_colour(
    rng: np.random.Generator, brand: tuple[int, int, int], surface: tuple[int, int, int]
) -> tuple[int, int, int]:
    """Paint a mark in its brand colour, black or white, readable on ``surface``."""
    options = [brand, (20, 20, 20), (245, 245, 245)]
    rng.shuffle(options)
    for colour in options:
        if abs(luminance(colour) - luminance(surface)) > 70:
            return tuple(int(c) for c in colour)  # type: ignore[return-value]
    return (20, 20, 20) if luminance(surface) > 127 else (245, 245, 245)


def busy_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered room-like background: gradients, shapes, shelves and stray text."""
    base = rng.integers(0, 256, 3)
    other = rng.integers(0, 256, 3)
    t = np.linspace(0, 1, width if rng.random() < 0.5 else height, dtype=np.float32)
    grad = base[None, :] * (1 - t[:, None]) + other[None, :] * t[:, None]
    if len(t) == width:
        img = np.broadcast_to(grad[None, :, :], (height, width, 3)).copy()
    else:
        img = np.broadcast_to(grad[:, None, :], (height, width, 3)).copy()
    img = img.astype(np.uint8)
    scale = max(height, width)
    for _ in range(rng.integers(8, 30)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(4)
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        s = int(rng.uniform(0.02, 0.25) * scale)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.3, 2))), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), s // 2, colour, -1)
        elif kind == 2:
            cv2.line(img, (x, y), (x + s, y + int(rng.integers(-s, s + 1))), colour, int(rng.integers(1, 6)))
        else:
            word = str(rng.choice(_WORDS))
            cv2.putText(img, word, (x, y), int(rng.integers(0, 8)), s / 60 + 0.3, colour, int(rng.integers(1, 4)))
    noise = cv2.resize(
        rng.normal(0, 18, (max(2, height // 16), max(2, width // 16), 3)).astype(np.float32),
        (width, height),
    )
    img = np.clip(img.astype(np.float32) + noise, 0, 255)
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0)).astype(np.uint8)


@dataclass(frozen=True)
class SceneItem:
    """A product carrying one mark, as it looks regardless of pose."""

    mask: np.ndarray = field(repr=False)
    mark_colour: tuple[int, int, int]
    product_colour: tuple[int, int, int]
    product_shape: int  # 0 box, 1 ellipse, 2 bag (trapezoid)
    product_margin: tuple[float, float, float, float]  # left, top, right, bottom, in mark sizes
    texture_seed: int

    @classmethod
    def make(
        cls,
        rng: np.random.Generator,
        mask: np.ndarray,
        brand_colour: tuple[int, int, int],
    ) -> SceneItem:
        """Draw a product look and a mark colour for ``mask``."""
        product = tuple(int(c) for c in rng.integers(0, 256, 3))
        return cls(
            mask=mask,
            mark_colour=pick_mark_colour(rng, brand_colour, product),  # type: ignore[arg-type]
            product_colour=product,  # type: ignore[arg-type]
            product_shape=int(rng.integers(3)),
            product_margin=tuple(float(v) for v in rng.uniform(0.2, 1.2, 4)),  # type: ignore[arg-type]
            texture_seed=int(rng.integers(2**31)),
        )


@dataclass(frozen=True)
class Pose:
    """Where an item is in a frame: mark centre, longer side in pixels, angle, perspective."""

    cx: float
    cy: float
    size: float
    angle: float = 0.0
    tilt: tuple[float, ...] = (0.0,) * 8  # corner offsets, in mark sizes

    @classmethod
    def random(cls, rng: np.random.Generator, width: int, height: int, size: float) -> Pose:
        """A random pose of a mark of longer side ``size`` inside a frame."""
        return cls(
            cx=float(rng.uniform(size * 0.6, width - size * 0.6)),
            cy=float(rng.uniform(size * 0.6, height - size * 0.6)),
            size=size,
            angle=float(rng.normal(0, 12)),
            tilt=tuple(float(v) for v in rng.uniform(-0.12, 0.12, 8)),
        )


def homography(mask_shape: tuple[int, int], pose: Pose) -> np.ndarray:
    """The 3x3 map from mask pixels to frame pixels for ``pose``."""
    h, w = mask_shape
    s = pose.size / max(h, w)
    hw, hh = w * s / 2, h * s / 2
    corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]], np.float32)
    corners += np.asarray(pose.tilt, np.float32).reshape(4, 2) * pose.size
    a = np.deg2rad(pose.angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    dst = corners @ rot.T + np.array([pose.cx, pose.cy], np.float32)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def _warp_into(
    frame_shape: tuple[int, int], image: np.ndarray, hmat: np.ndarray, corners: np.ndarray
) -> tuple[np.ndarray, tuple[int, int]]:
    """Warp ``image`` by ``hmat`` into the bounding region of ``corners``; returns (patch, origin)."""
    fh, fw = frame_shape
    pts = cv2.perspectiveTransform(corners.reshape(-1, 1, 2).astype(np.float32), hmat).reshape(-1, 2)
    x0, y0 = np.floor(pts.min(0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, fw), min(y1, fh)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0, *image.shape[2:]), image.dtype), (0, 0)
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    patch = cv2.warpPerspective(image, shift @ hmat, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    return patch, (int(x0), int(y0))


def _product_polygon(item: SceneItem) -> np.ndarray:
    h, w = item.mask.shape
    s = max(h, w)
    ml, mt, mr, mb = (m * s for m in item.product_margin)
    x0, y0, x1, y1 = -ml, -mt, w + mr, h + mb
    if item.product_shape == 1:
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 1.6, (y1 - y0) / 1.6
        return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1).astype(np.float32)
    if item.product_shape == 2:
        inset = 0.15 * (x1 - x0)
        return np.array([[x0 + inset, y0], [x1 - inset, y0], [x1, y1], [x0, y1]], np.float32)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _box_of(alpha: np.ndarray, origin: tuple[int, int], threshold: float) -> np.ndarray | None:
    ys, xs = np.nonzero(alpha > threshold)
    if len(xs) == 0:
        return None
    ox, oy = origin
    return np.array([xs.min() + ox, ys.min() + oy, xs.max() + 1 + ox, ys.max() + 1 + oy], np.float32)


def draw_item(frame: np.ndarray, item: SceneItem, pose: Pose) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Draw a product and its mark in place.

    Returns:
        The product box (None where off-frame), and the product's and the mark's coverage as
        full-frame alphas, used to box the mark after later occlusion.
    """
    fh, fw = frame.shape[:2]
    hmat = homography(item.mask.shape, pose)
    poly = _product_polygon(item)
    pts = cv2.perspectiveTransform(poly.reshape(-1, 1, 2), hmat).reshape(-1, 2)
    prod_alpha = np.zeros((fh, fw), np.uint8)
    if not np.isfinite(pts).all() or np.abs(pts).max() > 16 * max(fh, fw):
        # A product seen edge-on (a degenerate perspective): nothing visible to draw.
        return None, prod_alpha, np.zeros((fh, fw), np.float32)
    cv2.fillPoly(prod_alpha, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    ys, xs = np.nonzero(prod_alpha > 127)
    product_box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32) if len(xs) else None
    if product_box is not None:
        rng = np.random.default_rng(item.texture_seed)
        x0, y0, x1, y1 = product_box.astype(int)
        tex = np.asarray(item.product_colour, np.float32)[None, None, :] * np.ones((y1 - y0, x1 - x0, 1), np.float32)
        grain = rng.normal(0, rng.uniform(3, 14), (max(2, (y1 - y0) // 3), max(2, (x1 - x0) // 3), 1))
        tex += cv2.resize(grain.astype(np.float32), (x1 - x0, y1 - y0))[..., None]
        shade = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(1.0, 1.2), x1 - x0, dtype=np.float32)
        tex *= shade[None, :, None]
        a = prod_alpha[y0:y1, x0:x1, None].astype(np.float32) / 255
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi * (1 - a) + np.clip(tex, 0, 255) * a, 0, 255).astype(np.uint8)

    mh, mw = item.mask.shape
    corners = np.array([[0, 0], [mw, 0], [mw, mh], [0, mh]], np.float32)
    patch, (ox, oy) = _warp_into((fh, fw), item.mask, hmat, corners)
    alpha = np.zeros((fh, fw), np.float32)
    if patch.size:
        a = patch.astype(np.float32) / 255
        ph, pw = a.shape
        alpha[oy : oy + ph, ox : ox + pw] = a
        roi = frame[oy : oy + ph, ox : ox + pw].astype(np.float32)
        ink = np.asarray(item.mark_colour, np.float32)
        frame[oy : oy + ph, ox : ox + pw] = (roi * (1 - a[..., None]) + ink * a[..., None]).astype(np.uint8)
    return product_box, prod_alpha, alpha


def draw_hand(frame: np.ndarray, rng: np.random.Generator, near: np.ndarray, reach: float) -> np.ndarray:
    """Draw a presenter's hand overlapping the box ``near``; returns its uint8 mask."""
    fh, fw = frame.shape[:2]
    x1, y1, x2, y2 = near
    size = max(x2 - x1, y2 - y1)
    side = rng.integers(4)
    cx = [x1, x2, (x1 + x2) / 2, (x1 + x2) / 2][side]
    cy = [(y1 + y2) / 2, (y1 + y2) / 2, y1, y2][side]
    direction = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]][side], np.float32)
    inside = reach * size
    centre = np.array([cx, cy], np.float32) + direction * (size * 0.5 - inside)
    colour = tuple(int(c) for c in _SKIN[int(rng.integers(len(_SKIN)))])
    mask = np.zeros((fh, fw), np.uint8)
    axis = (int(size * 0.55), int(size * 0.4))
    angle = float(np.degrees(np.arctan2(direction[1], direction[0])))
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axis, angle, 0, 360, 255, -1)
    for k in range(4):  # fingers reaching towards the product
        off = (k - 1.5) * size * 0.16
        perp = np.array([-direction[1], direction[0]], np.float32)
        base = centre - direction * size * 0.3 + perp * off
        tip = base - direction * size * 0.35
        cv2.line(mask, tuple(int(v) for v in base), tuple(int(v) for v in tip), 255, max(2, int(size * 0.1)))
    frame[mask > 0] = colour
    return mask


def camera_effects(frame: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Relight, blur and add sensor noise, as a phone camera on a stream would."""
    gain = rng.uniform(1 - 0.35 * strength, 1 + 0.25 * strength)
    cast = rng.uniform(1 - 0.12 * strength, 1 + 0.12 * strength, 3)
    offset = rng.uniform(-20, 20) * strength
    gamma = rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength)
    # Gain, cast, offset and gamma are per-channel curves: one lookup table each.
    levels = np.arange(256, dtype=np.float32)
    luts = [255.0 * (np.clip(levels * gain * c + offset, 0, 255) / 255.0) ** gamma for c in cast]
    lut = np.clip(np.stack(luts, axis=1), 0, 255).astype(np.uint8)[:, None, :]
    img: np.ndarray = cv2.LUT(frame, lut)
    r = rng.random()
    if r < 0.3 * strength:
        k = int(rng.integers(3, 9))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = np.asarray(cv2.warpAffine(kernel, rot, (k, k)), np.float32)
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    elif r < 0.7 * strength:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.4))
    sigma = rng.uniform(0, 6) * strength
    if sigma > 0.5:
        noise = np.asarray(rng.normal(0, sigma, img.shape)).astype(np.int16)
        img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return img


def jpeg(frame: np.ndarray, rng: np.random.Generator, low: int = 35, high: int = 90) -> np.ndarray:
    """Round-trip through JPEG at a random quality (stands in for stream compression)."""
    q = int(rng.integers(low, high + 1))
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, q])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return frame if decoded is None else np.asarray(decoded)


@dataclass(frozen=True)
class Annotation:
    """One labelled object in a rendered frame."""

    box: np.ndarray  # (4,) x1, y1, x2, y2 (exclusive), source pixels
    category: int  # MARK or PRODUCT
    item: int  # index of the SceneItem it belongs to


def render_frame(
    background: np.ndarray,
    items: list[SceneItem],
    poses: list[Pose],
    rng: np.random.Generator,
    hands: list[float] | None = None,
    effects: float = 1.0,
    hand_layer: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Annotation]]:
    """Render one RGB frame and its mark and product boxes.

    Args:
        background: (H, W, 3) uint8 RGB background (not modified).
        items: products with marks.
        poses: one pose per item.
        rng: random source for occluders and camera effects.
        hands: per item, how far a hand reaches over the mark (0 = no hand).
        effects: strength of camera effects (0 = none).
        hand_layer: an (H, W) uint8 array every hand drawn is also painted into (255), for training
            models to tell a hand from the mark it covers; None: not recorded.
    """
    if len(items) != len(poses):
        raise ValueError(f"expected one pose per item, got {len(items)} items and {len(poses)} poses")
    if hand_layer is not None and (hand_layer.shape != background.shape[:2] or hand_layer.dtype != np.uint8):
        got = f"{hand_layer.shape} {hand_layer.dtype}"
        raise ValueError(f"expected an {background.shape[:2]} uint8 hand layer, got {got}")
    frame = background.copy()
    annotations: list[Annotation] = []
    alphas: list[np.ndarray] = []
    for i, (item, pose) in enumerate(zip(items, poses, strict=True)):
        product_box, product_alpha, alpha = draw_item(frame, item, pose)
        # A later product covers earlier marks.
        for a in alphas:
            a *= product_alpha < 128
        alphas.append(alpha)
        mark_box = _box_of(alpha, (0, 0), 0.5)
        if product_box is not None:
            annotations.append(Annotation(product_box, PRODUCT, i))
        if hands and hands[i] > 0 and mark_box is not None:
            hand = draw_hand(frame, rng, mark_box, hands[i])
            alphas[i] = alphas[i] * (hand == 0)
            if hand_layer is not None:
                np.maximum(hand_layer, hand, out=hand_layer)
    for i, alpha in enumerate(alphas):
        box = _box_of(alpha, (0, 0), 0.5)
        # A mark mostly hidden is not labelled (nor expected to be detected).
        if box is not None and (alpha > 0.5).sum() >= 0.35 * max((alpha > 0).sum(), 1):
            annotations.append(Annotation(box, MARK, i))
    if effects > 0:
        frame = camera_effects(frame, rng, effects)
    return frame, annotations


def render_mark_crop(
    rng: np.random.Generator,
    mask: np.ndarray,
    brand_colour: tuple[int, int, int],
    size: int = CROP_SIZE,
    box_jitter: float = 0.08,
    clean: bool = False,
    apparent: tuple[float, float] = MARK_SIZES,
) -> np.ndarray | None:
    """Render a mark as the detector would hand it to the embedder: a square crop.

    ``clean`` renders a gallery-style reference (flat product, no tilt, no camera effects);
    ``apparent`` is the range of the mark's size in the frame, in pixels.
    Returns an (size, size, 3) uint8 RGB crop, or None when the mark ended up hidden.
    """
    crops = render_mark_crops(rng, mask, brand_colour, (size,), box_jitter, clean, apparent)
    return None if crops is None else crops[0]


def render_mark_crops(
    rng: np.random.Generator,
    mask: np.ndarray,
    brand_colour: tuple[int, int, int],
    sizes: tuple[int, ...] = (CROP_SIZE,),
    box_jitter: float = 0.08,
    clean: bool = False,
    apparent: tuple[float, float] = MARK_SIZES,
    hands: Hands = TRAINING_HANDS,
) -> list[np.ndarray] | None:
    """``render_mark_crop`` cut at several sizes from one rendering (the embedder's crop and the
    verifier's larger one see the same mark); None when the mark ended up hidden. ``hands``: how
    often and how far a presenter's hand reaches over the mark.
    """
    views = render_mark_views(rng, mask, brand_colour, sizes, box_jitter, clean, apparent, hands)
    return None if views is None else views.crops


@dataclass(frozen=True)
class MarkViews:
    """One rendered mark cut at several sizes, with the presenter's hand over each cut."""

    crops: list[np.ndarray]  # (S, S, 3) uint8 RGB per size
    hands: list[np.ndarray]  # (S, S) uint8 per size: 255 where a hand covers the crop

    def __post_init__(self) -> None:
        if len(self.crops) != len(self.hands):
            raise ValueError(f"expected one hand mask per crop, got {len(self.crops)} crops and {len(self.hands)}")
        for crop, hand in zip(self.crops, self.hands, strict=True):
            if hand.shape != crop.shape[:2] or hand.dtype != np.uint8:
                raise ValueError(f"expected a {crop.shape[:2]} uint8 hand mask, got {hand.shape} {hand.dtype}")


def render_mark_views(
    rng: np.random.Generator,
    mask: np.ndarray,
    brand_colour: tuple[int, int, int],
    sizes: tuple[int, ...] = (CROP_SIZE,),
    box_jitter: float = 0.08,
    clean: bool = False,
    apparent: tuple[float, float] = MARK_SIZES,
    hands: Hands = TRAINING_HANDS,
) -> MarkViews | None:
    """``render_mark_crops`` with where the hand lies in each crop; the same draws from ``rng``."""
    canvas = 160
    bg = busy_background(rng, canvas, canvas)
    item = SceneItem.make(rng, mask, brand_colour)
    layer = np.zeros((canvas, canvas), np.uint8)
    if clean:
        pose = Pose(canvas / 2, canvas / 2, canvas * 0.55)
        frame, anns = render_frame(bg, [item], [pose], rng, effects=0.0)
    else:
        pose = Pose(
            canvas / 2 + rng.normal(0, 4),
            canvas / 2 + rng.normal(0, 4),
            canvas * rng.uniform(0.4, 0.6),
            float(rng.normal(0, 10)),
            tuple(float(v) for v in rng.uniform(-0.1, 0.1, 8)),
        )
        hand = [float(rng.uniform(*hands.reach))] if rng.random() < hands.odds else None
        frame, anns = render_frame(bg, [item], [pose], rng, hands=hand, effects=1.0, hand_layer=layer)
        # Marks in streams range from tiny to large: render small, then let the crop upsample.
        shrink = min(1.0, rng.uniform(*apparent) / pose.size)
        if shrink < 1.0:
            small = cv2.resize(frame, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
            small = jpeg(small, rng)
            frame = cv2.resize(small, (canvas, canvas), interpolation=cv2.INTER_LINEAR)
        else:
            frame = jpeg(frame, rng)
    marks = [a.box for a in anns if a.category == MARK]
    if not marks:
        return None
    box = marks[0].astype(np.float32)
    if box_jitter > 0 and not clean:
        w, h = box[2] - box[0], box[3] - box[1]
        box = box + rng.normal(0, box_jitter, 4).astype(np.float32) * np.array([w, h, w, h], np.float32)
    # The layer is cut as the frame is (cut_crops takes three channels).
    layer3 = np.repeat(layer[..., None], 3, axis=2)
    return MarkViews(
        [cut_crops(frame, box[None], size)[0] for size in sizes],
        [np.ascontiguousarray(cut_crops(layer3, box[None], size)[0][..., 0]) for size in sizes],
    )


def random_scene(
    rng: np.random.Generator,
    masks: list[tuple[np.ndarray, tuple[int, int, int]]],
    width: int = 640,
    height: int = 360,
    min_mark: float = 14,
    max_mark: float = 150,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one detector training frame with the given (mask, brand colour) marks.

    Returns the RGB frame, (N, 4) float32 boxes and (N,) int64 classes.
    """
    bg = busy_background(rng, height, width)
    items, poses, hands = [], [], []
    for mask, colour in masks:
        # Log-uniform sizes: small marks are common in streams and the hardest to find.
        size = float(np.exp(rng.uniform(np.log(min_mark), np.log(max_mark))))
        items.append(SceneItem.make(rng, mask, colour))
        poses.append(Pose.random(rng, width, height, size))
        hands.append(float(rng.uniform(0.05, 0.3)) if rng.random() < 0.25 else 0.0)
    frame, anns = render_frame(bg, items, poses, rng, hands=hands, effects=float(rng.uniform(0.3, 1.0)))
    frame = jpeg(frame, rng, 40, 95)
    boxes = np.array([a.box for a in anns], np.float32).reshape(-1, 4)
    classes = np.array([a.category for a in anns], np.int64)
    return frame, boxes, classes


def gallery_image(mark_mask: np.ndarray, colour: tuple[int, int, int], size: int = 256) -> np.ndarray:
    """A plain product shot of an authentic mark, as a brand owner would enrol it (RGB)."""
    surface = (250, 250, 250) if luminance(colour) < 160 else (30, 30, 30)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = surface
    h, w = mark_mask.shape
    s = size * 0.7 / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    a = cv2.resize(mark_mask, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    roi = img[y0 : y0 + nh, x0 : x0 + nw].astype(np.float32)
    img[y0 : y0 + nh, x0 : x0 + nw] = (roi * (1 - a) + np.asarray(colour, np.float32) * a).astype(np.uint8)
    return img
