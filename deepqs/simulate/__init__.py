"""Simulation: the project's embedded demo and test data generator.

* :func:`build_protein_model` -- a procedural α/β protein (``gemmi.Structure``);
  :func:`build_assembly` -- a cyclic oligomer of it.
* :func:`model_map` -- a map from an atomic model (sum of Gaussians);
  :func:`simulate_map` -- a reconstruction with half maps at a measurable resolution.
* :func:`simulate_micrographs` -- micrographs with particles, ice, carbon and aggregates plus
  ground truth; :func:`particle_stack` -- boxes around coordinates.
"""

from deepqs.simulate.density import SimulatedMap, element_weights, model_map, simulate_map
from deepqs.simulate.micrographs import (
    SimulatedMicrograph,
    ctf,
    default_particle,
    electron_wavelength_A,
    euler_matrix,
    particle_stack,
    simulate_micrographs,
)
from deepqs.simulate.protein import build_assembly, build_protein_model, protein_atoms

__all__ = [
    "build_protein_model",
    "build_assembly",
    "protein_atoms",
    "model_map",
    "simulate_map",
    "SimulatedMap",
    "element_weights",
    "simulate_micrographs",
    "SimulatedMicrograph",
    "particle_stack",
    "default_particle",
    "euler_matrix",
    "ctf",
    "electron_wavelength_A",
]
