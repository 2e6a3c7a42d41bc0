"""1.d Directional FSC in cones, sphericity and an anisotropy test.

``N_DIRECTIONS`` unit vectors spread over a hemisphere (a Fibonacci spiral); for each, the half
maps' Fourier coefficients whose direction lies within ``CONE_HALF_ANGLE_DEG`` of ±d (the
coefficients of a real map are Hermitian, so both senses carry the same information) give an FSC
per shell and a resolution at 0.143.

* Sphericity: worst / best directional resolution *frequency* (1 = isotropic, → 0 anisotropic).
* Anisotropy test: on the *noise*, not on the FSC.  A particle's own shape makes its signal
  power, hence its directional FSC, differ between directions even in a perfect reconstruction
  (an elongated protein: ±15 % in directional resolution), so a test of "equal directional FSC"
  rejects every real structure.  What orientation bias changes is the noise: directions seen
  by fewer particles average fewer images and carry more noise.  The noise of each coefficient is
  the half-map difference ``D = F1 - F2``; in the shells where the global FSC lies between 0.143
  and 0.9 (where the resolution is decided) the mean ``|D|²`` of each cone, ``P_d``, is compared
  with the shell's mean over the cones: ``ln P_d`` has variance ``1/n_d`` for n_d coefficients
  (exponentially distributed powers), and ``Σ_shells Σ_d n_d (ln P_d - mean)²`` is compared with
  χ² with ``(D - 1)`` degrees of freedom per shell.  Overlapping cones make neighbouring
  directions correlated, which only makes the test conservative.  p < 0.001 warns.  (Noise that
  is not stationary in real space -- a solvent-flattened map -- correlates neighbouring Fourier
  coefficients and can inflate the statistic; give unmasked half maps.)
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.fsc import FSCCurve, resolution_at
from deepqs.validation.inputs import ValidationInputs
from deepqs.validation.level1 import half_fsc, half_transforms
from deepqs.validation.util import fibonacci_hemisphere, fig_png, pyplot

LEVEL = "1"
#: Cone shells with fewer Fourier coefficients than this take the global FSC value (and are left
#: out of the anisotropy test).
MIN_CONE_COEFFICIENTS = 30


def directional_fsc(inp: ValidationInputs, n_dir: int = C.N_DIRECTIONS, half_angle_deg: float = C.CONE_HALF_ANGLE_DEG):
    """``(directions [D, 3] x,y,z, fsc [D, shells], counts [D, shells], frequency, noise power [D, shells])``."""
    f1, f2, shells, n = half_transforms(inp)
    n_shells = n // 2 + 1
    kz = np.fft.fftfreq(n)[:, None, None]
    ky = np.fft.fftfreq(n)[None, :, None]
    kx = np.fft.rfftfreq(n)[None, None, :]
    r = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    r[0, 0, 0] = 1.0
    ux, uy, uz = (np.broadcast_to(k / r, f1.shape).astype(np.float32) for k in (kx, ky, kz))
    cross = np.real(f1 * np.conj(f2))
    a1 = np.abs(f1) ** 2
    a2 = np.abs(f2) ** 2
    dn = np.abs(f1 - f2) ** 2
    noise = np.zeros((n_dir, n_shells))
    dirs = fibonacci_hemisphere(n_dir)
    cosmin = np.cos(np.radians(half_angle_deg))
    out = np.zeros((n_dir, n_shells))
    counts = np.zeros((n_dir, n_shells), dtype=np.int64)
    for i, (dx, dy, dz) in enumerate(dirs):
        cone = np.abs(ux * dx + uy * dy + uz * dz) >= cosmin
        cone[0, 0, 0] = True
        sh = shells[cone]
        keep = sh < n_shells
        sh = sh[keep]
        num = np.bincount(sh, weights=cross[cone][keep], minlength=n_shells)[:n_shells]
        p1 = np.bincount(sh, weights=a1[cone][keep], minlength=n_shells)[:n_shells]
        p2 = np.bincount(sh, weights=a2[cone][keep], minlength=n_shells)[:n_shells]
        noise[i] = np.bincount(sh, weights=dn[cone][keep], minlength=n_shells)[:n_shells]
        den = np.sqrt(p1 * p2)
        out[i] = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        counts[i] = np.bincount(sh, minlength=n_shells)[:n_shells]
    freq = np.arange(n_shells) / (n * inp.voxel_size)
    # shells with too few coefficients in a cone (the lowest ones) take the global FSC
    few = counts < MIN_CONE_COEFFICIENTS
    out = np.where(few, half_fsc(inp).fsc[None, :], out)
    noise = noise / np.maximum(counts, 1)
    return dirs, np.clip(out, -0.999999, 0.999999), counts, freq, noise


def anisotropy_test(noise_d: np.ndarray, counts: np.ndarray, global_fsc: np.ndarray):
    """``(chi2, dof, p)`` of the noise-isotropy test (see module doc); p = 1 when no shell qualifies."""
    band = np.flatnonzero((global_fsc > C.FSC_THRESHOLD) & (global_fsc < 0.9))
    band = band[band >= 1]
    chi2 = 0.0
    dof = 0
    for k in band:
        n = counts[:, k]
        ok = n >= MIN_CONE_COEFFICIENTS
        if ok.sum() < 2:
            continue
        if np.any(noise_d[ok, k] <= 0):
            continue
        z = np.log(noise_d[ok, k])
        w = n[ok].astype(np.float64)
        zbar = np.sum(w * z) / np.sum(w)
        chi2 += float(np.sum(w * (z - zbar) ** 2))
        dof += int(ok.sum()) - 1
    if dof == 0:
        return 0.0, 0, 1.0
    return chi2, dof, float(stats.chi2.sf(chi2, dof))


def check_1d(inp: ValidationInputs) -> Check:
    """1.d Directional FSC: resolution per direction, sphericity, anisotropy."""
    c = Check("1.d", "Directional FSC (anisotropy)", LEVEL, description=(
        f"FSC in {C.N_DIRECTIONS} cones of {C.CONE_HALF_ANGLE_DEG:g}° half-angle over a hemisphere; anisotropy "
        f"test (noise power per cone) p < {C.ANISOTROPY_P:g}, or a reported resolution below {C.OVERCLAIM_FACTOR:g}× the mean directional "
        "resolution, warns.  Sphericity = worst / best directional resolution frequency."))
    dirs, fd, counts, freq, noise = directional_fsc(inp)
    res = np.array([resolution_at(FSCCurve(freq, fd[i], counts[i]), C.FSC_THRESHOLD) for i in range(len(dirs))])
    mean_res = float(res.mean())
    spher = float(res.min() / res.max())
    chi2, dof, p = anisotropy_test(noise, counts, half_fsc(inp).fsc)
    c.warn_if(p < C.ANISOTROPY_P, f"the resolution is anisotropic (p = {p:.2g} < {C.ANISOTROPY_P:g}; directional "
              f"resolution {res.min():.2f} .. {res.max():.2f} Å; the half-map noise differs between directions)")
    c.warn_if(inp.resolution < C.OVERCLAIM_FACTOR * mean_res,
              f"reported {inp.resolution:g} Å is below {C.OVERCLAIM_FACTOR:g} × the mean directional resolution "
              f"{mean_res:.2f} Å")
    c.values = {"mean_directional_resolution_A": mean_res, "best_directional_resolution_A": float(res.min()),
                "worst_directional_resolution_A": float(res.max()), "sphericity": spher,
                "anisotropy_chi2": chi2, "anisotropy_dof": dof, "anisotropy_p": p,
                "directions_xyz": [[float(v) for v in d] for d in dirs],
                "directional_resolution_A": [float(v) for v in res]}
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i in range(len(dirs)):
        axes[0].plot(freq, fd[i], "-", lw=0.6, color=plt.get_cmap("jet")((res[i] - res.min()) / max(np.ptp(res), 1e-9)))
    axes[0].plot(freq, half_fsc(inp).fsc, "k-", lw=1.5, label="global")
    axes[0].axhline(C.FSC_THRESHOLD, color="gray", ls=":")
    axes[0].set_xlabel("frequency (1/Å)")
    axes[0].set_ylabel("FSC")
    axes[0].set_ylim(-0.1, 1.02)
    axes[0].legend(fontsize=7, frameon=False)
    axes[0].set_title("directional FSC (blue best, red worst)", fontsize=9)
    az = np.degrees(np.arctan2(dirs[:, 1], dirs[:, 0]))
    el = np.degrees(np.arcsin(np.clip(dirs[:, 2], -1, 1)))
    sc = axes[1].scatter(az, el, c=res, cmap="jet", s=60)
    fig.colorbar(sc, ax=axes[1], label="resolution (Å; blue good, red poor)")
    axes[1].set_xlabel("azimuth (°)")
    axes[1].set_ylabel("elevation (°)")
    axes[1].set_title(f"sphericity {spher:.2f}, p = {p:.2g}", fontsize=9)
    c.figures["directional"] = fig_png(fig)
    return c.decide()
