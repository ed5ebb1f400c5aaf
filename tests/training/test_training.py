"""A few real training steps of both models, and ONNX export checked against torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.training import export as export_mod  # noqa: E402
from models.training import train_detector, train_embedder, train_hands, train_verifier  # noqa: E402
from models.training.common import load_folded_weights  # noqa: E402
from models.training.detector import MarkDetector, make_targets  # noqa: E402
from models.training.verifier import AlignedVerifier, load_onnx_weights  # noqa: E402
from pipeline.infer.hands import OnnxHands  # noqa: E402
from pipeline.infer.models import ModelError, verify_model  # noqa: E402
from pipeline.infer.verifier import OnnxJudge  # noqa: E402
from pipeline.synth.datasets import brand_neighbours, crop_set, pair_set, write_detector_set  # noqa: E402
from pipeline.synth.render import Hands  # noqa: E402
from tests.conftest import SAMPLE_MARKS  # noqa: E402


@pytest.fixture(scope="module")
def detector_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    write_detector_set(SAMPLE_MARKS, root / "data", frames=8, seed=0, width=320, height=180)
    train_detector.main(
        ["--data", str(root / "data"), "--out", str(root / "run"), "--epochs", "1", "--batch", "4", "--threads", "2"]
    )
    return root / "run" / "last.pt"


@pytest.fixture(scope="module")
def embedder_ckpt(tmp_path_factory, library):
    root = tmp_path_factory.mktemp("emb")
    data = crop_set(list(library)[:6], authentic=3, counterfeit=2, seed=0)
    np.savez(root / "crops.npz", **data)
    train_embedder.main(
        [
            "--data",
            str(root / "crops.npz"),
            "--out",
            str(root / "run"),
            "--epochs",
            "2",
            "--batch",
            "8",
            "--threads",
            "2",
        ]
    )
    return root / "run" / "last.pt"


@pytest.fixture(scope="module")
def verifier_ckpt(tmp_path_factory, library):
    root = tmp_path_factory.mktemp("ver")
    marks = list(library)[:6]
    near = brand_neighbours(np.eye(len(marks), dtype=np.float32) + 0.1, 2)
    np.savez(root / "pairs.npz", **pair_set(marks, brands=4, authentic=2, seed=0, neighbours=near, others=2))
    args = ["--data", str(root / "pairs.npz"), "--val", str(root / "pairs.npz"), "--out", str(root / "run")]
    train_verifier.main([*args, "--epochs", "2", "--batch", "8", "--threads", "2"])
    return root / "run" / "last.pt"


def test_verifier_trains_exports_and_loads(verifier_ckpt, tmp_path):
    assert torch.load(verifier_ckpt, weights_only=False)["epoch"] == 1
    model = export_mod.load_model("verifier", verifier_ckpt)
    path = export_mod.export("verifier", model, tmp_path / "verifier.onnx")
    assert export_mod.max_relative_error("verifier", model, path) <= 1e-4
    export_mod.record(tmp_path / "manifest.json", path, "verifier")
    with OnnxJudge(path) as judge:
        x = export_mod.verifier_inputs(np.random.default_rng(1), 3)
        authentic, same = judge.judge(*(t.numpy() for t in x))
    for p in (authentic, same):
        assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()


def test_export_records_the_model_beside_it(verifier_ckpt, tmp_path):
    # The pipeline verifies a model against the manifest in its own folder: a model exported
    # anywhere loads there, and models/manifest.json is left alone.
    shipped = Path("models/manifest.json").read_text() if Path("models/manifest.json").exists() else None
    out = tmp_path / "trial" / "verifier.onnx"
    export_mod.main(["verifier", str(verifier_ckpt), str(out)])
    assert "verifier.onnx" in json.loads((out.parent / "manifest.json").read_text())
    with OnnxJudge(out) as judge:
        assert judge.version.startswith("verifier-")
    if shipped is not None:
        assert Path("models/manifest.json").read_text() == shipped


def test_verifier_fine_tunes_from_an_exported_model(verifier_ckpt, tmp_path):
    # --init with an .onnx file: the body and authentic head start as the file computes them.
    model = export_mod.load_model("verifier", verifier_ckpt)
    path = export_mod.export("verifier", model, tmp_path / "verifier.onnx")
    fresh = AlignedVerifier()
    load_onnx_weights(fresh, path)
    fresh.eval()
    x = export_mod.verifier_inputs(np.random.default_rng(2), 4)
    with torch.no_grad():
        assert torch.allclose(fresh(*x)[0], model(*x)[0], atol=1e-5)


def test_verifier_same_brand_body_fine_tunes_alone(verifier_ckpt, tmp_path):
    # --brand-body: the same-brand head gets a body of its own, a copy of the shared one, and only
    # those learn: the authentic output stays what the init file computes, the same-brand one moves,
    # and the exported model computes both.
    model = export_mod.load_model("verifier", verifier_ckpt)
    init = export_mod.export("verifier", model, tmp_path / "init.onnx")
    pairs = verifier_ckpt.parents[1] / "pairs.npz"
    common = ["--epochs", "1", "--batch", "8", "--threads", "2", "--lr", "0.01"]
    train_verifier.main(
        ["--data", str(pairs), "--out", str(tmp_path / "run"), "--init", str(init), "--brand-body", *common]
    )
    tuned = export_mod.load_model("verifier", tmp_path / "run" / "last.pt")
    assert tuned.brand_body is not None
    x = export_mod.verifier_inputs(np.random.default_rng(3), 4)
    with torch.no_grad():
        before, after = model(*x), tuned(*x)
    assert torch.allclose(after[0], before[0], atol=1e-5)
    assert not torch.allclose(after[1], before[1], atol=1e-6)
    path = export_mod.export("verifier", tuned, tmp_path / "verifier.onnx")
    assert export_mod.max_relative_error("verifier", tuned, path) <= 1e-4
    # Resuming from a checkpoint that has its own body keeps that body (no copy of the shared one).
    again_args = ["--data", str(pairs), "--out", str(tmp_path / "again"), "--init", str(tmp_path / "run" / "last.pt")]
    train_verifier.main([*again_args, "--brand-body", *common[:-1], "1e-9"])
    again = export_mod.load_model("verifier", tmp_path / "again" / "last.pt")
    with torch.no_grad():
        assert torch.allclose(again(*x)[1], after[1], atol=1e-4)
    with pytest.raises(ValueError, match="folded convolution tensors"):
        load_onnx_weights(AlignedVerifier(), path)  # a file with two bodies is no shared-body start
    # A file with two bodies starts a two-body model as it computes both figures; a one-body file
    # starts it with the shared body copied.
    both = AlignedVerifier(brand_body=True)
    assert load_onnx_weights(both, path)
    shared = AlignedVerifier(brand_body=True)
    assert not load_onnx_weights(shared, init)
    both.eval(), shared.eval()
    with torch.no_grad():
        assert torch.allclose(both(*x)[1], after[1], atol=1e-5)
        assert torch.allclose(both(*x)[0], after[0], atol=1e-5)
        assert torch.allclose(shared(*x)[1], before[1], atol=1e-5)


def test_verifier_authentic_only_leaves_the_same_brand_figure(verifier_ckpt, tmp_path):
    # --authentic-only from a checkpoint whose same-brand head has its own body: the shared body and
    # the authentic head learn, the same-brand output stays exactly as it was.
    model = export_mod.load_model("verifier", verifier_ckpt)
    init = export_mod.export("verifier", model, tmp_path / "init.onnx")
    pairs = verifier_ckpt.parents[1] / "pairs.npz"
    common = ["--data", str(pairs), "--epochs", "1", "--batch", "8", "--threads", "2"]
    train_verifier.main([*common, "--out", str(tmp_path / "body"), "--init", str(init), "--brand-body"])
    body = tmp_path / "body" / "last.pt"
    train_verifier.main(
        [*common, "--out", str(tmp_path / "auth"), "--init", str(body), "--authentic-only", "--lr", "0.01"]
    )
    before = export_mod.load_model("verifier", body)
    after = export_mod.load_model("verifier", tmp_path / "auth" / "last.pt")
    x = export_mod.verifier_inputs(np.random.default_rng(4), 4)
    with torch.no_grad():
        b, a = before(*x), after(*x)
    assert not torch.allclose(a[0], b[0], atol=1e-6)
    assert torch.allclose(a[1], b[1], atol=1e-6)
    # A start without a same-brand body of its own, or with the brand-only flags, is refused.
    with pytest.raises(SystemExit, match="same-brand head has a body"):
        train_verifier.main([*common, "--out", str(tmp_path / "x"), "--init", str(verifier_ckpt), "--authentic-only"])
    with pytest.raises(SystemExit, match="other part"):
        train_verifier.main(
            [*common, "--out", str(tmp_path / "y"), "--init", str(body), "--authentic-only", "--brand-body"]
        )


def test_verifier_training_refuses_other_data(tmp_path):
    np.savez(tmp_path / "crops.npz", crops=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(SystemExit, match="not a verifier pair set"):
        train_verifier.main(["--data", str(tmp_path / "crops.npz"), "--out", str(tmp_path / "run")])


@pytest.fixture(scope="module")
def hand_pairs(tmp_path_factory, library):
    root = tmp_path_factory.mktemp("hands")
    np.savez(
        root / "pairs.npz", **pair_set(list(library)[:4], brands=4, authentic=2, seed=0, hands=Hands(0.6, (0.2, 0.3)))
    )
    return root / "pairs.npz"


def test_hand_net_trains_exports_and_finds_in_the_pair_sets(hand_pairs, library, tmp_path):
    args = ["--data", str(hand_pairs), "--val", str(hand_pairs), "--out", str(tmp_path / "run")]
    train_hands.main([*args, "--epochs", "2", "--batch", "8", "--threads", "2"])
    ckpt = tmp_path / "run" / "last.pt"
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    model = export_mod.load_model("hands", ckpt)
    path = export_mod.export("hands", model, tmp_path / "hands.onnx")
    assert export_mod.max_relative_error("hands", model, path) <= 1e-4
    export_mod.record(tmp_path / "manifest.json", path, "hands")
    crops = np.load(hand_pairs)["crops"][:3]
    with OnnxHands(path) as net:
        found = net.find(crops)
    assert found.shape == (3, 96, 96) and found.dtype == bool
    # Pairs made with that net draw the same crops and hands: the net changes what is aligned and
    # compared, not what is drawn.
    plain = np.load(hand_pairs)
    again = pair_set(list(library)[:4], brands=4, authentic=2, seed=0, hands=Hands(0.6, (0.2, 0.3)), hand_net=path)
    np.testing.assert_array_equal(again["hands"], plain["hands"])
    assert again["crops"].shape == plain["crops"].shape


@pytest.mark.parametrize("script", ["hands", "verifier"])
def test_stopped_training_resumes_where_it_left_off(script, hand_pairs, tmp_path, capsys):
    main = {"hands": train_hands.main, "verifier": train_verifier.main}[script]
    args = ["--data", str(hand_pairs), "--out", str(tmp_path / "run"), "--epochs", "2", "--batch", "8"]
    main([*args, "--stop-epoch", "1"])
    ckpt = tmp_path / "run" / "last.pt"
    first = torch.load(ckpt, weights_only=False)
    assert first["epoch"] == 0
    main(args)
    assert "resumed from epoch 1" in capsys.readouterr().out
    second = torch.load(ckpt, weights_only=False)
    assert second["epoch"] == 1
    # The schedule went on from where it stopped rather than starting a new cycle.
    assert second["sched"]["last_epoch"] == 2 * first["sched"]["last_epoch"]


def test_hand_measure_counts_misses_and_false_hands():
    class Fixed(torch.nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, crops):
            return self.out[: len(crops)]

    truth = torch.zeros(2, 4, 4, dtype=torch.bool)
    truth[0, :, :2] = True  # a hand over the first crop's left half; none over the second
    found = torch.zeros(2, 4, 4)
    found[0, :, :1] = 1.0  # half the hand found
    found[1, 0, 0] = 1.0  # one false pixel of 16
    figures = train_hands.measure(Fixed(found), torch.zeros(2, 4, 4, 3, dtype=torch.uint8), truth)
    assert figures == pytest.approx({"iou": 0.5, "false_pixels": 1 / 16, "false_crops": 1.0})


def test_hand_training_refuses_sets_without_hands(tmp_path):
    np.savez(tmp_path / "old.npz", crops=np.zeros((2, 96, 96, 3), np.uint8))
    with pytest.raises(SystemExit, match="records no hands"):
        train_hands.main(["--data", str(tmp_path / "old.npz"), "--out", str(tmp_path / "run"), "--epochs", "1"])


def test_detector_trains_and_resumes(detector_ckpt):
    state = torch.load(detector_ckpt, weights_only=False)
    assert state["epoch"] == 0
    for v in state["model"].values():
        assert torch.isfinite(v.float()).all()


def test_embedder_trains(embedder_ckpt):
    state = torch.load(embedder_ckpt, weights_only=False)
    assert state["epoch"] == 1


@pytest.mark.parametrize("kind", ["detector", "embedder"])
def test_onnx_matches_torch(kind, detector_ckpt, embedder_ckpt, tmp_path):
    ckpt = detector_ckpt if kind == "detector" else embedder_ckpt
    model = export_mod.load_model(kind, ckpt)
    path = export_mod.export(kind, model, tmp_path / f"{kind}.onnx")
    assert export_mod.max_relative_error(kind, model, path) <= 1e-4
    export_mod.record(tmp_path / "manifest.json", path, kind)
    info = verify_model(path)
    assert info.kind == kind


def test_embedder_fine_tunes_from_an_exported_model(embedder_ckpt, tmp_path):
    # --init with an .onnx file (the training checkpoint may be gone): the network starts as the
    # file computes it, the proxies at the brands' mean vectors, and the tuned model exports.
    from models.training.embedder import MarkEmbedder

    model = export_mod.load_model("embedder", embedder_ckpt)
    init = export_mod.export("embedder", model, tmp_path / "init.onnx")
    fresh = MarkEmbedder()
    load_folded_weights(fresh, init)
    fresh.eval()
    crops = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8))
    with torch.no_grad():
        for a, b in zip(fresh(crops), model(crops), strict=True):
            assert torch.allclose(a, b, atol=1e-5)
    data = embedder_ckpt.parents[1] / "crops.npz"
    common = ["--data", str(data), "--epochs", "1", "--batch", "8", "--threads", "2", "--init", str(init)]
    train_embedder.main([*common, "--out", str(tmp_path / "run"), "--lr", "0.01"])
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert state["head"]["weight"].shape == (int(np.load(data)["brand"].max()) + 1, 128)
    tuned = export_mod.load_model("embedder", tmp_path / "run" / "last.pt")
    with torch.no_grad():
        assert not torch.allclose(tuned(crops)[0], model(crops)[0], atol=1e-4)
    path = export_mod.export("embedder", tuned, tmp_path / "embedder.onnx")
    assert export_mod.max_relative_error("embedder", tuned, path) <= 1e-4
    # At a learning rate of zero the run leaves the network as the file computes it: the folded
    # batch norms stayed fixed in training mode.
    train_embedder.main([*common, "--out", str(tmp_path / "still"), "--lr", "1e-12"])
    still = export_mod.load_model("embedder", tmp_path / "still" / "last.pt")
    with torch.no_grad():
        assert torch.allclose(still(crops)[0], model(crops)[0], atol=1e-4)


@pytest.mark.parametrize("brands, authentic", [(3, 2), (4, 0)])
def test_brand_means_start_the_proxies(brands, authentic):
    # Each proxy starts at its brand's mean vector; a brand with no authentic crop keeps a random,
    # still unit-length, authenticity proxy.
    from models.training.embedder import MarkEmbedder

    model = MarkEmbedder()
    rng = np.random.default_rng(5)
    crops = torch.from_numpy(rng.integers(0, 256, (brands * 3, 64, 64, 3), dtype=np.uint8))
    brand = torch.arange(brands).repeat_interleave(3)
    fake = torch.ones(len(crops), dtype=torch.bool)
    fake[torch.arange(brands) * 3] = authentic == 0
    auth, ident = train_embedder.brand_means(model, crops, brand, fake, brands, batch=4)
    assert auth.shape == ident.shape == (brands, 128)
    assert torch.allclose(auth.norm(dim=1), torch.ones(brands), atol=1e-5)
    with torch.no_grad():
        a, i = model(crops)
    expect = torch.nn.functional.normalize(i[:3].sum(0), dim=0)
    assert torch.allclose(ident[0], expect, atol=1e-3)
    if authentic:
        assert torch.allclose(auth[0], a[0], atol=1e-3)


@pytest.mark.parametrize("crop", [64, 96, 128])
def test_embedder_crop_sizes_share_weights(crop, tmp_path):
    # A larger crop only enlarges the body's map, pooled back to 4x4: a 64 px network's weights
    # are a warm start for it, and the exported graph declares its crop side.
    from models.training.embedder import MarkEmbedder

    small = MarkEmbedder()
    model = MarkEmbedder(crop=crop)
    model.load_state_dict(small.state_dict())
    model.eval()
    auth, ident = model(torch.zeros(3, crop, crop, 3, dtype=torch.uint8))
    assert auth.shape == (3, 128) and ident.shape == (3, 128)
    path = export_mod.export("embedder", model, tmp_path / "embedder.onnx")
    assert export_mod.max_relative_error("embedder", model, path) <= 1e-4
    export_mod.record(tmp_path / "manifest.json", path, "embedder")
    from pipeline.infer.embedder import OnnxEmbedder

    with OnnxEmbedder(path, providers=["CPUExecutionProvider"]) as emb:
        assert emb.crop_size == crop
        assert len(emb.embed(np.zeros((2, crop, crop, 3), np.uint8))) == 2
        with pytest.raises(ValueError, match=f"expected \\(N, {crop}, {crop}, 3\\)"):
            emb.embed(np.zeros((2, crop + 16, crop + 16, 3), np.uint8))
        # The GPU path's crop graph follows the embedder beside it, and the device path takes it.
        from models.training import cropper
        from pipeline.infer.detector import OnnxDetector
        from pipeline.infer.device import DevicePipeline

        cropper.main([str(tmp_path / "cropper.onnx"), "--manifest", str(tmp_path / "manifest.json")])
        with OnnxDetector(providers=["CPUExecutionProvider"]) as det:
            device = DevicePipeline(det, emb, tmp_path / "cropper.onnx", ["CPUExecutionProvider"])
            assert device.cropper.output_shapes[0][1] == crop
            device.close()


@pytest.mark.parametrize("crop", [48, 72, 100])
def test_embedder_refuses_crop_sizes_off_its_grid(crop):
    from models.training.embedder import MarkEmbedder

    with pytest.raises(ValueError, match="multiple of 16"):
        MarkEmbedder(crop=crop)


def test_loader_refuses_tampered_model(tmp_path):
    model = export_mod.load_model("embedder", None)
    path = export_mod.export("embedder", model, tmp_path / "embedder.onnx")
    export_mod.record(tmp_path / "manifest.json", path, "embedder")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch"):
        verify_model(path)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [(None, "no manifest"), ({}, "not listed"), ("{broken", "not valid JSON")],
)
def test_loader_refuses_unlisted(tmp_path, manifest, message):
    path = tmp_path / "embedder.onnx"
    path.write_bytes(b"onnx")
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ModelError, match=message):
        verify_model(path)


def test_targets_peak_at_every_box():
    boxes = torch.tensor([[10.0, 10.0, 20.0, 18.0], [100.0, 50.0, 200.0, 150.0]])
    heat, dist, weight = make_targets(boxes, torch.tensor([0, 1]), 28, 48)
    assert heat[0].max() == 1.0 and heat[1].max() == 1.0
    assert (weight > 0).sum() >= 2
    assert (dist >= 1.0).all()


@pytest.mark.parametrize("normalise", [False, True])
def test_target_weights_per_mark(normalise):
    # A 12 px mark and a 150 px product: per mark, each box's weights sum to one.
    boxes = torch.tensor([[20.0, 20.0, 32.0, 32.0], [150.0, 40.0, 300.0, 190.0]])
    _heat, _dist, weight = make_targets(boxes, torch.tensor([0, 1]), 28, 48, normalise=normalise)
    small, large = weight[:8, :8].sum().item(), weight[4:, 16:].sum().item()
    if normalise:
        assert small == pytest.approx(1.0) and large == pytest.approx(1.0)
    else:
        assert large > 10 * small


def test_targets_empty_frame():
    heat, dist, weight = make_targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 4, 6, normalise=True)
    assert heat.sum() == 0 and weight.sum() == 0 and dist.shape == (4, 4, 6)


def test_detector_output_shapes():
    boxes, scores = MarkDetector().eval()(torch.zeros(2, 100, 200, 3, dtype=torch.uint8))
    assert boxes.shape[0] == 2 and boxes.shape[2] == 4 and scores.shape[2] == 2


def test_flip_some_always_mirrors():
    from models.training.train_embedder import flip_some

    x = torch.arange(2 * 4 * 4 * 3, dtype=torch.uint8).reshape(2, 4, 4, 3).repeat(20, 1, 1, 1)
    out = flip_some(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert all(not torch.equal(a, b) for a, b in zip(out, x, strict=True))


def test_verifier_pairs_from_before_the_same_brand_head_load_as_own_brand(tmp_path):
    n = 3
    np.savez(
        tmp_path / "old.npz",
        crops=np.zeros((n, 96, 96, 3), np.uint8),
        masks=np.zeros((n, 96, 96, 2), np.uint8),
        fit=np.zeros((n, 4), np.float32),
        family=np.array([-1, 0, 2]),
    )
    data = train_verifier.load_pairs([str(tmp_path / "old.npz")])
    assert data["same"].tolist() == [True, True, True]
    assert data["authentic"].tolist() == [True, False, False]
