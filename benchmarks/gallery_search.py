"""FAISS gallery search at 1M reference vectors: queries/s, recall@1 against exact search, memory.

The vectors are clustered the way a gallery is (many brands, several views each, unit length),
and the queries are noisy views of stored references. Exact search (the baseline) runs in the
same process on the same queries.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import faiss
import numpy as np
from _common import report

from pipeline.gallery.index import make_faiss_index


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


_MEASURE = """
import sys, faiss
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
before = rss()
index = faiss.read_index(sys.argv[1])
print(rss() - before)
"""


def resident(index: faiss.Index) -> tuple[float, faiss.Index]:
    """Resident memory of an index loaded from disk by a fresh process (so no freed pages count)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/index.faiss"
        faiss.write_index(index, path)
        out = subprocess.run([sys.executable, "-c", _MEASURE, path], capture_output=True, text=True, check=True)
        return float(out.stdout.strip()), faiss.read_index(path)


def clustered(n: int, dim: int, brands: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(brands, dim)).astype(np.float32)
    owner = rng.integers(0, brands, n)
    v = centres[owner] + rng.normal(scale=0.6, size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def qps(index: faiss.Index, q: np.ndarray, seconds: float = 3.0) -> tuple[float, np.ndarray]:
    _, ids = index.search(q, 1)
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        index.search(q, 1)
        done += len(q)
    return done / (time.perf_counter() - start), ids[:, 0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vectors", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    vecs = clustered(args.vectors, args.dim, max(args.vectors // 40, 10), rng)
    pick = rng.integers(0, args.vectors, args.queries)
    q = vecs[pick] + rng.normal(scale=0.05, size=(args.queries, args.dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = np.arange(args.vectors, dtype=np.int64)

    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(args.dim))
    exact.add_with_ids(vecs, ids)
    exact_mb, exact = resident(exact)
    exact_qps, exact_top = qps(exact, q)
    del exact

    t0 = time.perf_counter()
    approx = make_faiss_index(args.dim, args.vectors, vecs)
    approx.add_with_ids(vecs, ids)
    build_s = time.perf_counter() - t0
    del vecs
    approx_mb, approx = resident(approx)
    approx_qps, approx_top = qps(approx, q)
    recall = float(np.mean(approx_top == exact_top))
    report(
        {
            "benchmark": "gallery_search",
            "vectors": args.vectors,
            "dim": args.dim,
            "threads": args.threads,
            "index": type(approx).__name__,
            "nlist": int(approx.nlist),
            "nprobe": int(approx.nprobe),
            "queries_per_s": round(approx_qps),
            "recall_at_1_vs_exact": round(recall, 4),
            "index_memory_mb": round(approx_mb, 1),
            "build_s": round(build_s, 1),
            "baseline_exact_queries_per_s": round(exact_qps),
            "baseline_exact_memory_mb": round(exact_mb, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "floors": {"queries_per_s": 5000, "recall_at_1": 0.95, "index_memory_mb": 1024},
        }
    )


if __name__ == "__main__":
    main()
