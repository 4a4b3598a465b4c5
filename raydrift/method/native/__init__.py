"""The drift field's CPU kernels (``field.cpp``): built with the system C++ compiler on first use, called
through ctypes on float32 tensors' memory.

Why a hand-written kernel: on a CPU the field's elementwise work (the row and column softmaxes at every
temperature, the cross-weighting) is most of its time, and Inductor's code for it sweeps the whole
``[G, Cg, N]`` call once per reduction; ``field.cpp`` finishes one group while its block is in cache, with
the softmax shifts found once per call for all the temperatures it is given (``benchmarks/README.md`` has
the measurements).

The library is built once per machine into the raydrift cache (``$RAYDRIFT_CACHE/native``, one file per
source, compiler flags and CPU, under a file lock so that parallel workers build it once) with
``-O3 -march=native -fopenmp``; ``RAYDRIFT_CXX`` names another compiler. Where no compiler works,
:func:`library` returns None (after one warning) and the field runs in torch. ``RAYDRIFT_NATIVE=0`` turns
the kernels off. The kernels use torch's OpenMP runtime (the same ``libgomp``) with
``torch.get_num_threads()`` threads.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path

import torch

from ...cache import default_cache_dir, locked

SOURCE = Path(__file__).with_name("field.cpp")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC", "-std=c++17")
KERNELS = {"laplace": 0, "gaussian": 1}  # the kernels and normalisations field.cpp implements
NORMALIZATIONS = {"xy": 0, "y": 1, "none": 2}

_state: dict[str, object] = {}
_f32p, _i64, _f32, _int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
_SIGNATURES = {
    "rd_axpby": (None, [_f32p, _f32, _f32p, _f32, _i64, _i64, ctypes.c_void_p, _int]),
    "rd_sum_squares": (None, [_f32p, _i64, _i64, ctypes.c_void_p, _int]),
    "rd_centre": (None, [_f32p, _f32p, _f32p, _f32p, _f32p, _i64, _i64, _i64, _i64, _i64, _int]),
    "rd_distances": (ctypes.c_double, [_f32p, _f32p, _f32p, _i64, _i64, _i64, _f32, _int]),
    "rd_energy": (None, [_f32p, _i64, _i64, _i64, _f32, _f32, _int, _int]),
    "rd_coefficients": (None, [_f32p, _f32p, _f32p, _i64, _i64, _i64, _i64, _f32p, _i64, _int, _f32, _int]),
    "rd_bmm": (None, [_f32p, _f32p, _f32p, _i64, _i64, _i64, _i64, _int]),
    "rd_small_gemm": (_int, []),
}
# Per-group products of at most this many multiply-adds, at least this many columns, go to rd_bmm where it
# is built for AVX-512: the per-location feature key's 32 x 64 x 64 force products ran at 1.6x MKL's
# batched speed there (6.8 against 10.8 ms), 64 x 64 x 128 at 1.1x, larger ones at par or below.
SMALL_PRODUCT, MIN_COLUMNS = 1 << 19, 32


def library() -> ctypes.CDLL | None:
    """The loaded kernels, building them first if needed; None where they cannot be built or are turned off."""
    if os.environ.get("RAYDRIFT_NATIVE", "1") == "0":
        return None
    if "lib" not in _state:
        _state["lib"] = None
        try:
            _state["lib"] = _load(_build())
        except Exception as err:  # no compiler, no OpenMP, a read-only cache, ...
            warnings.warn(
                f"raydrift's CPU drift kernels could not be built ({err}); the drift field runs in torch "
                "(slower on CPU). Install a C++ compiler with OpenMP (e.g. apt install g++) or set "
                "RAYDRIFT_CXX; if the cache is not writable, set RAYDRIFT_CACHE to a directory that is; "
                "RAYDRIFT_NATIVE=0 silences this.",
                stacklevel=3,
            )
    return _state["lib"]  # type: ignore[return-value]


def supports(x: torch.Tensor, kernel: str, normalization: str) -> bool:
    """Whether the kernels handle this call: float32 CPU tensors and a kernel/normalisation they implement."""
    return x.device.type == "cpu" and kernel in KERNELS and normalization in NORMALIZATIONS and library() is not None


def centred_targets(
    x: torch.Tensor, y_neg: torch.Tensor, y_pos: torch.Tensor, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``y [G, N, S]`` (in ``out`` if given), the targets ``[x, y_neg, y_pos]`` minus their mean per group,
    and ``|y|^2 [G, N]``."""
    x, y_neg, y_pos = (t.contiguous() for t in (x, y_neg, y_pos))
    G, Cg, S = x.shape
    Cn, Cp = y_neg.shape[1], y_pos.shape[1]
    y = x.new_empty(G, Cg + Cn + Cp, S) if out is None else out
    y_sq = x.new_empty(G, Cg + Cn + Cp)
    library().rd_centre(
        _ptr(x), _ptr(y_neg), _ptr(y_pos), _ptr(y), _ptr(y_sq), G, Cg, Cn, Cp, S, torch.get_num_threads()
    )
    return y, y_sq


