"""OnnxSession's helpers: the libraries' own thread pools."""

from __future__ import annotations

import cv2
import faiss
import pytest

from pipeline.infer.session import set_library_threads


@pytest.fixture
def restored():
    """Put OpenCV's and FAISS's pool sizes back after the test (they are process-wide)."""
    before = cv2.getNumThreads(), faiss.omp_get_max_threads()
    yield before
    cv2.setNumThreads(before[0])
    faiss.omp_set_num_threads(before[1])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_library_threads_size_both_pools(restored, threads):
    set_library_threads(threads)
    assert cv2.getNumThreads() == threads
    assert faiss.omp_get_max_threads() == threads


@pytest.mark.parametrize("threads", [0, -1])
def test_zero_leaves_the_libraries_choice(restored, threads):
    cv2.setNumThreads(3)
    faiss.omp_set_num_threads(3)
    set_library_threads(threads)
    assert (cv2.getNumThreads(), faiss.omp_get_max_threads()) == (3, 3)
