"""DeepQs prediction protocol, headless, with the shipped weights on a simulated map."""


import numpy as np
import pytest
from pwem import Domain

from deepqs.io import atoms_from_structure, read_map, write_map
from deepqs.simulate import build_protein_model, simulate_map
from deepqs_plugin.tests.conftest import import_volume, launch

ProtDeepQsPredict = Domain.getProtocols()["ProtDeepQsPredict"]


@pytest.fixture(scope="module")
def sim_map(tmp_path_factory):
    folder = tmp_path_factory.mktemp("localq")
    atoms = atoms_from_structure(build_protein_model(n_residues=40, seed=5))
    sim = simulate_map(atoms, voxel_size=1.2, resolution=4.0, seed=5)
    sim.map.origin = np.array([12.5, -7.25, 3.0])  # a non-zero origin must survive
    write_map(folder / "map.mrc", sim.map)
    return folder / "map.mrc"


def test_predict_protocol_gpu_declared_and_cpu_fallback(project, sim_map):
    imp = import_volume(project, sim_map, 1.2)
    prot = project.newProtocol(ProtDeepQsPredict, inputVolume=imp.outputVolume)
    assert prot.allowsGpu() and prot.usesGpu()  # GPU_LIST and USE_GPU declared the Scipion way
    assert prot.validate() == []
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()

    src = read_map(sim_map)
    for name in ("localQ", "localResolution"):
        out = read_map(getattr(prot, name).getFileName())
        assert out.shape == src.shape
        assert np.allclose(out.voxel_size, src.voxel_size) and np.allclose(out.origin, src.origin, atol=1e-4)
    q = read_map(prot.localQ.getFileName()).data
    inside = q != 0
    assert 0.01 < inside.mean() < 0.9 and q.min() >= -1 and q.max() <= 1
    assert prot.medianQ.get() == pytest.approx(float(np.median(q[inside])), abs=0.02)
    assert prot.medianResolution.get() == pytest.approx(-3.816 * prot.medianQ.get() + 5.679, abs=1e-3)
    assert "Median local Q" in prot.summary()[0] and "DeepQs" in prot.methods()[0]
    if not __import__("torch").cuda.is_available():
        with open(prot.getStdoutLog()) as fh:
            log = fh.read()
        with open(prot.getStderrLog()) as fh:
            log += fh.read()
        assert "cuda:0" in log and "running on the CPU" in log  # never a silent fallback


def test_predict_validate_without_input(project):
    assert any("map" in e for e in project.newProtocol(ProtDeepQsPredict).validate())
