"""A small procedurally built protein-like model (the project's demo and test structure).

The model (from 50 residues on) is an α/β two-layer sandwich; smaller ones are a helical
hairpin (28-49 residues) or a single helix (20-27).  It is built from ideal internal
coordinates:

* **Backbone** by NeRF (natural extension reference frame: each atom is placed from the three
  before it with a bond length, a bond angle and a dihedral).  Ideal bond lengths
  N-CA 1.46 Å, CA-C 1.52 Å, C-N 1.33 Å, C-O 1.23 Å and angles N-CA-C 111.0°,
  CA-C-N 116.2°, C-N-CA 121.7°, CA-C-O 120.5°; every peptide is trans (ω = 180°).
* **Secondary structure**: α-helices with (φ, ψ) = (-57°, -47°) (3.6 residues per turn,
  1.5 Å rise, i → i+4 C=O···H-N hydrogen bonds) and β-strands with (φ, ψ) = (-120°, +130°)
  (3.3-3.4 Å rise, pleated).  Two or three strands form an antiparallel meander sheet in the
  plane y = 0 (axes along z, 4.4-5.2 Å apart, registry chosen to maximise inter-strand O···N
  hydrogen bonds); the helices (one per ~25 residues) lie side by side in a second layer
  10 Å above the sheet, antiparallel to their neighbours.  Each element is placed as a rigid
  body; the helices are 10-30 residues long.
* **Loops** join consecutive elements.  They are built by NeRF from random torsions in allowed
  Ramachandran regions and closed onto the next element by damped Gauss-Newton
  (Levenberg-Marquardt) on their φ/ψ angles -- the same kinematic idea as cyclic coordinate
  descent (Canutescu & Dunbrack 2003) but with all torsions moved at once and with soft
  repulsion terms that push atoms apart; many trials run at once (batched) and the closed,
  clash-free loop with the most Ramachandran-like torsions is kept.  A loop that cannot be
  closed is retried one residue longer.  Termini are short free tails that take up the
  residues left, so the chain has exactly the requested length.
* **Sequence and side chains**: residues whose CB points into the protein (many CB
  neighbours) get hydrophobic types, exposed ones polar types, loops Gly/Asn/Asp/Ser/...;
  heavy side-chain atoms are built from ideal internal coordinates and a small rotamer
  library, and a residue whose rotamers all clash is truncated to Ala.
* **B-factors** grow from the core (about 15 Å²) to the surface and termini (up to about
  100 Å²), and along the side chains.

Everything is deterministic for a given ``seed`` (``np.random.default_rng(seed)``).
Coordinates are in Å, B-factors in Å².
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from deepqs.errors import InputError
from deepqs.io.atoms import Atoms

__all__ = [
    "BOND_N_CA",
    "BOND_CA_C",
    "BOND_C_N",
    "BOND_C_O",
    "build_protein_model",
    "build_assembly",
    "protein_atoms",
]

# --- ideal backbone geometry (Å, degrees) -------------------------------------------------
BOND_N_CA = 1.46
BOND_CA_C = 1.52
BOND_C_N = 1.33
BOND_C_O = 1.23
BOND_CA_CB = 1.53
ANG_N_CA_C = 111.0
ANG_CA_C_N = 116.2
ANG_C_N_CA = 121.7
ANG_CA_C_O = 120.5
ANG_N_CA_CB = 110.5
DIH_C_N_CA_CB = -122.5  # L-amino acids

HELIX_PHI_PSI = (-57.0, -47.0)
_C_TERMINAL_PSI = 140.0   # ψ that places the carbonyl O of the last residue
STRAND_PHI_PSI = (-120.0, 130.0)

#: Centres of allowed Ramachandran regions used to seed and to score loops (φ, ψ).
_RAMA_CENTRES = np.array([[-63.0, -43.0], [-120.0, 130.0], [-70.0, 145.0], [60.0, 45.0]])
_RAMA_WEIGHTS = np.array([0.35, 0.3, 0.3, 0.05])

#: Closest allowed distance (Å) between non-bonded backbone atoms of residues at least two
#: apart while building, by atom kind (0: carbon, 1: N, 2: O): N···O hydrogen bonds may come
#: to 2.55 Å, N···N and O···O to 2.8 Å, anything with a carbon to 2.9 Å.
_CONTACT_MIN = np.array([[2.9, 2.9, 2.9], [2.9, 2.8, 2.55], [2.9, 2.55, 2.8]])
_CLASH_A = float(_CONTACT_MIN.max())
#: Atom kind (0 C, 1 N, 2 O) of the backbone slots N, CA, C, O, CB used while building.
_SLOT_KIND = np.array([1, 0, 0, 2, 0])

#: Minimum distances (Å) between backbone slots of consecutive residues i (row) and i+1 (column)
#: that are not fixed by the peptide geometry (0: not checked).
_ADJACENT_MIN = np.zeros((5, 5))
_ADJACENT_MIN[3, 3] = 2.75   # O(i)-O(i+1)
_ADJACENT_MIN[3, 2] = 2.6    # O(i)-C(i+1)   (2.9 in an ideal α-helix)
_ADJACENT_MIN[3, 4] = 2.65   # O(i)-CB(i+1)
_ADJACENT_MIN[4, 0] = 2.55   # CB(i)-N(i+1)
_ADJACENT_MIN[4, 4] = 2.9    # CB(i)-CB(i+1)
_SIDECHAIN_CLASH_A = 2.9


# --- small vector helpers ------------------------------------------------------------------
def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (broadcasting), cheaper than ``np.cross`` for small arrays."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def nerf(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle_deg, torsion_deg) -> np.ndarray:
    """Place atom d from a, b, c (each (..., 3), Å): |cd| = ``bond``, angle b-c-d, dihedral a-b-c-d.

    Vectorised over the leading dimensions (angles in degrees, broadcastable).
    """
    bc = _unit(c - b)
    n = _unit(np.cross(b - a, bc))
    m = np.cross(n, bc)
    ang = np.radians(angle_deg)
    tor = np.radians(torsion_deg)
    d0 = -bond * np.cos(ang)
    d1 = bond * np.sin(ang) * np.cos(tor)
    d2 = bond * np.sin(ang) * np.sin(tor)
    return c + np.asarray(d0)[..., None] * bc + np.asarray(d1)[..., None] * m + np.asarray(d2)[..., None] * n


def dihedral(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Dihedral angle a-b-c-d in degrees (IUPAC sign), vectorised over leading dimensions."""
    b0 = a - b
    b1 = _unit(c - b)
    b2 = d - c
    v = b0 - np.sum(b0 * b1, axis=-1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, axis=-1, keepdims=True) * b1
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1, v) * w, axis=-1)
    return np.degrees(np.arctan2(y, x))


