"""Level 1: checks with two half maps — global resolution (FSC, DPR, SSNR) and the permutation test.

Local resolution (1.c) is in :mod:`deepqs.validation.localres`, the directional FSC (1.d) in
:mod:`deepqs.validation.directional`.

Definitions (shells as in :mod:`deepqs.validation.fsc`; non-cubic boxes are zero-padded to a cube):

* FSC resolution: first fall below 0.143 (:func:`~deepqs.validation.fsc.resolution_at`).
* DPR, the differential phase residual of shell k: ``sqrt(Σ w Δφ² / Σ w)`` with
  ``w = |F1| + |F2|`` and ``Δφ`` the phase difference wrapped to (-180°, 180°]; summed over
  shells k-1..k+1 to steady it.  Random phases give π/√3 = 103.9°; the DPR resolution is where
  the curve first reaches 103.9°, i.e. where no phase information is left.
* SSNR of the full (averaged) map: ``2·FSC / (1 - FSC)``; its resolution is where SSNR falls to 1
  (FSC = 1/3).
* Permutation test: the phases of half map 2 are replaced by uniform random phases
  (``N_PERMUTATIONS`` times, seeded) and the FSC recomputed: a noise FSC per shell whose spread
  σ_k gives each observed shell a one-sided normal p-value ``P(noise FSC ≥ FSC_k)``; shells are
  tested with Benjamini-Hochberg at FDR 1 % and the resolution is the last significant shell
  before the first non-significant one.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.fsc import FSCCurve, fsc, resolution_at, shell_index, shell_sums
from deepqs.validation.inputs import ValidationInputs
from deepqs.validation.util import fig_png, pad_to_cube, pyplot

LEVEL = "1"


def half_transforms(inp: ValidationInputs):
    """``(F1, F2, shells, n)``: rfftn of the (cube-padded) half maps, cached."""
    if "half_ft" not in inp.cache:
        a = pad_to_cube(np.asarray(inp.half1.data, dtype=np.float64))
        b = pad_to_cube(np.asarray(inp.half2.data, dtype=np.float64))
        n = a.shape[0]
        inp.cache["half_ft"] = (np.fft.rfftn(a), np.fft.rfftn(b), shell_index(n), n)
    return inp.cache["half_ft"]


def half_fsc(inp: ValidationInputs) -> FSCCurve:
    if "half_fsc" not in inp.cache:
        a = pad_to_cube(inp.half1.data)
        b = pad_to_cube(inp.half2.data)
        inp.cache["half_fsc"] = fsc(a, b, inp.voxel_size)
    return inp.cache["half_fsc"]


def dpr_curve(inp: ValidationInputs) -> np.ndarray:
    """DPR (degrees) per shell 0..N/2 (see module doc)."""
    f1, f2, shells, n = half_transforms(inp)
    n_shells = n // 2 + 1
    w = np.abs(f1) + np.abs(f2)
    dphi = np.angle(f1 * np.conj(f2))
    num = shell_sums(w * dphi ** 2, shells, n_shells)
    den = shell_sums(w, shells, n_shells)
    k = np.ones(3)
    num_s = np.convolve(num, k, mode="same")
    den_s = np.convolve(den, k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.degrees(np.sqrt(np.where(den_s > 0, num_s / den_s, 0.0)))


def _first_crossing_up(freq: np.ndarray, curve: np.ndarray, level: float) -> float:
    """Resolution (Å) where ``curve`` first reaches ``level`` from below (shell 1 on)."""
    above = np.flatnonzero(curve[1:] >= level)
    if len(above) == 0:
        return float(1.0 / freq[-1])
    i = int(above[0]) + 1
    if i == 1:
        return float(1.0 / freq[1])
    f = freq[i - 1] + (level - curve[i - 1]) * (freq[i] - freq[i - 1]) / (curve[i] - curve[i - 1])
    return float(1.0 / f)


def check_1a(inp: ValidationInputs) -> Check:
    """1.a Global resolution by FSC 0.143, DPR 103.9° and SSNR 1."""
    c = Check("1.a", "Global resolution (FSC, DPR, SSNR)", LEVEL, description=(
        f"Half-map FSC at {C.FSC_THRESHOLD}, DPR at {C.DPR_THRESHOLD_DEG}° (random phases) and full-map SSNR = 1; "
        f"a reported resolution below {C.OVERCLAIM_FACTOR:g}× any of these estimates warns."))
    curve = half_fsc(inp)
    r_fsc = resolution_at(curve, C.FSC_THRESHOLD)
    r_half = resolution_at(curve, 0.5)
    dpr = dpr_curve(inp)
    r_dpr = _first_crossing_up(curve.frequency_invA, dpr, C.DPR_THRESHOLD_DEG)
    # SSNR = 2 FSC / (1 - FSC) = 1  <=>  FSC = 1/3
    ssnr_fsc = C.SSNR_THRESHOLD / (2.0 + C.SSNR_THRESHOLD)
    r_ssnr = resolution_at(curve, ssnr_fsc)
    inp.cache["resolution_fsc"] = r_fsc
    nyquist = 2.0 * inp.voxel_size
    c.warn_if(inp.resolution < nyquist * 0.999, f"reported {inp.resolution:g} Å is finer than Nyquist ({nyquist:g} Å)")
    for name, r in (("FSC 0.143", r_fsc), ("DPR 103.9°", r_dpr), ("SSNR 1", r_ssnr)):
        c.warn_if(inp.resolution < C.OVERCLAIM_FACTOR * r,
                  f"reported {inp.resolution:g} Å is below {C.OVERCLAIM_FACTOR:g} × the {name} resolution {r:.2f} Å")
    with np.errstate(divide="ignore", invalid="ignore"):
        ssnr = np.where(curve.fsc < 1, 2 * curve.fsc / (1 - curve.fsc), np.inf)
    c.values = {"resolution_fsc_0143_A": r_fsc, "resolution_fsc_05_A": r_half, "resolution_dpr_A": r_dpr,
                "resolution_ssnr_A": r_ssnr, "reported_resolution_A": inp.resolution,
                "fsc_curve": {"frequency_invA": [float(v) for v in curve.frequency_invA],
                              "fsc": [float(v) for v in curve.fsc], "dpr_deg": [float(v) for v in dpr]}}
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    f = curve.frequency_invA
    axes[0].plot(f, curve.fsc, "-", color="#4a7ab5", label="half-map FSC")
    axes[0].axhline(C.FSC_THRESHOLD, color="gray", ls=":", lw=1)
    axes[0].axvline(1 / r_fsc, color="C3", ls="--", lw=1, label=f"{r_fsc:.2f} Å (0.143)")
    axes[0].axvline(1 / inp.resolution, color="k", ls="-.", lw=1, label=f"reported {inp.resolution:g} Å")
    axes[0].set_ylim(-0.1, 1.02)
    axes[0].set_title("FSC", fontsize=9)
    axes[1].plot(f[1:], dpr[1:], "-", color="#4a7ab5")
    axes[1].axhline(C.DPR_THRESHOLD_DEG, color="gray", ls=":", lw=1)
    axes[1].axvline(1 / r_dpr, color="C3", ls="--", lw=1, label=f"{r_dpr:.2f} Å")
    axes[1].set_ylabel("DPR (°)")
    axes[1].set_title("DPR", fontsize=9)
    ok = np.isfinite(ssnr) & (ssnr > 0)
    axes[2].semilogy(f[ok], ssnr[ok], "-", color="#4a7ab5")
    axes[2].axhline(1.0, color="gray", ls=":", lw=1)
    axes[2].axvline(1 / r_ssnr, color="C3", ls="--", lw=1, label=f"{r_ssnr:.2f} Å")
    axes[2].set_title("SSNR", fontsize=9)
    for ax in axes:
        ax.set_xlabel("frequency (1/Å)")
        ax.legend(fontsize=7, frameon=False)
    c.figures["fsc_dpr_ssnr"] = fig_png(fig)
    return c.decide()


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """Boolean array: which of ``p`` are discoveries at false discovery rate ``q``."""
    m = len(p)
    order = np.argsort(p)
    passed = p[order] <= q * (np.arange(1, m + 1) / m)
    k = np.flatnonzero(passed)
    out = np.zeros(m, dtype=bool)
    if len(k):
        out[order[:k[-1] + 1]] = True
    return out


def check_1b(inp: ValidationInputs, n_perm: int = C.N_PERMUTATIONS, seed: int = 0) -> Check:
    """1.b Permutation test with phase-randomised half maps; resolution at 1 % FDR."""
    c = Check("1.b", "Permutation test (noise FSC, 1 % FDR)", LEVEL, description=(
        f"{n_perm} phase-randomised versions of half map 2 give a noise FSC per shell; shells whose FSC is "
        f"significant (Benjamini-Hochberg, FDR {100 * C.PERMUTATION_FDR:g} %) define the resolution; a reported "
        f"resolution below {C.OVERCLAIM_FACTOR:g}× it warns."))
    f1, f2, shells, n = half_transforms(inp)
    curve = half_fsc(inp)
    n_shells = n // 2 + 1
    p1 = shell_sums(np.abs(f1) ** 2, shells, n_shells)
    p2 = shell_sums(np.abs(f2) ** 2, shells, n_shells)
    den = np.sqrt(p1 * p2)
    cross = f1 * np.conj(f2)
    rng = np.random.default_rng(seed)
    null = np.empty((n_perm, n_shells))
    for i in range(n_perm):
        ph = np.exp(1j * rng.uniform(-np.pi, np.pi, size=cross.shape))
        num = shell_sums(np.real(cross * ph), shells, n_shells)
        null[i] = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    sigma = np.sqrt(np.mean(null ** 2, axis=0))
    sigma = np.maximum(sigma, 1e-12)
    pvals = stats.norm.sf(curve.fsc / sigma)
    sig = benjamini_hochberg(pvals[1:], C.PERMUTATION_FDR)
    first_bad = np.flatnonzero(~sig)
    last = (int(first_bad[0]) if len(first_bad) else len(sig))    # shells 1..last are significant
    freq = curve.frequency_invA
    r_perm = float(1.0 / freq[max(last, 1)])
    c.warn_if(inp.resolution < C.OVERCLAIM_FACTOR * r_perm,
              f"reported {inp.resolution:g} Å is below {C.OVERCLAIM_FACTOR:g} × the permutation-test resolution "
              f"{r_perm:.2f} Å")
    c.values = {"resolution_fdr_A": r_perm, "n_permutations": n_perm, "fdr": C.PERMUTATION_FDR,
                "significant_shells": int(last), "noise_fsc_sigma": [float(v) for v in sigma]}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(freq, curve.fsc, "-", color="#4a7ab5", label="half-map FSC")
    ax.fill_between(freq, -3 * sigma, 3 * sigma, color="gray", alpha=0.4, label="noise FSC ±3σ")
    ax.axvline(1 / r_perm, color="C3", ls="--", lw=1, label=f"1 % FDR: {r_perm:.2f} Å")
    ax.axvline(1 / inp.resolution, color="k", ls="-.", lw=1, label=f"reported {inp.resolution:g} Å")
    ax.set_xlabel("frequency (1/Å)")
    ax.set_ylim(-0.15, 1.02)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Permutation test", fontsize=9)
    c.figures["permutation"] = fig_png(fig)
    return c.decide()
