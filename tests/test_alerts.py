"""Evidence pictures: the panels a reviewer sees."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.alerts import Alert, evidence_image, media_clock, review_page

CROP = np.full((64, 64, 3), 90, np.uint8)
REF = np.full((100, 200, 3), 250, np.uint8)
ALIGNED = np.full((128, 128, 3), 30, np.uint8)


@pytest.mark.parametrize(
    ("reference", "aligned", "width"),
    [
        (REF, None, 2 * 256 + 4),  # crop | reference
        (None, None, 2 * 256 + 4),  # the reference image is gone: a grey panel says so
        (REF, ALIGNED, 3 * 256 + 8),  # verifier mode: crop | reference | reference aligned onto the mark
    ],
)
def test_evidence_panels(reference, aligned, width):
    img = evidence_image(CROP, reference, "acme", 0.8, 0.4, "s t=1.0s", aligned)
    assert img.shape == (54 + 256, width, 3) and img.dtype == np.uint8
    if aligned is not None:
        assert (img[54:, -256:] == 30).all()


def test_evidence_note_gets_a_caption_line_of_its_own():
    plain = evidence_image(CROP, REF, "acme", 0.8, 0.4, "s t=1.0s")
    noted = evidence_image(CROP, REF, "acme", 0.8, 0.4, "s t=1.0s", note="seller s-1 is authorized for acme")
    assert noted.shape == (plain.shape[0] + 22, plain.shape[1], 3)
    assert (noted[:54] == plain[:54]).all() and (noted[76:] == plain[54:]).all()
    assert (noted[54:76] > 200).any()  # the note's white text


def _alert(stream, t, brand="acme", evidence=None):
    return Alert(
        stream,
        t,
        round(t * 30),
        brand,
        (1, 2, 3, 4),
        0.7,
        track=3,
        evidence=evidence,
        matches=({"brand": brand, "ref": 1, "similarity": 0.61},),
    )


def test_review_page_links_each_alerts_evidence_by_stream_and_time(tmp_path):
    ev = tmp_path / "run" / "alerts_evidence"
    ev.mkdir(parents=True)
    (ev / "a.jpg").write_bytes(b"jpeg")
    alerts = [_alert("s2", 1.0, evidence=str(ev / "a.jpg")), _alert("s1", 9.5), _alert("s1", 2.0, brand="zeta")]
    page = review_page(alerts, tmp_path / "run" / "alerts_review.html").read_text()
    assert "3 alerts in 2 streams; brands: acme, zeta" in page
    # Streams in order, each stream's alerts by time.
    assert page.index("<h2>s1") < page.index("zeta</b> at 0:02.0") < page.index("at 0:09.5") < page.index("<h2>s2")
    assert "src='alerts_evidence/a.jpg'" in page  # relative to the page, so the folder can move
    assert page.count("no evidence image") == 2  # the two alerts without a file
    assert "nearest references: acme 0.61" in page and "track 3" in page


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        ([], "No alerts."),
        ([_alert("<script>x</script>", 0.0, brand="a&b")], "&lt;script&gt;x&lt;/script&gt;"),
    ],
)
def test_review_page_empty_and_escaped(tmp_path, alerts, expected):
    page = review_page(alerts, tmp_path / "r.html").read_text()
    assert expected in page and "<script>x" not in page


@pytest.mark.parametrize(
    ("t", "text"), [(0.0, "0:00.0"), (5.46, "0:05.5"), (61.0, "1:01.0"), (3725.25, "1:02:05.2"), (-1.0, "0:00.0")]
)
def test_media_clock(t, text):
    assert media_clock(t) == text


@pytest.mark.parametrize(
    ("seller", "authorized", "shown", "absent"),
    [
        (None, None, None, "seller"),
        ("reseller-9", False, "<small>seller reseller-9</small>", "authorized for"),
        ("seller-17", True, "seller seller-17: authorized for acme", None),
    ],
)
def test_seller_fields_round_trip_and_show_on_the_review_page(tmp_path, seller, authorized, shown, absent):
    import dataclasses

    alert = dataclasses.replace(_alert("s1", 1.0), seller=seller, authorized_seller=authorized)
    line = alert.to_json()
    assert line.get("seller") == seller and line.get("authorized_seller") == authorized
    assert Alert.from_json(line, "x") == alert
    page = review_page([alert], tmp_path / "r.html").read_text()
    if shown is not None:
        assert shown in page
    if absent is not None:
        assert absent not in page.split("<body>")[1]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_authorized_seller_must_be_a_boolean(value):
    from pipeline.alerts import AlertFormatError

    line = {**_alert("s1", 1.0).to_json(), "seller": "s", "authorized_seller": value}
    with pytest.raises(AlertFormatError, match="authorized_seller must be true or false"):
        Alert.from_json(line, "alerts.jsonl:1")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("seller-17", "seller-17"),
        ("  seller 17 ", "seller 17"),
        ("x" * 128, "x" * 128),
        ("", ValueError),
        ("   ", ValueError),
        ("a\nb", ValueError),
        ("a\rb", ValueError),
        ("a\0b", ValueError),
        ("x" * 129, ValueError),
    ],
)
def test_seller_id(given, expected):
    from pipeline.alerts import seller_id

    if expected is ValueError:
        with pytest.raises(ValueError, match="1-128 characters on one line"):
            seller_id(given)
    else:
        assert seller_id(given) == expected
