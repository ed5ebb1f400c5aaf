"""The crop graph: square mark crops cut from uint8 frames on the device that holds them.

On a GPU the frames are uploaded once; the detector, this graph and the embedder all read the
same device buffer, so only boxes, scores and embeddings come back to the host. The graph is a
few standard ONNX operators (RoiAlign does the sampling, averaging several samples per output
pixel when shrinking, like an area filter), built here without torch.

    python -m models.training.cropper models/cropper.onnx

The crop side is the embedder's: by default it is read from the ``embedder.onnx`` beside OUT.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from models.training.export import IR_VERSION, record
from pipeline.infer.embedder import input_side

CROP = 64
OPSET = 17


def embedder_side(path: Path, default: int = CROP) -> int:
    """The crop side an embedder graph declares, ``default`` where there is none or it is dynamic."""
    if not path.exists():
        return default
    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return input_side([d.dim_value or d.dim_param for d in dims], default)


def build(crop: int = CROP) -> onnx.ModelProto:
    """frames (B, H, W, 3) uint8 + rois (N, 4) float x1y1x2y2 + batch (N,) int64 -> (N, crop, crop, 3) uint8."""
    nodes = [
        helper.make_node("Cast", ["frames"], ["f32"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f32"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node(
            "RoiAlign",
            ["nchw", "rois", "batch"],
            ["pooled"],
            output_height=crop,
            output_width=crop,
            sampling_ratio=0,
            mode="avg",
            coordinate_transformation_mode="half_pixel",
            spatial_scale=1.0,
        ),
        helper.make_node("Transpose", ["pooled"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Round", ["nhwc"], ["rounded"]),
        helper.make_node("Clip", ["rounded", "lo", "hi"], ["clipped"]),
        helper.make_node("Cast", ["clipped"], ["crops"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(
        nodes,
        "cropper",
        [
            helper.make_tensor_value_info("frames", TensorProto.UINT8, ["B", "H", "W", 3]),
            helper.make_tensor_value_info("rois", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("batch", TensorProto.INT64, ["N"]),
        ],
        [helper.make_tensor_value_info("crops", TensorProto.UINT8, ["N", crop, crop, 3])],
        initializer=[
            helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("hi", TensorProto.FLOAT, [], [255.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fakewatch")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default="models/cropper.onnx")
    p.add_argument("--manifest", default="models/manifest.json")
    p.add_argument("--crop", type=int, help="crop side in pixels (default: the input of embedder.onnx beside OUT)")
    args = p.parse_args(argv)
    out = Path(args.out)
    crop = args.crop or embedder_side(out.parent / "embedder.onnx")
    onnx.save(build(crop), str(out))
    record(Path(args.manifest), out, "cropper")
    print(f"wrote {out}: {crop} px crops")


if __name__ == "__main__":
    main()
