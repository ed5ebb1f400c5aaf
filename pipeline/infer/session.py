"""An ONNX Runtime session with a configurable provider order, quiet on machines without a GPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import onnxruntime as ort

from pipeline.infer.models import ModelInfo, verify_model

DEFAULT_PROVIDERS: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)

# onnxruntime logs an error per provider it cannot load; only real errors should reach the log.
ort.set_default_logger_severity(3)


def usable_providers(wanted: Sequence[str]) -> list[str]:
    """The providers of ``wanted`` that can run here, in order, CPU always last."""
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available and p != "CPUExecutionProvider"]
    if chosen and not _cuda_runtime_present():
        chosen = []
    return [*chosen, "CPUExecutionProvider"]


def _cuda_runtime_present() -> bool:
    # onnxruntime-gpu lists CUDA even where no driver exists; the driver library decides.
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None


# OpenCV's and FAISS's own pool sizes before fakewatch first sized them (set_library_threads).
_LIBRARY_DEFAULTS: tuple[int, int] | None = None


def set_library_threads(threads: int) -> None:
    """Size OpenCV's and FAISS's own thread pools, process-wide (0 = the libraries' own choice).

    Their pools spread one call (an ECC fit of a 48 px mask, a search of a few vectors) over every
    core, where the pipeline already keeps every core busy with calls side by side: their threads
    only spin while they wait.
    """
    global _LIBRARY_DEFAULTS
    import cv2
    import faiss

    if _LIBRARY_DEFAULTS is None:
        _LIBRARY_DEFAULTS = (cv2.getNumThreads(), faiss.omp_get_max_threads())
    cv_threads, omp_threads = (threads, threads) if threads > 0 else _LIBRARY_DEFAULTS
    cv2.setNumThreads(cv_threads)
    faiss.omp_set_num_threads(omp_threads)


class OnnxSession:
    """Owns one ``ort.InferenceSession`` for a verified model file.

    Use as a context manager, or call ``close``.

    Args:
        path: the model file.
        providers: execution providers wanted, best first (``usable_providers`` picks).
        threads: CPU threads per graph run (0 = ONNX Runtime decides).
        verify: check the file against the models manifest first.
        fixed_dims: symbolic input dimensions (e.g. ``height``) pinned to one size.
    """

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threads: int = 0,
        verify: bool = True,
        fixed_dims: dict[str, int] | None = None,
    ) -> None:
        self.info: ModelInfo | None = verify_model(path) if verify else None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # Named free dimensions pinned to one size: the session then only takes inputs of that size,
        # and plans its kernels and memory for it once.
        for name, size in (fixed_dims or {}).items():
            options.add_free_dimension_override_by_name(name, size)
        self.providers = usable_providers(providers)
        self._session: ort.InferenceSession | None = ort.InferenceSession(
            str(path), sess_options=options, providers=self.providers
        )
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.input_name = self.input_names[0]
        self.input_shape: list[int | str | None] = list(self._session.get_inputs()[0].shape)
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.output_shapes: list[list[int | str | None]] = [list(o.shape) for o in self._session.get_outputs()]
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)

    @property
    def device(self) -> str:
        """``"cuda"`` where the session runs on a GPU provider, else ``"cpu"``."""
        assert self._session is not None
        return "cuda" if self._session.get_providers()[0] != "CPUExecutionProvider" else "cpu"

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run the graph on one input array."""
        if self._session is None:
            raise RuntimeError("session is closed")
        return self._session.run(self.output_names, {self.input_name: x})

    def upload(self, x: np.ndarray) -> ort.OrtValue:
        """Copy an array once onto this session's device (host memory on the CPU provider)."""
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), self.device, 0)

    def run_bound(
        self, inputs: dict[str, np.ndarray | ort.OrtValue], keep_on_device: Sequence[str] = ()
    ) -> dict[str, np.ndarray | ort.OrtValue]:
        """Run with IO binding: inputs already on the device are not copied again.

        Outputs named in ``keep_on_device`` stay there as ``OrtValue`` (for the next graph to
        read); the others come back as numpy arrays.
        """
        if self._session is None:
            raise RuntimeError("session is closed")
        binding = self._session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self.output_names:
            binding.bind_output(name, self.device if name in keep_on_device else "cpu")
        self._session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return {
            name: (v if name in keep_on_device else v.numpy())
            for name, v in zip(self.output_names, values, strict=True)
        }

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> OnnxSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