def _rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    axis = _unit(np.asarray(axis, dtype=np.float64))
    x, y, z = axis
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    C = 1.0 - c
    return np.array([
        [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
        [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
        [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
    ])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


# --- backbone building ---------------------------------------------------------------------
def _extend(prev: np.ndarray, psi_prev, phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Extend a chain by ``len(phi)`` residues after the residue ``prev`` (..., 3 atoms N/CA/C, 3).

    ``psi_prev`` is ψ of ``prev``; ``phi``/``psi`` have shape (..., L).  Returns (..., L, 3, 3)
    backbone atoms N, CA, C of the new residues (trans peptides).  One NeRF step per residue.
    """
    phi = np.asarray(phi, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    L = phi.shape[-1]
    out = np.empty(phi.shape[:-1] + (L, 3, 3))
    n_p, ca_p, c_p = prev[..., 0, :], prev[..., 1, :], prev[..., 2, :]
    psi_p = np.asarray(psi_prev, dtype=np.float64)
    for k in range(L):
        n_new = nerf(n_p, ca_p, c_p, BOND_C_N, ANG_CA_C_N, psi_p)
        ca_new = nerf(ca_p, c_p, n_new, BOND_N_CA, ANG_C_N_CA, 180.0)
        c_new = nerf(c_p, n_new, ca_new, BOND_CA_C, ANG_N_CA_C, phi[..., k])
        out[..., k, 0, :], out[..., k, 1, :], out[..., k, 2, :] = n_new, ca_new, c_new
        n_p, ca_p, c_p, psi_p = n_new, ca_new, c_new, psi[..., k]
    return out


def _extend_backwards(first: np.ndarray, phi_first, phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Grow ``len(phi)`` residues before residue ``first`` (N/CA/C); returns them in chain order.

    ``phi_first`` is φ of ``first``; ``phi``/``psi`` (..., L) are the torsions of the new
    residues in chain order.
    """
    phi = np.asarray(phi, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    L = phi.shape[-1]
    out = np.empty(phi.shape[:-1] + (L, 3, 3))
    n_n, ca_n, c_n = first[..., 0, :], first[..., 1, :], first[..., 2, :]
    phi_n = np.asarray(phi_first, dtype=np.float64)
    for k in range(L - 1, -1, -1):
        c_new = nerf(c_n, ca_n, n_n, BOND_C_N, ANG_C_N_CA, phi_n)
        ca_new = nerf(ca_n, n_n, c_new, BOND_CA_C, ANG_CA_C_N, 180.0)
        n_new = nerf(n_n, c_new, ca_new, BOND_N_CA, ANG_N_CA_C, psi[..., k])
        out[..., k, 0, :], out[..., k, 1, :], out[..., k, 2, :] = n_new, ca_new, c_new
        n_n, ca_n, c_n, phi_n = n_new, ca_new, c_new, phi[..., k]
    return out


def _start_frame() -> np.ndarray:
    n = np.zeros(3)
    ca = np.array([BOND_N_CA, 0.0, 0.0])
    ang = np.radians(ANG_N_CA_C)
    c = ca + BOND_CA_C * np.array([-np.cos(ang), np.sin(ang), 0.0])
    return np.stack([n, ca, c])


def _ideal_segment(length: int, phi_psi: Tuple[float, float]) -> np.ndarray:
    """An ideal segment of ``length`` residues plus one extra (for the last carbonyl O): (L+1, 3, 3)."""
    first = _start_frame()
    rest = _extend(first, phi_psi[1], np.full(length, phi_psi[0]), np.full(length, phi_psi[1]))
    return np.concatenate([first[None], rest], axis=0)


def _carbonyl_o(bb: np.ndarray, next_n: np.ndarray) -> np.ndarray:
    """O atoms (…, 3) in the peptide plane, trans to the next N (vectorised)."""
    return nerf(next_n, bb[..., 1, :], bb[..., 2, :], BOND_C_O, ANG_CA_C_O, 180.0)


def _cb(bb: np.ndarray) -> np.ndarray:
    """CB atoms (…, 3) of L-amino acids from N/CA/C (…, 3, 3)."""
    return nerf(bb[..., 2, :], bb[..., 0, :], bb[..., 1, :], BOND_CA_CB, ANG_N_CA_CB, DIH_C_N_CA_CB)


def _segment_atoms(bb: np.ndarray, next_n: np.ndarray) -> np.ndarray:
    """(L, 5, 3) N, CA, C, O, CB of a segment whose residue after the last has N at ``next_n``."""
    nn = np.concatenate([bb[1:, 0, :], next_n[None]], axis=0)
    return np.concatenate([bb, _carbonyl_o(bb, nn)[:, None], _cb(bb)[:, None]], axis=1)


# --- rigid placement of the elements ------------------------------------------------------
def _principal_axis(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    if np.dot(axis, end - start) < 0:
        axis = -axis
    return axis


def _frame_to(axis: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Rotation mapping ``axis`` -> +z and ``side`` (made orthogonal) -> +y."""
    z = _unit(axis)
    y = _unit(side - np.dot(side, z) * z)
    x = np.cross(y, z)
    return np.stack([x, y, z])  # rows: new basis -> R @ v gives coordinates in (x, y, z)


@dataclass
class _Element:
    kind: str            # 'H' or 'E'
    bb: np.ndarray       # (L+1, 3, 3) incl. the extra residue (placed with the element)
    phi_psi: Tuple[float, float]

    @property
    def length(self) -> int:
        return self.bb.shape[0] - 1

    def transform(self, R: np.ndarray, t: np.ndarray) -> None:
        self.bb = self.bb @ R.T + t

    def atoms(self) -> np.ndarray:
        return _segment_atoms(self.bb[:-1], self.bb[-1, 0])


def _place_helix(length: int, x: float, y: float, up: bool, spin: float) -> _Element:
    bb = _ideal_segment(length, HELIX_PHI_PSI)
    ca = bb[:-1, 1]
    axis = _principal_axis(ca, ca[0], ca[-1])
    perp = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
    R = _frame_to(axis, perp)
    R = _rotation_matrix([0, 0, 1], spin) @ R
    if not up:
        R = _rotation_matrix([1, 0, 0], np.pi) @ R
    el = _Element("H", bb, HELIX_PHI_PSI)
    centre = ca.mean(axis=0)
    el.transform(R, -R @ centre)
    el.transform(np.eye(3), np.array([x, y, 0.0]))
    return el


def _strand_frame(bb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    ca = bb[:-1, 1]
    axis = _principal_axis(ca, ca[0], ca[-1])
    rel = ca - ca.mean(axis=0)
    rel -= np.outer(rel @ axis, axis)
    sign = np.where(np.arange(len(ca)) % 2 == 0, 1.0, -1.0)
    pleat = (sign[:, None] * rel).sum(axis=0)
    return _frame_to(axis, pleat), ca.mean(axis=0)


def _hbond_score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Score of strand placements: a (5L, 3) fixed atoms, b (..., 5L, 3) candidates.

    +1 per O···N pair at 2.7-3.2 Å, -10 per heavy-atom pair closer than 2.9 Å (except those O···N pairs).
    """
    d = np.linalg.norm(a[None, :, None, :] - b[..., None, :, :], axis=-1)  # (..., na, nb)
    na = a.shape[0] // 5
    names = np.tile(np.arange(5), na)   # 0 N, 1 CA, 2 C, 3 O, 4 CB
    on = ((names[:, None] == 3) & (names[None, :] == 0)) | ((names[:, None] == 0) & (names[None, :] == 3))
    good = on & (d >= 2.7) & (d <= 3.2)
    bad = (d < _CLASH_A) & ~good
    return good.sum(axis=(-1, -2)) - 10.0 * bad.sum(axis=(-1, -2))


def _end_pair_hbonds(a: np.ndarray, b: np.ndarray) -> int:
    """Hydrogen bonds (O···N 2.7-3.2 Å) between the last residue of strand ``a`` and the first of ``b``."""
    d1 = np.linalg.norm(a[-1, 3] - b[0, 0])
    d2 = np.linalg.norm(a[-1, 0] - b[0, 3])
    return int(2.7 <= d1 <= 3.2) + int(2.7 <= d2 <= 3.2)


def _place_sheet(n_strands: int, length: int) -> List[_Element]:
    """An antiparallel meander sheet in the plane y = 0, strands along ±z, stacked along +x.

    Each strand is placed against the previous one by a grid search over spacing, axial shift
    and a half turn about its own axis, maximising inter-strand O···N hydrogen bonds with the
    hairpin ends level.  The first strand's phase is chosen so that the residues at the
    hairpin ends form hydrogen-bonded pairs where possible.
    """
    bb0 = _ideal_segment(length, STRAND_PHI_PSI)
    R0, c0 = _strand_frame(bb0)
    up_bb = (bb0 - c0) @ R0.T
    # two ways to point a strand up (+z) or down (-z): the second also turns it half a turn
    # about its own axis, which swaps the pleat phase -- the search picks what pairs best
    ups = [up_bb, up_bb @ _rotation_matrix([0, 0, 1], np.pi).T]
    downs = [up_bb @ _rotation_matrix([1, 0, 0], np.pi).T, up_bb @ _rotation_matrix([0, 1, 0], np.pi).T]
    shifts_z = np.linspace(-3.5, 3.5, 71)
    spacings = np.linspace(4.4, 5.2, 9)
    grid_z, grid_x = np.meshgrid(shifts_z, spacings, indexing="ij")
    best_sheet, best_pairs = None, -1
    for first in ups:
        elements = [_Element("E", first.copy(), STRAND_PHI_PSI)]
        for j in range(1, n_strands):
            prev = elements[-1]
            prev_atoms = prev.atoms()
            base_x = prev.bb[:-1, 1, 0].mean()
            offsets = np.stack([base_x + grid_x.ravel(), np.zeros(grid_x.size), grid_z.ravel()], axis=1)
            best_score, best_bb = -np.inf, None
            for cand_bb in (downs if j % 2 == 1 else ups):
                cand_atoms = _segment_atoms(cand_bb[:-1], cand_bb[-1, 0]).reshape(-1, 3)
                score = _hbond_score(prev_atoms.reshape(-1, 3), cand_atoms[None] + offsets[:, None, :])
                # hairpin ends level: the last residue of this strand faces the first of the next
                end_gap = np.abs(prev.bb[-2, 1, 2] - (cand_bb[0, 1, 2] + grid_z.ravel()))
                score = np.where(end_gap < 1.0, score, -np.inf) - 0.01 * end_gap
                k = int(np.argmax(score))
                if score[k] > best_score:
                    best_score, best_bb = score[k], cand_bb + offsets[k]
            elements.append(_Element("E", best_bb, STRAND_PHI_PSI))
        pairs = sum(_end_pair_hbonds(elements[j].atoms(), elements[j + 1].atoms()) for j in range(n_strands - 1))
        if pairs > best_pairs:
            best_sheet, best_pairs = elements, pairs
    return best_sheet


# --- loop closure ------------------------------------------------------------------------------
def _sample_rama(rng: np.random.Generator, shape: Tuple[int, ...]) -> Tuple[np.ndarray, np.ndarray]:
    region = rng.choice(len(_RAMA_CENTRES), size=shape, p=_RAMA_WEIGHTS)
    phi = _RAMA_CENTRES[region, 0] + rng.normal(0.0, 15.0, size=shape)
    psi = _RAMA_CENTRES[region, 1] + rng.normal(0.0, 15.0, size=shape)
    return phi, psi


def _rama_penalty(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Sum over residues of the angular distance (degrees) to the nearest allowed-region centre."""
    dphi = (phi[..., None] - _RAMA_CENTRES[:, 0] + 180.0) % 360.0 - 180.0
    dpsi = (psi[..., None] - _RAMA_CENTRES[:, 1] + 180.0) % 360.0 - 180.0
    return np.sqrt(dphi ** 2 + dpsi ** 2).min(axis=-1).sum(axis=-1)


#: Atom order inside a loop chain being closed: kinematic order, so that every torsion moves
#: a contiguous tail of the array (φ_k moves CB_k onwards, ψ_k moves O_k onwards).
_LOOP_ORDER = np.array([0, 1, 4, 2, 3])          # N, CA, CB, C, O as indices of (N, CA, C, O, CB)


def _loop_layout(L: int):
    """Bonds, target indices and internal repulsive pairs of a loop of L residues.

    The chain holds the fixed residue before the loop (0), loop residues 1..L and the anchor
    L+1, each as N, CA, CB, C, O, without the anchor's O (n = 5(L+2) - 1 atoms).
    """
    bonds = [(1, 3, 4)]                                   # ψ of the fixed residue: CA->C, moves O_0 on
    for k in range(1, L + 2):
        o = 5 * k
        bonds.append((o, o + 1, o + 2))                   # φ_k: N->CA, moves CB_k on
        if k <= L:
            bonds.append((o + 1, o + 3, o + 4))           # ψ_k: CA->C, moves O_k on
    n = 5 * (L + 2) - 1
    target = np.array([5 * (L + 1), 5 * (L + 1) + 1, 5 * (L + 1) + 3])
    res = np.arange(n) // 5
    slot = _LOOP_ORDER[np.arange(n) % 5]                  # as (N, CA, C, O, CB) slots
    i, j = np.triu_indices(n, k=1)
    sep = res[j] - res[i]
    kind = _SLOT_KIND[slot]
    lim_far = _CONTACT_MIN[kind[i], kind[j]]
    lim_adj = _ADJACENT_MIN[slot[i], slot[j]]
    lim = np.where(sep >= 2, lim_far, np.where(sep == 1, lim_adj, 0.0))
    # atoms whose final place is fixed (the residue before the loop but its O, and the anchor,
    # which ends on the next residue): pairs among them cannot change, so they are not restrained
    fixed = (np.arange(n) < 4) | (np.arange(n) >= 5 * (L + 1))
    keep = (lim > 0) & ~(fixed[i] & fixed[j])
    starts = np.array([b[2] for b in bonds])
    return bonds, starts, target, (i[keep], j[keep], lim[keep]), kind


def _loop_atoms_from_bb(bb: np.ndarray) -> np.ndarray:
    """(T, L+2, 3, 3) N/CA/C -> (T, 5(L+2)-1, 3) in loop order (anchor O omitted)."""
    next_n = np.concatenate([bb[:, 1:, 0], bb[:, -1:, 0]], axis=1)    # anchor O is dropped anyway
    five = np.stack([bb[..., 0, :], bb[..., 1, :], _cb(bb), bb[..., 2, :], _carbonyl_o(bb, next_n)], axis=2)
    return five.reshape(bb.shape[0], -1, 3)[:, :-1]


def _close_loops(chain: np.ndarray, target: np.ndarray, env: np.ndarray, env_kind: np.ndarray,
                 n_iter: int = 60, damping: float = 0.05, max_step: float = 0.3,
                 prior_weight: float = 1.0, margin: float = 0.2, enough: int = 4) -> np.ndarray:
    """Close loops by damped Gauss-Newton (Levenberg-Marquardt) on their torsion angles.

    ``chain`` (T, n, 3): T trial chains in the layout of :func:`_loop_layout`; ``target``
    (3, 3): where the anchor's N, CA, C must go; ``env`` (m, 3): fixed atoms around the loop
    (``env_kind``: 0 C, 1 N, 2 O).  The variables are ψ of the residue before the loop, every
    φ/ψ of the loop and φ of the anchor.  Residuals: the anchor's distance to the target (Å); a
    repulsion ``limit + margin - d`` for every atom pair closer than its contact limit plus
    ``margin`` (within the loop and against ``env``); a prior ``w · Δθ`` keeping torsions near
    their start (sampled from allowed Ramachandran regions; ``w`` falls to 0 over the first 3/4
    of the iterations).  Stops early once ``enough`` trials are closed and free of contacts.
    The Jacobian of an atom with respect to a torsion is ``axis × (atom - axis point)``;
    rotations about bonds keep every bond length and angle exact.  All trials are solved at
    once.  Returns the final closure RMSD (Å) per trial; ``chain`` is updated in place.
    """
    T, n, _ = chain.shape
    L = (n + 1) // 5 - 2
    bonds, starts, tgt, (pi, pj, plim), kind = _loop_layout(L)
    nb = len(bonds)
    b0 = np.array([b[0] for b in bonds])
    b1 = np.array([b[1] for b in bonds])
    moving = np.arange(4, 5 * (L + 1))          # O of the residue before, and the loop residues
    elim = _CONTACT_MIN[kind[moving][:, None], env_kind[None, :]]
    elim_ok2, plim_ok2 = elim ** 2, plim ** 2          # the limits checked afterwards
    elim = elim + margin                                # ... aimed at with a little room
    plim = plim + margin
    elim2 = elim ** 2
    plim2 = plim ** 2
    env_sq = np.einsum("ik,ik->i", env, env)
    moved = np.zeros((T, nb))
    eye = np.eye(nb)
    n_prior = int(0.75 * n_iter)
    for it in range(n_iter):
        w = prior_weight * max(0.0, 1.0 - it / max(n_prior, 1))
        p = chain[:, b0]                                             # (T, nb, 3)
        ax = _unit(chain[:, b1] - p)
        end = chain[:, tgt]
        rc = (end - target).reshape(T, 9)
        Jc = _cross(ax[:, None, :, :], end[:, :, None, :] - p[:, None, :, :])   # (T, 3, nb, 3)
        Jc = np.moveaxis(Jc, 3, 2).reshape(T, 9, nb)
        lhs = np.swapaxes(Jc, 1, 2) @ Jc
        rhs = (np.swapaxes(Jc, 1, 2) @ rc[..., None])[..., 0]
        # repulsion inside the loop
        diff = chain[:, pj] - chain[:, pi]
        d2 = np.einsum("tpk,tpk->tp", diff, diff)
        t_i, q = np.nonzero(d2 < plim2)
        # repulsion against the environment (squared distances by one matrix product)
        if len(env):
            xm = chain[:, moving].reshape(-1, 3)
            dd2 = (np.einsum("ik,ik->i", xm, xm)[:, None] + env_sq[None, :] - 2.0 * (xm @ env.T))
            t_e, a_e, e_e = np.nonzero(dd2.reshape(T, len(moving), -1) < elim2[None])
        else:
            t_e = a_e = e_e = np.zeros(0, dtype=int)
        if it >= n_prior:   # enough trials closed and free of contacts: stop early
            clean = np.all(np.abs(rc) < 1e-5, axis=1) & ~np.any(d2 < plim_ok2, axis=1)
            if len(env):
                clean &= ~np.any(dd2.reshape(T, len(moving), -1) < elim_ok2[None], axis=(1, 2))
            if clean.sum() >= min(enough, T):
                break
        if len(t_i) or len(t_e):
            xa = np.concatenate([chain[t_i, pi[q]], chain[t_e, moving[a_e]]])
            xb = np.concatenate([chain[t_i, pj[q]], env[e_e]])
            ia = np.concatenate([pi[q], moving[a_e]])
            ib = np.concatenate([pj[q], np.full(len(t_e), -1)])
            tt = np.concatenate([t_i, t_e])
            lim = np.concatenate([plim[q], elim[a_e, e_e]])
            u = xb - xa
            dist = np.linalg.norm(u, axis=-1)
            u /= np.maximum(dist, 1e-9)[:, None]
            ma = (ia[:, None] >= starts[None, :])
            mb = (ib[:, None] >= starts[None, :]) & (ib[:, None] >= 0)
            axk, pk = ax[tt], p[tt]                                  # (A, nb, 3)
            vb = _cross(axk, xb[:, None, :] - pk) * mb[..., None]
            va = _cross(axk, xa[:, None, :] - pk) * ma[..., None]
            rows = -np.sum(u[:, None, :] * (vb - va), axis=-1)       # d(limit - d)/dθ
            r = lim - dist
            np.add.at(lhs, tt, rows[:, :, None] * rows[:, None, :])
            np.add.at(rhs, tt, rows * r[:, None])
        lhs = lhs + (damping + w * w) * eye
        rhs = rhs + w * w * moved
        step = -np.linalg.solve(lhs, rhs[..., None])[..., 0]
        step *= np.minimum(1.0, max_step / np.maximum(np.abs(step).max(axis=1), 1e-12))[:, None]
        for k in range(nb - 1, -1, -1):   # last bond first: earlier axes stay put
            _rotate_about(chain, bonds[k][0], bonds[k][1], bonds[k][2], step[:, k])
        moved += step
    return np.sqrt(((chain[:, tgt] - target) ** 2).sum(axis=-1).mean(axis=-1))


def _rotate_about(chain: np.ndarray, i0: int, i1: int, start: int, theta: np.ndarray) -> None:
    """Rotate atoms ``start:`` of every trial about the bond i0->i1 by ``theta`` (radians, (T,))."""
    p = chain[:, i0]
    a = _unit(chain[:, i1] - p)[:, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    v = chain[:, start:] - p[:, None]
    av = np.sum(v * a, axis=-1, keepdims=True)
    chain[:, start:] = p[:, None] + v * c + _cross(a, v) * s + a * av * (1.0 - c)




def _clash_free(points: np.ndarray, tree: Optional[cKDTree], tree_kind: Optional[np.ndarray]) -> np.ndarray:
    """True per trial when no atom of ``points`` (T, R, 5, 3: N/CA/C/O/CB) clashes with the tree.

    A clash is a distance below :data:`_CONTACT_MIN` for the two atoms' kinds (``tree_kind``:
    0 C, 1 N, 2 O for the tree's atoms).
    """
    T = points.shape[0]
    if tree is None or tree.n == 0:
        return np.ones(T, dtype=bool)
    d, idx = tree.query(points.reshape(-1, 3), k=8, distance_upper_bound=_CLASH_A)
    found = np.isfinite(d)
    kind_self = np.broadcast_to(_SLOT_KIND, points.shape[:-1]).reshape(-1)
    kind_other = tree_kind[np.minimum(idx, tree.n - 1)]
    limit = _CONTACT_MIN[kind_self[:, None], kind_other]
    clash = found & (d < limit)
    return ~clash.reshape(T, -1).any(axis=1)


def _internal_clash_free(atoms: np.ndarray) -> np.ndarray:
    """(T, R, 5, 3) trial residues -> True when the chain does not clash with itself: (T,).

    Residues at least 2 apart must keep 2.9 Å (2.55 Å between N/O atoms); consecutive
    residues must respect :data:`_ADJACENT_MIN`.
    """
    T, R = atoms.shape[:2]
    flat = atoms.reshape(T, R * 5, 3)
    d = np.linalg.norm(flat[:, :, None] - flat[:, None], axis=-1)
    res = np.repeat(np.arange(R), 5)
    slot = np.tile(np.arange(5), R)
    kind = _SLOT_KIND[slot]
    far = np.abs(res[:, None] - res[None, :]) >= 2
    limit = _CONTACT_MIN[kind[:, None], kind[None, :]]
    adjacent = res[None, :] == res[:, None] + 1
    adj_limit = np.where(adjacent, _ADJACENT_MIN[slot[:, None], slot[None, :]], 0.0)
    bad = ((d < limit) & far) | (d < adj_limit)
    return ~bad.any(axis=(1, 2))


def _build_loop(prev_bb: np.ndarray, psi_prev: float, next_bb: np.ndarray, next_after_n: np.ndarray,
                length: int, others: Optional[cKDTree], others_kind: Optional[np.ndarray],
                rng: np.random.Generator, n_trials: int = 32) -> Optional[np.ndarray]:
    """Return (length, 3, 3) N/CA/C of a closed, clash-free loop or None.

    ``prev_bb``: N/CA/C of the residue before the loop; ``next_bb``: N/CA/C of the residue after
    it (``next_after_n``: the N following that residue, for its carbonyl O).  ``others``: tree of
    every atom placed so far except those two residues (``others_kind``: 0 C, 1 N, 2 O).
    """
    phi, psi = _sample_rama(rng, (n_trials, length + 1))
    prev = np.broadcast_to(prev_bb, (n_trials, 1, 3, 3))
    bb = np.concatenate([prev, _extend(prev[:, 0], psi_prev, phi, psi)], axis=1)   # (T, L+2, 3, 3)
    chain = _loop_atoms_from_bb(bb)
    # fixed atoms the loop could reach, plus the O and CB of the residue after the loop
    next_o = _carbonyl_o(next_bb, next_after_n)
    reach = 0.5 * np.linalg.norm(prev_bb[2] - next_bb[0]) + 1.9 * (length + 1) + 3.0
    centre = 0.5 * (prev_bb[2] + next_bb[0])
    near = np.array(others.query_ball_point(centre, reach), dtype=int) if others is not None else np.zeros(0, int)
    env = np.concatenate([others.data[near] if len(near) else np.zeros((0, 3)), next_o[None]])
    env_kind = np.r_[others_kind[near] if len(near) else np.zeros(0, int), 2]
    rmsd = _close_loops(chain, next_bb, env, env_kind)
    res_atoms = np.concatenate([chain, np.zeros((n_trials, 1, 3))], axis=1).reshape(n_trials, length + 2, 5, 3)
    chain = res_atoms[:, 1:, [0, 1, 3]]                # N, CA, C of loop residues + anchor
    loop = chain[:, :length]
    # atoms of the flanking residues + loop, with O and CB, to test clashes
    full = np.concatenate([np.broadcast_to(prev_bb, (n_trials, 1, 3, 3)), loop,
                           np.broadcast_to(next_bb, (n_trials, 1, 3, 3))], axis=1)
    next_n = np.concatenate([full[:, 1:, 0], np.broadcast_to(next_after_n, (n_trials, 1, 3))], axis=1)
    with_o = np.concatenate([full, _carbonyl_o(full, next_n)[:, :, None], _cb(full)[:, :, None]], axis=2)
    free = _clash_free(with_o[:, 1:-1], others, others_kind) & _internal_clash_free(with_o)
    # the closing peptide bond C(loop end)-N(next) must be exact, and its angles close to ideal
    c_last = loop[:, -1, 2]
    gap = np.linalg.norm(chain[:, -1, 0] - next_bb[0], axis=-1)
    bond = np.linalg.norm(c_last - next_bb[0], axis=-1)
    loop_res = np.concatenate([np.broadcast_to(prev_bb, (n_trials, 1, 3, 3)), loop,
                               np.broadcast_to(next_bb, (n_trials, 1, 3, 3))], axis=1)
    phis = dihedral(loop_res[:, :-2, 2], loop_res[:, 1:-1, 0], loop_res[:, 1:-1, 1], loop_res[:, 1:-1, 2])
    psis = dihedral(loop_res[:, 1:-1, 0], loop_res[:, 1:-1, 1], loop_res[:, 1:-1, 2], loop_res[:, 2:, 0])
    ok = (rmsd < 0.005) & (gap < 0.01) & (np.abs(bond - BOND_C_N) < 0.01) & free
    if not np.any(ok):
        return None
    score = np.where(ok, _rama_penalty(phis, psis), np.inf)
    return loop[int(np.argmin(score))].copy()


def _build_tail(anchor_bb: np.ndarray, neighbour: np.ndarray, anchor_torsion: float,
                length: int, forward: bool, others: cKDTree, others_kind: np.ndarray,
                rng: np.random.Generator, n_trials: int = 256) -> np.ndarray:
    """A free terminal tail of ``length`` residues (N-terminal when ``forward`` is False).

    Built by NeRF from the terminal residue of the rest (``anchor_bb``; ``neighbour``: for an
    N-terminal tail the N after the anchor, for its carbonyl O, for a C-terminal tail the N/CA/C
    of the residue before the anchor) with random allowed torsions; the
    anchor's own free torsion (ψ for a C-terminal tail, φ for an N-terminal one) is sampled
    around ``anchor_torsion``.  Among clash-free trials the one reaching furthest from the
    protein's centre is kept (exposed termini).
    """
    before_anchor = neighbour
    for _attempt in range(4):
        phi, psi = _sample_rama(rng, (n_trials, length))
        tor = anchor_torsion + rng.normal(0.0, 25.0, n_trials)
        anchor = np.broadcast_to(anchor_bb, (n_trials, 1, 3, 3))
        if forward:   # the residue before the anchor joins the self-clash check (its O is fixed)
            tail = _extend(anchor[:, 0], tor, phi, psi)
            block = np.concatenate([np.broadcast_to(before_anchor, (n_trials, 1, 3, 3)), anchor, tail], axis=1)
            last_n = nerf(tail[:, -1, 0], tail[:, -1, 1], tail[:, -1, 2], BOND_C_N, ANG_CA_C_N, _C_TERMINAL_PSI)
            next_n = np.concatenate([block[:, 1:, 0], last_n[:, None]], axis=1)
        else:
            tail = _extend_backwards(anchor[:, 0], tor, phi, psi)
            block = np.concatenate([tail, anchor], axis=1)
            next_n = np.concatenate([block[:, 1:, 0], np.broadcast_to(neighbour, (n_trials, 1, 3))], axis=1)
        atoms = np.concatenate([block, _carbonyl_o(block, next_n)[:, :, None], _cb(block)[:, :, None]], axis=2)
        tail_atoms = atoms[:, 2:] if forward else atoms[:, :-1]
        free = _clash_free(tail_atoms, others, others_kind) & _internal_clash_free(atoms)
        if free.any():
            break
    reach = np.linalg.norm(tail_atoms[:, :, 1].mean(axis=1) - others.data.mean(axis=0), axis=-1)
    best = int(np.argmax(np.where(free, reach, -np.inf) if free.any() else reach))
    return tail[best].copy()


# --- side chains -------------------------------------------------------------------------------
# Each entry: atom name, (three parent atoms a, b, c), bond c-d (Å), angle b-c-d (deg),
# dihedral a-b-c-d as (chi index or None, offset deg).  Values: Engh & Huber-like ideal geometry.
_SIDE_CHAINS: Dict[str, List[Tuple[str, Tuple[str, str, str], float, float, Tuple[Optional[int], float]]]] = {
    "SER": [("OG", ("N", "CA", "CB"), 1.42, 111.0, (0, 0.0))],
    "CYS": [("SG", ("N", "CA", "CB"), 1.81, 114.0, (0, 0.0))],
    "VAL": [("CG1", ("N", "CA", "CB"), 1.52, 110.5, (0, 0.0)),
            ("CG2", ("N", "CA", "CB"), 1.52, 110.5, (0, 120.0))],
    "THR": [("OG1", ("N", "CA", "CB"), 1.43, 109.5, (0, 0.0)),
            ("CG2", ("N", "CA", "CB"), 1.52, 111.5, (0, -120.0))],
    "ILE": [("CG1", ("N", "CA", "CB"), 1.53, 110.4, (0, 0.0)),
            ("CG2", ("N", "CA", "CB"), 1.53, 110.5, (0, -120.0)),
            ("CD1", ("CA", "CB", "CG1"), 1.52, 113.8, (1, 0.0))],
    "LEU": [("CG", ("N", "CA", "CB"), 1.53, 116.3, (0, 0.0)),
            ("CD1", ("CA", "CB", "CG"), 1.52, 110.5, (1, 0.0)),
            ("CD2", ("CA", "CB", "CG"), 1.52, 110.5, (1, 120.0))],
    "ASP": [("CG", ("N", "CA", "CB"), 1.52, 113.0, (0, 0.0)),
            ("OD1", ("CA", "CB", "CG"), 1.25, 119.2, (1, 0.0)),
            ("OD2", ("CA", "CB", "CG"), 1.25, 118.2, (1, 180.0))],
    "ASN": [("CG", ("N", "CA", "CB"), 1.52, 113.0, (0, 0.0)),
            ("OD1", ("CA", "CB", "CG"), 1.23, 120.8, (1, 0.0)),
            ("ND2", ("CA", "CB", "CG"), 1.33, 116.4, (1, 180.0))],
    "GLU": [("CG", ("N", "CA", "CB"), 1.52, 114.0, (0, 0.0)),
            ("CD", ("CA", "CB", "CG"), 1.52, 113.0, (1, 0.0)),
            ("OE1", ("CB", "CG", "CD"), 1.25, 119.0, (2, 0.0)),
            ("OE2", ("CB", "CG", "CD"), 1.25, 118.0, (2, 180.0))],
    "GLN": [("CG", ("N", "CA", "CB"), 1.52, 114.0, (0, 0.0)),
            ("CD", ("CA", "CB", "CG"), 1.52, 113.0, (1, 0.0)),
            ("OE1", ("CB", "CG", "CD"), 1.23, 120.8, (2, 0.0)),
            ("NE2", ("CB", "CG", "CD"), 1.33, 116.4, (2, 180.0))],
    "LYS": [("CG", ("N", "CA", "CB"), 1.52, 114.0, (0, 0.0)),
            ("CD", ("CA", "CB", "CG"), 1.52, 111.5, (1, 0.0)),
            ("CE", ("CB", "CG", "CD"), 1.52, 111.5, (2, 0.0)),
            ("NZ", ("CG", "CD", "CE"), 1.49, 111.7, (3, 0.0))],
    "MET": [("CG", ("N", "CA", "CB"), 1.52, 114.0, (0, 0.0)),
            ("SD", ("CA", "CB", "CG"), 1.81, 112.7, (1, 0.0)),
            ("CE", ("CB", "CG", "SD"), 1.79, 100.5, (2, 0.0))],
    "ARG": [("CG", ("N", "CA", "CB"), 1.52, 114.0, (0, 0.0)),
            ("CD", ("CA", "CB", "CG"), 1.52, 111.5, (1, 0.0)),
            ("NE", ("CB", "CG", "CD"), 1.46, 112.0, (2, 0.0)),
            ("CZ", ("CG", "CD", "NE"), 1.33, 124.5, (3, 0.0)),
            ("NH1", ("CD", "NE", "CZ"), 1.33, 120.5, (None, 0.0)),
            ("NH2", ("CD", "NE", "CZ"), 1.33, 119.5, (None, 180.0))],
    "PHE": [("CG", ("N", "CA", "CB"), 1.50, 113.8, (0, 0.0)),
            ("CD1", ("CA", "CB", "CG"), 1.39, 120.7, (1, 0.0)),
            ("CD2", ("CA", "CB", "CG"), 1.39, 120.7, (1, 180.0)),
            ("CE1", ("CB", "CG", "CD1"), 1.39, 120.0, (None, 180.0)),
            ("CE2", ("CB", "CG", "CD2"), 1.39, 120.0, (None, 180.0)),
            ("CZ", ("CG", "CD1", "CE1"), 1.39, 120.0, (None, 0.0))],
    "TYR": [("CG", ("N", "CA", "CB"), 1.51, 113.8, (0, 0.0)),
            ("CD1", ("CA", "CB", "CG"), 1.39, 120.8, (1, 0.0)),
            ("CD2", ("CA", "CB", "CG"), 1.39, 120.8, (1, 180.0)),
            ("CE1", ("CB", "CG", "CD1"), 1.39, 121.2, (None, 180.0)),
            ("CE2", ("CB", "CG", "CD2"), 1.39, 121.2, (None, 180.0)),
            ("CZ", ("CG", "CD1", "CE1"), 1.38, 119.6, (None, 0.0)),
            ("OH", ("CD1", "CE1", "CZ"), 1.38, 119.8, (None, 180.0))],
}

#: Rotamers (χ angles, degrees) in order of preference.
_ROTAMERS: Dict[str, List[Tuple[float, ...]]] = {
    "SER": [(-65.0,), (62.0,), (180.0,)],
    "CYS": [(-65.0,), (180.0,), (62.0,)],
    "VAL": [(175.0,), (-60.0,), (63.0,)],
    "THR": [(62.0,), (-60.0,), (180.0,)],
    "ILE": [(-65.0, 170.0), (-57.0, -60.0), (62.0, 170.0), (-177.0, 66.0)],
    "LEU": [(-65.0, 175.0), (-177.0, 65.0), (-85.0, 65.0), (-172.0, 145.0)],
    "ASP": [(-70.0, -15.0), (-170.0, 0.0), (62.0, 10.0)],
    "ASN": [(-65.0, -40.0), (-174.0, 30.0), (62.0, 0.0)],
    "GLU": [(-65.0, 180.0, -40.0), (-177.0, 180.0, 0.0), (-65.0, -65.0, -40.0), (62.0, 180.0, 0.0)],
    "GLN": [(-65.0, 180.0, -25.0), (-177.0, 180.0, 0.0), (-65.0, -65.0, -40.0), (62.0, 180.0, 20.0)],
    "LYS": [(-65.0, 180.0, 180.0, 180.0), (-177.0, 180.0, 180.0, 180.0), (-65.0, -65.0, 180.0, 180.0),
            (62.0, 180.0, 180.0, 180.0)],
    "MET": [(-65.0, 180.0, 70.0), (-177.0, 180.0, 75.0), (-65.0, -65.0, -70.0), (62.0, 180.0, 75.0)],
    "ARG": [(-65.0, 180.0, 180.0, 180.0), (-177.0, 180.0, 180.0, 180.0), (-65.0, -65.0, 180.0, 85.0),
            (62.0, 180.0, 180.0, 180.0)],
    "PHE": [(-65.0, 95.0), (-177.0, 80.0), (62.0, 90.0)],
    "TYR": [(-65.0, 95.0), (-177.0, 80.0), (62.0, 90.0)],
}

_ELEMENT_OF = {"C": "C", "N": "N", "O": "O", "S": "S"}

#: Residue choices (name, relative weight) by environment.
_CHOICES = {
    ("H", True): [("LEU", 5), ("ALA", 3), ("ILE", 2), ("MET", 1), ("PHE", 1), ("VAL", 1)],
    ("H", False): [("GLU", 4), ("LYS", 4), ("ALA", 3), ("GLN", 2), ("ARG", 2), ("SER", 1), ("ASP", 1)],
    ("E", True): [("VAL", 4), ("ILE", 3), ("LEU", 2), ("PHE", 2), ("TYR", 1), ("ALA", 1)],
    ("E", False): [("THR", 4), ("LYS", 2), ("GLU", 2), ("SER", 2), ("ARG", 1), ("GLN", 1), ("TYR", 1)],
    ("L", True): [("GLY", 3), ("ALA", 2), ("SER", 2), ("ASN", 1), ("THR", 1)],
    ("L", False): [("GLY", 3), ("ASN", 2), ("ASP", 2), ("SER", 2), ("LYS", 2), ("GLU", 1), ("THR", 1)],
}


def _choose_sequence(ss: np.ndarray, buried: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    names = np.empty(len(ss), dtype=object)
    for (kind, bur), options in _CHOICES.items():
        sel = np.flatnonzero((np.where(ss == "T", "L", ss) == kind) & (buried == bur))
        p = np.array([w for _, w in options], dtype=float)
        names[sel] = rng.choice([n for n, _ in options], size=len(sel), p=p / p.sum())
    return names


def _side_chain_atoms(resname: str, bb: np.ndarray, chis: np.ndarray) -> Tuple[List[str], np.ndarray]:
    """Build the side-chain atoms beyond CB for residues of one type.

    ``bb`` (R, 5, 3) N, CA, C, O, CB; ``chis`` (R, n_chi) degrees.  Returns names and (R, k, 3).
    """
    pos = {"N": bb[:, 0], "CA": bb[:, 1], "C": bb[:, 2], "CB": bb[:, 4]}
    names: List[str] = []
    out = []
    for name, (a, b, c), bond, angle, (chi, offset) in _SIDE_CHAINS[resname]:
        torsion = offset + (chis[:, chi] if chi is not None else 0.0)
        pos[name] = nerf(pos[a], pos[b], pos[c], bond, angle, torsion)
        names.append(name)
        out.append(pos[name])
    return names, np.stack(out, axis=1)


def _build_all_side_chains(bb: np.ndarray, resnames: np.ndarray, rot: np.ndarray
                           ) -> Dict[int, Tuple[List[str], np.ndarray]]:
    result: Dict[int, Tuple[List[str], np.ndarray]] = {}
    for rname in np.unique(resnames):
        if rname not in _SIDE_CHAINS:
            continue
        idx = np.flatnonzero(resnames == rname)
        lib = np.array(_ROTAMERS[rname])
        names, xyz = _side_chain_atoms(rname, bb[idx], lib[rot[idx]])
        for j, i in enumerate(idx):  # per residue: bookkeeping only
            result[int(i)] = (names, xyz[j])
    return result


def _side_chain_clashes(fixed_xyz: np.ndarray, fixed_res: np.ndarray,
                        sc: Dict[int, Tuple[List[str], np.ndarray]]) -> np.ndarray:
    """Residues whose side chain clashes with another residue (the higher index of two side chains)."""
    if not sc:
        return np.zeros(0, dtype=int)
    sc_res = np.concatenate([np.full(len(v[0]), k) for k, v in sc.items()])
    sc_xyz = np.concatenate([v[1] for v in sc.values()], axis=0)
    all_xyz = np.concatenate([fixed_xyz, sc_xyz])
    all_res = np.concatenate([fixed_res, sc_res])
    is_sc = np.r_[np.zeros(len(fixed_xyz), bool), np.ones(len(sc_xyz), bool)]
    pairs = cKDTree(all_xyz).query_pairs(_SIDECHAIN_CLASH_A, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros(0, dtype=int)
    i, j = pairs[:, 0], pairs[:, 1]
    keep = (all_res[i] != all_res[j]) & (is_sc[i] | is_sc[j])
    i, j = i[keep], j[keep]
    both = is_sc[i] & is_sc[j]
    bump = np.where(both, np.maximum(all_res[i], all_res[j]), np.where(is_sc[i], all_res[i], all_res[j]))
    return np.unique(bump)


def _place_side_chains(bb: np.ndarray, resnames: np.ndarray
                       ) -> Tuple[np.ndarray, Dict[int, Tuple[List[str], np.ndarray]]]:
    """Choose rotamers that avoid clashes (iteratively, vectorised per residue type).

    Every residue starts in its preferred rotamer; each round, residues whose side chain
    comes closer than 2.9 Å to another residue move to their next rotamer, and a residue that
    has tried them all is truncated to Ala.  Returns the final residue names and a dict
    residue index -> (atom names, coordinates (k, 3)) of the side-chain atoms beyond CB.
    """
    resnames = resnames.copy()
    n_res = len(resnames)
    rot = np.zeros(n_res, dtype=int)
    has_cb = resnames != "GLY"
    fixed_xyz = np.concatenate([bb[:, :4].reshape(-1, 3), bb[has_cb, 4]], axis=0)
    fixed_res = np.concatenate([np.repeat(np.arange(n_res), 4), np.flatnonzero(has_cb)])
    n_rot = np.array([len(_ROTAMERS.get(r, [()])) for r in resnames])
    while True:
        sc = _build_all_side_chains(bb, resnames, rot)
        bump = _side_chain_clashes(fixed_xyz, fixed_res, sc)
        if len(bump) == 0:
            return resnames, sc
        rot[bump] += 1
        exhausted = bump[rot[bump] >= n_rot[bump]]
        resnames[exhausted] = "ALA"
        rot[exhausted] = 0


# --- B-factors --------------------------------------------------------------------------------
_DEPTH = {"B": 1, "G": 2, "D": 3, "E": 4, "Z": 5, "H": 6}


def _b_factors(xyz: np.ndarray, names: np.ndarray, res_index: np.ndarray, ss: np.ndarray,
               n_res: int, rng: np.random.Generator) -> np.ndarray:
    """Per-atom B (Å²): core ~15, surface and termini higher, loops +10, +4 per side-chain bond.

    B = 15 + 40 (r / r_max)² + 35 exp(-d_term / 4) + 10 [loop] + 4 max(depth - 1, 0) + N(0, 2),
    where r is the atom's distance from the centre of mass, d_term the residue's sequence
    distance to the nearer terminus, and depth the side-chain position (CB 1, CG 2, CD 3, ...).
    """
    r = np.linalg.norm(xyz - xyz.mean(axis=0), axis=1)
    d_term = np.minimum(res_index, n_res - 1 - res_index)
    second = np.asarray(names, dtype="U2").view("U1").reshape(-1, 2)[:, 1]
    depth = np.zeros(len(names))
    for letter, value in _DEPTH.items():
        depth[second == letter] = value
    depth[np.asarray(names) == "CA"] = 0
    b = (15.0 + 40.0 * (r / r.max()) ** 2 + 35.0 * np.exp(-d_term / 4.0)
         + 10.0 * np.isin(ss[res_index], ["L", "T"]) + 4.0 * np.maximum(depth - 1, 0)
         + rng.normal(0.0, 2.0, size=len(r)))
    return np.clip(b, 8.0, 150.0)


# --- the model ---------------------------------------------------------------------------------
def _layout(n_residues: int) -> Tuple[int, int, int, List[int], List[int]]:
    """Strands, strand length, helix lengths, first-try loop lengths and the N-tail length.

    * below 28 residues: one helix and two tails;
    * 28-49 residues: a helical hairpin (two antiparallel helices);
    * 50 and more: the α/β sandwich -- two or three strands (never more, so that no two hairpin
      turns sit side by side at the same end of the sheet) and one helix per ~25 residues left
      (10-30 residues each, at most six).
    """
    tail = 2
    if n_residues < 28:
        return 0, 0, [n_residues - 2 * tail], [], tail
    if n_residues < 50:
        rest = n_residues - 5 - 2 * tail
        return 0, 0, [rest // 2, rest - rest // 2], [5], tail
    n_strands = 2 if n_residues < 70 else 3
    strand_len = 6 if n_residues < 70 else 7
    loops = 4 * (n_strands - 1) + 6
    n_helices = int(np.clip(round((n_residues - n_strands * strand_len - loops - 2 * tail) / 25), 1, 6))
    loop_lengths = [4] * (n_strands - 1) + [6] + [5] * (n_helices - 1)
    rest = n_residues - n_strands * strand_len - sum(loop_lengths) - 2 * tail
    helix_len = int(np.clip(rest // n_helices, 10, 30))
    return n_strands, strand_len, [helix_len] * n_helices, loop_lengths, tail


def build_protein_model(n_residues: int = 120, seed: int = 0, side_chains: bool = True,
                        chain_id: str = "A", first_residue: int = 1) -> gemmi.Structure:
    """Build a compact procedural α/β protein of about ``n_residues`` residues (see module doc).

    Parameters
    ----------
    n_residues : int
        Chain length, 20-200 (exactly; the termini absorb what the elements and loops leave).
        Below 28 residues the model is one helix, below 50 a helical hairpin, from 50 on the
        α/β sandwich.
    seed : int
        Seed for ``np.random.default_rng``: loop conformations, helix spins, sequence,
        rotamers and B-factor jitter.  The same seed gives identical coordinates.
    side_chains : bool
        Build heavy side-chain atoms beyond CB (otherwise every non-Gly residue is N, CA, C, O, CB).
    chain_id, first_residue : str, int
        Chain name and number of the first residue.

    Returns
    -------
    gemmi.Structure
        One model, one chain, coordinates in Å, B-factors in Å², occupancies 1, elements and
        residue names set, entities set up (round-trips through PDB and mmCIF).
    """
    if not 20 <= int(n_residues) <= 200:
        raise InputError(None, f"n_residues must be between 20 and 200, got {n_residues}")
    # A few (seed, size) pairs leave a loop that cannot close; such a seed then continues with
    # a derived random stream, still deterministic.
    for attempt in range(_MAX_ATTEMPTS):
        rng = np.random.default_rng(seed if attempt == 0 else [int(seed), attempt])
        try:
            return _build_protein_model_once(int(n_residues), rng, side_chains, chain_id, first_residue)
        except _LoopNotClosed:
            continue
    raise RuntimeError(f"could not close the loops of a {n_residues}-residue procedural model (seed {seed})")


class _LoopNotClosed(Exception):
    """A loop between two secondary-structure elements found no clash-free closure."""


_MAX_ATTEMPTS = 4


def _build_protein_model_once(n_residues: int, rng: np.random.Generator, side_chains: bool, chain_id: str,
                              first_residue: int) -> gemmi.Structure:
    """One attempt of :func:`build_protein_model` with the given random stream."""
    n_strands, strand_len, helix_lens, loop_lengths, tail_len = _layout(n_residues)

    # --- elements as rigid bodies ---
    sheet = _place_sheet(n_strands, strand_len) if n_strands else []
    if sheet:
        sheet_x = np.mean([e.bb[:-1, 1, 0].mean() for e in sheet])
        helix_up = (n_strands - 1) % 2 == 1     # the first helix starts where the last strand ends
        layer_y = 10.0
    else:
        sheet_x, helix_up, layer_y = 0.0, True, 0.0
    n_helices = len(helix_lens)
    # helices stacked from the side of the last strand to the other side
    xs = (sheet_x + 10.0 * (np.arange(n_helices) - (n_helices - 1) / 2.0))[::-1]
    helices = []
    for h in range(n_helices):
        up = helix_up if h % 2 == 0 else not helix_up
        helices.append(_place_helix(helix_lens[h], xs[h], layer_y, up, rng.uniform(0, 2 * np.pi)))
    elements: List[_Element] = sheet + helices

    # --- loops, element by element ---
    segments: List[Tuple[str, np.ndarray]] = []         # (ss code per residue, N/CA/C (L, 3, 3))
    placed = [el.atoms().reshape(-1, 3) for el in elements]
    for i, el in enumerate(elements):
        segments.append((el.kind, el.bb[:-1]))
        if i == len(elements) - 1:
            break
        nxt = elements[i + 1]
        others = [p for j, p in enumerate(placed) if j not in (i, i + 1)] \
            + [placed[i][:-5], placed[i + 1][5:]] + _loop_atoms(segments)
        others_xyz = np.concatenate(others, axis=0)
        others_kind = np.concatenate([np.tile(_SLOT_KIND, len(o) // 5) for o in others])
        tree = cKDTree(others_xyz)
        loop = None
        for extra in range(6):
            loop = _build_loop(el.bb[-2], el.phi_psi[1], nxt.bb[0], nxt.bb[1, 0],
                               loop_lengths[i] + extra, tree, others_kind, rng)
            if loop is not None:
                break
        if loop is None:
            raise _LoopNotClosed()
        segments.append(("L", loop))

    # --- free tails: they take up the residues left, so the chain has exactly n_residues ---
    bb = np.concatenate([s[1] for s in segments], axis=0)
    ss = np.concatenate([np.full(len(s[1]), s[0]) for s in segments])
    budget = n_residues - len(bb)
    n_tail_n = int(np.clip(budget - 1, 0, tail_len))
    n_tail_c = budget - n_tail_n
    if n_tail_c < 0:            # a lengthened loop: shorten the last element from its C-terminal end
        bb, ss, n_tail_c = bb[:n_tail_c], ss[:n_tail_c], 0
    atoms_so_far = _segment_atoms(bb, nerf(bb[-1, 0], bb[-1, 1], bb[-1, 2], BOND_C_N, ANG_CA_C_N,
                                           elements[-1].phi_psi[1]))
    n_tail = np.zeros((0, 3, 3))
    if n_tail_n:
        n_tail = _build_tail(bb[0], bb[1, 0], elements[0].phi_psi[0], n_tail_n, False,
                             cKDTree(atoms_so_far[1:].reshape(-1, 3)), np.tile(_SLOT_KIND, len(atoms_so_far) - 1),
                             rng)
    c_tail = np.zeros((0, 3, 3))
    if n_tail_c:
        rest = np.concatenate([atoms_so_far[:-1], _segment_atoms(n_tail, bb[0, 0])], axis=0)
        c_tail = _build_tail(bb[-1], bb[-2], elements[-1].phi_psi[1], n_tail_c, True,
                             cKDTree(rest.reshape(-1, 3)), np.tile(_SLOT_KIND, len(rest)), rng)
    bb = np.concatenate([n_tail, bb, c_tail], axis=0)
    ss = np.concatenate([np.full(len(n_tail), "T"), ss, np.full(len(c_tail), "T")])
    n_res = len(bb)

    # --- O and CB for the whole chain ---
    next_n = np.concatenate([bb[1:, 0], nerf(bb[-1, 0], bb[-1, 1], bb[-1, 2], BOND_C_N, ANG_CA_C_N,
                                             _C_TERMINAL_PSI)[None]], axis=0)
    bb5 = np.concatenate([bb, _carbonyl_o(bb, next_n)[:, None], _cb(bb)[:, None]], axis=1)
    # centre the model on its centre of mass (CA)
    bb5 = bb5 - bb5[:, 1].mean(axis=0)

    # --- sequence from burial, then side chains ---
    cb = bb5[:, 4]
    counts = (np.linalg.norm(cb[:, None] - cb[None], axis=-1) < 10.0).sum(axis=1) - 1
    buried = counts >= np.quantile(counts, 0.55)
    resnames = _choose_sequence(ss, buried, rng)
    if side_chains:
        resnames, sc = _place_side_chains(bb5, resnames)
    else:
        sc = {}

    # --- assemble flat atom arrays ---
    names: List[np.ndarray] = []
    xyz_parts: List[np.ndarray] = []
    res_idx: List[np.ndarray] = []
    bb_names = np.array(["N", "CA", "C", "O", "CB"])
    for i in range(n_res):  # per residue (list building only)
        k = 4 if resnames[i] == "GLY" else 5
        names.append(bb_names[:k])
        xyz_parts.append(bb5[i, :k])
        if i in sc:
            names.append(np.array(sc[i][0]))
            xyz_parts.append(sc[i][1])
        res_idx.append(np.full(sum(len(n) for n in names[-(2 if i in sc else 1):]), i))
    atom_names = np.concatenate(names)
    xyz = np.concatenate(xyz_parts, axis=0)
    res_index = np.concatenate(res_idx)
    b = _b_factors(xyz, atom_names, res_index, ss, n_res, rng)
    return _to_structure(xyz, atom_names, res_index, resnames, b, chain_id, first_residue)


@functools.lru_cache(maxsize=4)
def _cached_model(n_residues: int, seed: int) -> gemmi.Structure:
    return build_protein_model(n_residues=n_residues, seed=seed)


def protein_atoms(n_residues: int = 120, seed: int = 0) -> Atoms:
    """:class:`~deepqs.io.atoms.Atoms` of ``build_protein_model(n_residues, seed)``.

    The model is built once per process and cached (demos and tests reuse it); the returned
    arrays are fresh copies.
    """
    from deepqs.io.models import atoms_from_structure
    return atoms_from_structure(_cached_model(int(n_residues), int(seed)))


def _loop_atoms(segments: List[Tuple[str, np.ndarray]]) -> List[np.ndarray]:
    """N/CA/C/O/CB atoms (5 per residue) of the loops built so far."""
    out = []
    for k, (kind, bb) in enumerate(segments):
        if kind == "L":
            out.append(_segment_atoms(bb, segments[k + 1][1][0, 0]).reshape(-1, 3))
    return out


def _to_structure(xyz: np.ndarray, atom_names: np.ndarray, res_index: np.ndarray, resnames: np.ndarray,
                  b: np.ndarray, chain_id: str, first_residue: int) -> gemmi.Structure:
    st = gemmi.Structure()
    st.name = "deepqs_procedural"
    st.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    chain = gemmi.Chain(chain_id)
    starts = np.flatnonzero(np.r_[True, res_index[1:] != res_index[:-1]])
    ends = np.r_[starts[1:], len(res_index)]
    for r, (s, e) in enumerate(zip(starts, ends)):
        res = gemmi.Residue()
        res.name = str(resnames[res_index[s]])
        res.seqid = gemmi.SeqId(int(first_residue + r), " ")
        res.entity_type = gemmi.EntityType.Polymer
        res.het_flag = "A"
        for j in range(s, e):
            atom = gemmi.Atom()
            atom.name = str(atom_names[j])
            atom.element = gemmi.Element(_ELEMENT_OF.get(atom_names[j][0], "C"))
            atom.pos = gemmi.Position(*map(float, xyz[j]))
            atom.b_iso = float(round(b[j], 2))
            atom.occ = 1.0
            res.add_atom(atom)
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    _finish_structure(st)
    return st


def _finish_structure(st: gemmi.Structure) -> None:
    """Entities (one per distinct polymer sequence), full sequences and label_seq ids."""
    st.add_entity_types(True)
    st.assign_subchains(force=True)
    st.setup_entities()
    for ent in st.entities:
        if ent.entity_type == gemmi.EntityType.Polymer:
            ent.polymer_type = gemmi.PolymerType.PeptideL
            for ch in st[0]:
                polymer = ch.get_polymer()
                if len(polymer) and polymer.subchain_id() in ent.subchains:
                    ent.full_sequence = [r.name for r in polymer]
                    break
    st.deduplicate_entities()
    st.assign_label_seq_id()


def build_assembly(monomer: Optional[gemmi.Structure] = None, n_copies: int = 4, seed: int = 0,
                   min_gap_A: float = 3.5) -> gemmi.Structure:
    """A cyclic (C_n) homo-oligomer of ``monomer`` around the z axis, chains A, B, C, ...

    The monomer (default: ``build_protein_model(seed=seed)``) is turned so that its longest
    principal axis lies along z, then, for 12 spins about that axis (offset by a seeded random
    angle), moved out along x until no atom of one copy is closer than ``min_gap_A`` Å to
    another copy; the most compact arrangement (smallest largest distance from the z axis) is
    kept.  The assembly is centred at the origin.  Coordinates in Å.
    """
    from deepqs.io.models import atoms_from_structure

    if not 1 <= int(n_copies) <= 26:
        raise InputError(None, f"n_copies must be between 1 and 26, got {n_copies}")
    n_copies = int(n_copies)
    if monomer is None:
        monomer = build_protein_model(seed=seed)
    rng = np.random.default_rng(seed + 7919)
    xyz = atoms_from_structure(monomer).xyz
    centre = xyz.mean(axis=0)
    axes = np.linalg.svd(xyz - centre, full_matrices=False)[2]       # rows: long, middle, short
    orient = np.stack([axes[2], np.cross(axes[0], axes[2]), axes[0]])  # long axis -> z
    if np.linalg.det(orient) < 0:
        orient[0] = -orient[0]
    base = (xyz - centre) @ orient.T
    sym = [_rotation_matrix([0, 0, 1], 2 * np.pi * k / n_copies) for k in range(n_copies)]
    best = (np.inf, np.eye(3), 0.0)
    for spin in rng.uniform(0, 2 * np.pi) + np.arange(12) * (np.pi / 6):
        spun = base @ _rotation_matrix([0, 0, 1], spin).T
        radius = 0.0
        if n_copies > 1:
            def fits(rad: float) -> bool:
                copies = [(spun + [rad, 0.0, 0.0]) @ R.T for R in sym]
                tree = cKDTree(copies[0])
                return min(tree.query(c, k=1)[0].min() for c in copies[1:]) >= min_gap_A
            coarse = next(r for r in np.arange(0.0, 300.0, 2.0) if fits(r))       # then refine by 0.5 Å
            radius = next((r for r in np.arange(max(coarse - 1.5, 0.0), coarse, 0.5) if fits(r)), coarse)
        extent = np.linalg.norm((spun + [radius, 0.0, 0.0])[:, :2], axis=1).max()
        if extent < best[0]:
            best = (extent, _rotation_matrix([0, 0, 1], spin) @ orient, radius)
    _, rot, radius = best
    st = gemmi.Structure()
    st.name = "deepqs_procedural_assembly"
    st.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    for k, R in enumerate(sym):
        # x' = R (rot (x - centre) + (radius, 0, 0)), as one gemmi transform per copy
        mat = R @ rot
        vec = R @ (np.array([radius, 0.0, 0.0]) - rot @ centre)
        copy = monomer[0][0].clone()
        copy.name = chr(ord("A") + k)
        tmp = gemmi.Model("1")
        tmp.add_chain(copy)
        tmp.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(mat.tolist()), gemmi.Vec3(*vec.tolist())))
        model.add_chain(tmp[0])
    st.add_model(model)
    _finish_structure(st)
    return st
