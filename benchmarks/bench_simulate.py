"""Timing of the simulators: ``python benchmarks/bench_simulate.py``.

Prints wall-clock seconds for building the procedural protein and its C4 assembly, a simulated
map, and micrographs (the target: a 4096 × 4096 micrograph with 300 particles in a few seconds).
"""

from __future__ import annotations

import time

from deepqs.simulate import default_particle, protein_atoms, simulate_map, simulate_micrographs


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<55s} {time.perf_counter() - t0:7.2f} s")
    return out


def main() -> None:
    atoms = timed("procedural protein, 120 residues", protein_atoms)
    particle = timed("C4 assembly (default micrograph particle)", default_particle)
    print(f"  {len(atoms)} atoms per monomer, {len(particle)} per particle")
    timed("simulate_map 3.5 Å, 1.0 Å voxels", lambda: simulate_map(atoms, 1.0, 3.5))
    timed("simulate_micrographs 1024 × 1024, 50 particles",
          lambda: simulate_micrographs(n=1, shape=(1024, 1024), n_particles=50))
    mics = timed("simulate_micrographs 4096 × 4096, 300 particles",
                 lambda: simulate_micrographs(n=1, shape=(4096, 4096), n_particles=300, seed=1))
    print(f"  placed {len(mics[0].coordinates)} particles")
    timed("simulate_micrographs 4096 × 4096, 300 particles + all junk",
          lambda: simulate_micrographs(n=1, shape=(4096, 4096), n_particles=300, seed=1,
                                       junk=["ice_blobs", "carbon_edge", "aggregates"]))


if __name__ == "__main__":
    main()
