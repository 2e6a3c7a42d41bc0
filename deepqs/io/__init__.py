"""File input/output of the deepqs engine: maps, models, coordinates and weights.

Every reader raises :class:`~deepqs.errors.InputError` (file name + reason) for bad input, and
every writer goes through :func:`~deepqs.io.atomic.atomic_output` (no half-written outputs).
See ``CONVENTIONS.md`` for units, axis order, origin and coordinate conventions.
"""

from deepqs.errors import InputError
from deepqs.io.atomic import atomic_output
from deepqs.io.atoms import Atoms
from deepqs.io.coords import (
    Coordinates,
    flip_y_coordinates,
    fraction_on_density,
    micrograph_key,
    read_coordinates,
    read_coordinates_by_micrograph,
    write_coordinates,
    y_flip_report,
)
from deepqs.io.detect import detect_kind
from deepqs.io.mapdata import MapData, as_triple
from deepqs.io.maps import (
    map_header_info,
    read_map,
    read_micrograph,
    read_stack,
    write_map,
    write_micrograph,
    write_stack,
)
from deepqs.io.models import (
    atoms_from_structure,
    check_model_in_map,
    read_atom_site_column,
    read_atoms,
    read_model,
    write_model,
)


def __getattr__(name):
    """Import the torch-based weights functions lazily, so map/model I/O does not load torch."""
    if name in ("load_weights", "save_weights"):
        from deepqs.io import weights

        return getattr(weights, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Atoms",
    "Coordinates",
    "InputError",
    "MapData",
    "as_triple",
    "atomic_output",
    "atoms_from_structure",
    "check_model_in_map",
    "detect_kind",
    "flip_y_coordinates",
    "fraction_on_density",
    "load_weights",
    "map_header_info",
    "micrograph_key",
    "read_atom_site_column",
    "read_atoms",
    "read_coordinates",
    "read_coordinates_by_micrograph",
    "read_map",
    "read_micrograph",
    "read_model",
    "read_stack",
    "save_weights",
    "write_coordinates",
    "write_map",
    "write_micrograph",
    "write_model",
    "write_stack",
    "y_flip_report",
]
