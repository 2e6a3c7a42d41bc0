"""The map-statistics protocol, run headless in a real Scipion project."""

import os

import numpy as np
import pytest
from pwem import Domain

from deepqs.io import write_map
from deepqs_plugin.constants import ORIGIN_FROM_SCIPION
from deepqs_plugin.tests.conftest import import_volume, launch

ProtDeepQsMapStats = Domain.getProtocols()["ProtDeepQsMapStats"]


@pytest.fixture(scope="module")
def known_map(tmp_path_factory):
    """A 40×36×32 (x, y, z) map, 1.25 Å/voxel, header origin (10, -5, 2.5) Å, known values."""
    folder = tmp_path_factory.mktemp("mapstats")
    data = np.random.default_rng(7).normal(0.5, 2.0, size=(32, 36, 40)).astype(np.float32)
    path = folder / "known.mrc"
    write_map(path, data, voxel_size=1.25, origin=(10.0, -5.0, 2.5))
    return path, data


def test_map_stats_protocol(project, known_map):
    path, data = known_map
    imp = import_volume(project, path, 1.25)
    prot = project.newProtocol(ProtDeepQsMapStats, inputVolume=imp.outputVolume, bins=50)
    assert prot.validate() == []
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()

    stats = prot.mapStats
    assert stats.box.get() == "40, 36, 32"
    assert stats.voxelSize.get() == "1.25, 1.25, 1.25"
    assert stats.origin.get() == "10, -5, 2.5"  # from the header, as Chimera/MapQ read it
    assert stats.mean.get() == pytest.approx(float(data.mean(dtype=np.float64)), rel=1e-6)
    assert stats.std.get() == pytest.approx(float(data.std(dtype=np.float64)), rel=1e-6)
    assert stats.minimum.get() == pytest.approx(float(data.min()))
    assert stats.maximum.get() == pytest.approx(float(data.max()))

    summary = stats.loadJson()
    assert sum(summary["histogram"]["counts"]) == data.size
    assert len(summary["histogram"]["counts"]) == 50
    with open(stats.getHistogramFile(), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"

    assert "40, 36, 32" in prot.summary()[0]
    assert "standard deviation" in prot.methods()[0]


def test_origin_from_scipion_object(project, known_map):
    path, _ = known_map
    imp = import_volume(project, path, 1.25)  # the import protocol centres the map: -box/2 × voxel
    prot = project.newProtocol(ProtDeepQsMapStats, inputVolume=imp.outputVolume, originFrom=ORIGIN_FROM_SCIPION)
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    assert prot.mapStats.origin.get() == "-25, -22.5, -20"


def test_validate_without_input(project):
    prot = project.newProtocol(ProtDeepQsMapStats)
    errors = prot.validate()
    assert errors and any("input" in e.lower() for e in errors)


def test_bad_map_fails_with_clear_message(project, tmp_path):
    path = tmp_path / "nan.mrc"
    data = np.zeros((16, 16, 16), np.float32)
    data[3, 4, 5] = np.nan
    import mrcfile
    with mrcfile.new(path) as m:
        m.set_data(data)
        m.voxel_size = 2.0
    imp = import_volume(project, path, 2.0)
    prot = launch(project, project.newProtocol(ProtDeepQsMapStats, inputVolume=imp.outputVolume))
    assert prot.isFailed()
    # The engine's one-line reason, not a bare exit status, is what the user sees.
    assert "map contains non-finite voxels (1 NaN, 0 Inf)" in prot.getErrorMessage()
    assert "nan.mrc" in prot.getErrorMessage()
    assert not os.path.exists(prot._getExtraPath("map_stats.json"))
