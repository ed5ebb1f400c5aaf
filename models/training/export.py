"""Export trained checkpoints to ONNX that the installed onnxruntime reads, and record them in
the manifest with their SHA-256.

    python -m models.training.export detector runs/detector/last.pt models/detector.onnx
    python -m models.training.export embedder runs/embedder/last.pt models/embedder.onnx
    python -m models.training.export verifier runs/verifier/last.pt models/verifier.onnx
    python -m models.training.export hands runs/hands/last.pt models/hands.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from models.training.detector import INPUT_H, INPUT_W, MarkDetector
from models.training.embedder import CROP, DIM, MarkEmbedder
from models.training.verifier import FIT_FEATURES, SIDE, AlignedVerifier, HandNet, has_brand_body

# onnxruntime 1.18+ reads IR 10 and opset 21; newer onnx packages write newer IR by default.
IR_VERSION = 9
OPSET = 17


def input_size(checkpoint: str | Path | None, given: str | None = None) -> tuple[int, int]:
    """The detector's network input (W, H): as given, else as recorded in the checkpoint, else the default."""
    text = given
    if text is None and checkpoint is not None:
        text = torch.load(checkpoint, map_location="cpu", weights_only=False).get("input_size")
    if not text:
        return INPUT_W, INPUT_H
    w, h = (int(v) for v in str(text).split("x"))
    return w, h


def load_model(kind: str, checkpoint: str | Path | None, size: tuple[int, int] | None = None) -> torch.nn.Module:
    """Build a model of ``kind`` and load its weights (fresh weights when ``checkpoint`` is None)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False) if checkpoint is not None else None
    model: torch.nn.Module
    if kind == "detector":
        model = MarkDetector(size or input_size(checkpoint))
    elif kind == "verifier":
        own = state is not None and has_brand_body(state["model"])
        model = AlignedVerifier(brand_body=own)
    elif kind == "hands":
        model = HandNet()
    else:
        # Checkpoints from before the crop size was recorded are 64 px.
        model = MarkEmbedder(crop=int(state.get("crop", CROP)) if state is not None else CROP)
    if state is not None:
        model.load_state_dict(state["model"])
    return model.eval()


def crop_of(model: torch.nn.Module) -> int:
    """The crop side a crop model takes (the verifier's and the hand net's are fixed at 96)."""
    return SIDE if isinstance(model, AlignedVerifier | HandNet) else int(getattr(model, "crop", CROP))


def export(kind: str, model: torch.nn.Module, out: str | Path) -> Path:
    """Write ``model`` as ONNX with a dynamic batch (and frame size for the detector)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example: tuple[torch.Tensor, ...]
    if kind == "detector":
        example = (torch.zeros(1, 360, 640, 3, dtype=torch.uint8),)
        names_in, names_out = ["frames"], ["boxes", "scores"]
        axes = {"frames": {0: "batch", 1: "height", 2: "width"}, "boxes": {0: "batch"}, "scores": {0: "batch"}}
    elif kind == "verifier":
        example = verifier_inputs(np.random.default_rng(0), 2)
        names_in, names_out = ["crops", "masks", "fit"], ["authentic", "same_brand"]
        axes = {k: {0: "batch"} for k in (*names_in, *names_out)}
    elif kind == "hands":
        example = (torch.zeros(2, SIDE, SIDE, 3, dtype=torch.uint8),)
        names_in, names_out = ["crops"], ["hands"]
        axes = {"crops": {0: "batch"}, "hands": {0: "batch"}}
    else:
        example = (torch.zeros(2, crop_of(model), crop_of(model), 3, dtype=torch.uint8),)
        names_in, names_out = ["crops"], ["authenticity", "identity"]
        axes = {"crops": {0: "batch"}, "authenticity": {0: "batch"}, "identity": {0: "batch"}}
    tmp = out.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but writes the plain opsets onnxruntime reads.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            example,
            str(tmp),
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    proto.ir_version = IR_VERSION
    proto.producer_name = "fakewatch"
    meta = {
        "kind": kind,
        "input": f"{model.input_w}x{model.input_h}" if kind == "detector" else f"{crop_of(model)}x{crop_of(model)}",
        "dim": str(DIM) if kind == "embedder" else "",
        "exported": time.strftime("%Y-%m-%d"),
    }
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    tmp.unlink(missing_ok=True)
    return out


def verifier_inputs(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...]:
    """Random verifier inputs: uint8 crops, masks in [0, 1], fit figures."""
    return (
        torch.from_numpy(rng.integers(0, 256, (n, SIDE, SIDE, 3), dtype=np.uint8)),
        torch.from_numpy(rng.random((n, SIDE, SIDE, 2), dtype=np.float32)),
        torch.from_numpy(rng.normal(0, 1, (n, FIT_FEATURES)).astype(np.float32)),
    )


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def record(manifest: Path, model_path: Path, kind: str, extra: dict | None = None) -> None:
    """Add or replace ``model_path`` in the manifest (keyed by file name)."""
    data = json.loads(manifest.read_text()) if manifest.exists() else {}
    entry = {"kind": kind, "sha256": sha256(model_path), "version": f"{kind}-{sha256(model_path)[:12]}"}
    entry.update(extra or {})
    data[model_path.name] = entry
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def max_relative_error(kind: str, model: torch.nn.Module, path: Path, seed: int = 0) -> float:
    """Compare ONNX Runtime's output with torch's on random input."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    if kind == "verifier":
        xs = [t.numpy() for t in verifier_inputs(rng, 4)]
    else:
        shape = (2, 360, 640, 3) if kind == "detector" else (4, crop_of(model), crop_of(model), 3)
        xs = [rng.integers(0, 256, shape, dtype=np.uint8)]
    with torch.no_grad():
        ref = model(*(torch.from_numpy(x) for x in xs))
    refs = ref if isinstance(ref, tuple) else (ref,)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs, strict=True)})
    worst = 0.0
    for r, o in zip(refs, outs, strict=True):
        r = r.numpy()
        worst = max(worst, float(np.max(np.abs(r - o)) / max(np.max(np.abs(r)), 1e-6)))
    return worst


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["detector", "embedder", "verifier", "hands"])
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument(
        "--manifest",
        help="manifest to record the model in (default: manifest.json beside OUT, where the pipeline looks for it)",
    )
    p.add_argument("--input-size", help="detector input WxH (default: as recorded in the checkpoint)")
    args = p.parse_args(argv)
    model = load_model(args.kind, args.checkpoint, input_size(args.checkpoint, args.input_size))
    path = export(args.kind, model, args.out)
    err = max_relative_error(args.kind, model, path)
    print(f"exported {path}; ONNX vs torch max relative error {err:.2e}")
    if err > 1e-4:
        raise SystemExit("export does not match torch within 1e-4")
    record(Path(args.manifest) if args.manifest else path.parent / "manifest.json", path, args.kind)


if __name__ == "__main__":
    main()
