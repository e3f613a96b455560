"""Portable math: sin, cos, exp and small matrix products with the same bits on every SIMD
kernel."""

from __future__ import annotations

import numpy as np

# numpy's sin, cos and exp (and BLAS-backed matmul, einsum, norm) pick SIMD
# kernels by CPU, so their last bits can differ between machines, and a last
# bit can flip a rounded output byte. The generator therefore uses only
# + - * / sqrt rint floor ldexp, which IEEE 754 defines exactly, each in its
# own ufunc call (numpy never fuses them into FMAs). Accuracy ~1e-15.

_HALF_PI = np.pi / 2.0
LN2 = 0.6931471805599453  # ln 2, a literal rather than a libm call
DEG = np.pi / 180.0


def _sin_cos_reduced(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Taylor series (Horner form) of sin and cos for |r| <= pi/4, error < 1e-16."""
    r2 = r * r
    s = np.ones_like(r)
    for d in (210.0, 156.0, 110.0, 72.0, 42.0, 20.0, 6.0):  # (2k)(2k+1)
        s = 1.0 - (r2 / d) * s
    c = np.ones_like(r)
    for d in (240.0, 182.0, 132.0, 90.0, 56.0, 30.0, 12.0, 2.0):  # (2k-1)(2k)
        c = 1.0 - (r2 / d) * c
    return r * s, c


def psin(x) -> np.ndarray:
    """Portable sin of ``x`` (rad), bit-identical on every IEEE 754 machine."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x / _HALF_PI)
    s, c = _sin_cos_reduced(x - k * _HALF_PI)
    q = np.mod(k, 4.0)
    return np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))


def pcos(x) -> np.ndarray:
    """Portable cos of ``x`` (rad)."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x / _HALF_PI)
    s, c = _sin_cos_reduced(x - k * _HALF_PI)
    q = np.mod(k, 4.0)
    return np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))


def pexp(x) -> np.ndarray:
    """Portable exp of ``x`` (clipped to [-700, 700])."""
    x = np.clip(np.asarray(x, dtype=np.float64), -700.0, 700.0)
    k = np.rint(x / LN2)
    r = x - k * LN2
    p = np.ones_like(r)
    for d in range(13, 0, -1):  # Taylor to degree 13, |r| <= ln2/2: error < 1e-16
        p = 1.0 + (r / d) * p
    return np.ldexp(p, k.astype(np.int64))


def pnorm(v: np.ndarray) -> np.ndarray:
    """Length of vectors ``[..., 3]`` -> ``[...]``."""
    return np.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1] + v[..., 2] * v[..., 2])


def pmatmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[..., 3, 3] @ [..., 3, 3]`` with a fixed order of operations."""
    return (a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :]) \
        + a[..., :, 2:3] * b[..., 2:3, :]


def apply_rot(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors: ``r`` [..., 3, 3] applied to ``v`` [..., 3] (broadcast) -> [..., 3]."""
    v = np.asarray(v)
    return (r[..., 0] * v[..., 0:1] + r[..., 1] * v[..., 1:2]) + r[..., 2] * v[..., 2:3]


