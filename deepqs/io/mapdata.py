"""The in-memory map: a z,y,x float32 array on a real-space grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

Triple = Union[float, Sequence[float], np.ndarray]


def as_triple(value: Triple, name: str = "value") -> np.ndarray:
    """Return ``value`` as a float64 (x, y, z) array; a scalar is repeated three times."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3:
        raise ValueError(f"{name} must be a number or three numbers (x, y, z), got {value!r}")
    return arr


@dataclass
class MapData:
    """A cryo-EM map in memory.

    Attributes
    ----------
    data : ndarray, float32, shape (nz, ny, nx)
        Voxel values indexed ``[z, y, x]`` (C order).
    voxel_size : ndarray, shape (3,)
        Voxel size (x, y, z) in Å/voxel.
    origin : ndarray, shape (3,)
        Real-space position (x, y, z) in Å of voxel ``[0, 0, 0]``.
    path : str or None
        File the map was read from, when there is one (used in error messages).
    """

    data: np.ndarray
    voxel_size: np.ndarray
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    path: Optional[str] = None

    def __post_init__(self) -> None:
        self.voxel_size = as_triple(self.voxel_size, "voxel_size")
        self.origin = as_triple(self.origin, "origin")

    @property
    def shape(self) -> tuple:
        """Array shape (nz, ny, nx)."""
        return tuple(self.data.shape)

    @property
    def grid_size(self) -> np.ndarray:
        """Number of voxels along (x, y, z)."""
        return np.array(self.data.shape[::-1], dtype=np.int64)

    @property
    def box_size_A(self) -> np.ndarray:
        """Box edge lengths (x, y, z) in Å."""
        return self.grid_size * self.voxel_size

    @property
    def is_cubic_voxel(self) -> bool:
        """True when the voxel is the same size along x, y and z (to 1e-4 relative)."""
        return bool(np.allclose(self.voxel_size, self.voxel_size[0], rtol=1e-4, atol=0.0))

    def xyz_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Real-space points (..., 3) as (x, y, z) in Å -> fractional voxel indices (..., 3) as (x, y, z)."""
        return (np.asarray(xyz, dtype=np.float64) - self.origin) / self.voxel_size

    def index_to_xyz(self, ijk: np.ndarray) -> np.ndarray:
        """Fractional voxel indices (..., 3) as (x, y, z) -> real-space points (..., 3) in Å."""
        return np.asarray(ijk, dtype=np.float64) * self.voxel_size + self.origin

    @property
    def centre_A(self) -> np.ndarray:
        """Real-space position (x, y, z) in Å of the box centre."""
        return self.index_to_xyz((self.grid_size - 1) / 2.0)

    def with_data(self, data: np.ndarray) -> "MapData":
        """A new map on the same grid holding ``data``."""
        if data.shape != self.data.shape:
            raise ValueError(f"shape {data.shape} differs from the grid {self.data.shape}")
        return MapData(np.asarray(data, dtype=np.float32), self.voxel_size.copy(), self.origin.copy(), None)