def axpby(a: torch.Tensor, alpha: float, b: torch.Tensor, beta: float, groups: int = 0) -> torch.Tensor | None:
    """In place ``a = alpha a + beta b`` (same shapes), in one pass; with ``groups``, also the new ``a``'s
    sum of squares over each of its ``groups`` equal leading slices, as :func:`sum_squares` returns it."""
    assert a.shape == b.shape
    out = torch.empty(groups, dtype=torch.float64) if groups else None
    G = groups or 1
    library().rd_axpby(
        _ptr(a), alpha, _ptr(b), beta, G, a.numel() // G, None if out is None else out.data_ptr(),
        torch.get_num_threads(),
    )  # fmt: skip
    return out


def bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out [G, M, N] = a @ b`` per group: raydrift's kernel for small per-group products where it is built
    for AVX-512, ``torch.bmm`` otherwise."""
    G, M, K = a.shape
    N = b.shape[2]
    lib = library()
    if M * K * N > SMALL_PRODUCT or N < MIN_COLUMNS or not lib.rd_small_gemm():
        return torch.bmm(a, b, out=out)
    lib.rd_bmm(_ptr(a), _ptr(b), _ptr(out), G, M, K, N, torch.get_num_threads())
    return out


def sum_squares(a: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """The sum of squares of ``a`` over each of its ``groups`` equal leading slices, float64 ``[groups]``
    (float32 blocks summed in double: accurate over tens of millions of entries)."""
    out = torch.empty(groups, dtype=torch.float64)
    library().rd_sum_squares(_ptr(a), groups, a.numel() // groups, out.data_ptr(), torch.get_num_threads())
    return out


def distances(xy: torch.Tensor, sq: torch.Tensor, w: torch.Tensor | None, floor: float) -> float:
    """In place: products ``xy [G, Cg, N]`` of the centred samples and targets -> distances
    ``sqrt(max(|x_i|^2 + |y_j|^2 - 2 xy, floor))`` (``sq [G, N]``: the targets' squared norms, samples first),
    the self pair's ``d2`` zero; returns the sum of the distances weighted by ``w [G, N]`` (all 1 when None)."""
    G, Cg, N = xy.shape
    return library().rd_distances(_ptr(xy), _ptr(sq), _ptr(w), G, Cg, N, floor, torch.get_num_threads())


def energy(dist: torch.Tensor, inv_scale: float, self_mask: float, kernel: str) -> None:
    """In place: distances -> the kernel's energy of ``dist * inv_scale`` (``self_mask`` added on the self pair)."""
    G, Cg, N = dist.shape
    library().rd_energy(_ptr(dist), G, Cg, N, inv_scale, self_mask, KERNELS[kernel], torch.get_num_threads())


def coefficients(
    energy: torch.Tensor,
    w: torch.Tensor | None,
    taus: torch.Tensor,
    k: int,
    normalization: str,
    floor: float,
    out: torch.Tensor,
) -> torch.Tensor:
    """Force coefficients ``out [G, T, Cg, N]`` from energies ``[G, Cg, N]`` at temperatures ``taus [T]``."""
    G, Cg, N = energy.shape
    assert out.shape == (G, taus.numel(), Cg, N) and out.is_contiguous()
    library().rd_coefficients(
        _ptr(energy), _ptr(w), _ptr(out), G, Cg, N, k, _ptr(taus), taus.numel(),
        NORMALIZATIONS[normalization], floor, torch.get_num_threads(),
    )  # fmt: skip
    return out


def _ptr(t: torch.Tensor | None) -> int | None:
    if t is None:
        return None
    if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
        raise ValueError(f"native kernels need contiguous float32 CPU tensors, got {t.dtype} {t.device} {t.stride()}")
    return t.data_ptr()


def _compiler() -> str:
    cxx = os.environ.get("RAYDRIFT_CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        raise RuntimeError("no C++ compiler found (c++, g++ or clang++ on PATH)")
    return cxx


def _cpu_id() -> str:
    """What -march=native depends on: the CPU's flags (Linux) or its name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build() -> Path:
    cxx = _compiler()
    key = hashlib.sha256(
        b"\0".join([SOURCE.read_bytes(), " ".join((cxx, *FLAGS)).encode(), _cpu_id().encode()])
    ).hexdigest()[:16]
    target = default_cache_dir() / "native" / f"field-{key}.so"
    if target.exists():
        return target
    with locked(target.with_suffix(".lock")):
        if target.exists():  # another process built it while this one waited
            return target
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run([cxx, *FLAGS, "-o", str(tmp), str(SOURCE)], capture_output=True, text=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"{cxx} failed: {proc.stderr.strip()[-500:]}")
        tmp.replace(target)
    return target


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib
