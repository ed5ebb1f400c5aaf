"""OnnxSession's helpers: the libraries' own thread pools."""

from __future__ import annotations

import cv2
import faiss
import pytest

from pipeline.infer import session
from pipeline.infer.session import set_library_threads


@pytest.fixture
def pools(monkeypatch):
    """Both pools at 3 threads, as if fakewatch had never sized them; put back after the test
    (they are process-wide)."""
    before = cv2.getNumThreads(), faiss.omp_get_max_threads()
    monkeypatch.setattr(session, "_LIBRARY_DEFAULTS", None)
    cv2.setNumThreads(3)
    faiss.omp_set_num_threads(3)
    yield
    cv2.setNumThreads(before[0])
    faiss.omp_set_num_threads(before[1])


def _sizes() -> tuple[int, int]:
    return cv2.getNumThreads(), faiss.omp_get_max_threads()


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ([1], (1, 1)),
        ([2], (2, 2)),
        ([0], (3, 3)),  # 0 at first: the libraries' choice stays
        ([1, 0], (3, 3)),  # 0 after a size: the libraries' choice comes back
        ([1, 2], (2, 2)),
        ([2, 0, 1], (1, 1)),
    ],
)
def test_library_threads_size_both_pools(pools, calls, expected):
    for threads in calls:
        set_library_threads(threads)
    assert _sizes() == expected
