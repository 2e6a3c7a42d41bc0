"""The ``deepqs`` command line and the protocols report the same numbers for the same inputs."""

import json
import subprocess
import sys

import numpy as np
import pytest
from pwem import Domain
from pwem.protocols import ProtImportPdb

from deepqs.io import atoms_from_structure, write_map, write_model
from deepqs.simulate import build_protein_model, simulate_map
from deepqs_plugin.tests.conftest import import_volume, launch

P = Domain.getProtocols()


def _cli(*args):
    run = subprocess.run([sys.executable, "-m", "deepqs", *map(str, args)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="module")
def pair(project, tmp_path_factory):
    folder = tmp_path_factory.mktemp("agree")
    st = build_protein_model(n_residues=40, seed=12)
    sim = simulate_map(atoms_from_structure(st), voxel_size=1.2, resolution=4.0, seed=12)
    write_map(folder / "map.mrc", sim.map)
    write_map(folder / "half1.mrc", sim.half1)
    write_map(folder / "half2.mrc", sim.half2)
    write_model(folder / "model.cif", st)
    vol = import_volume(project, folder / "map.mrc", 1.2, setHalfMaps=True, half1map=str(folder / "half1.mrc"),
                        half2map=str(folder / "half2.mrc")).outputVolume
    pdb = launch(project, project.newProtocol(ProtImportPdb, inputPdbData=1, pdbFile=str(folder / "model.cif"),
                                              inputVolume=vol)).outputPdb
    return folder, vol, pdb, float(np.percentile(sim.map.data, 97))


def test_qscore_cli_and_protocol_agree(project, pair, tmp_path):
    folder, vol, pdb, _ = pair
    _cli("qscore", folder / "map.mrc", folder / "model.cif", "--resolution", 4.0, "--json", tmp_path / "q.json")
    cli = json.loads((tmp_path / "q.json").read_text())
    prot = launch(project, project.newProtocol(P["ProtDeepQsQScore"], inputVolume=vol, inputStructure=pdb,
                                               resolution=4.0))
    assert prot.isFinished(), prot.getErrorMessage()
    assert prot.meanQ.get() == pytest.approx(cli["mean_q"], abs=1e-9)
    assert prot.loadSummary()["mean_q"] == pytest.approx(cli["mean_q"], abs=1e-12)


def test_localq_cli_and_protocol_agree(project, pair, tmp_path):
    folder, vol, _, _ = pair
    _cli("localq", "predict", folder / "map.mrc", "--out", tmp_path / "lq.mrc", "--json", tmp_path / "lq.json",
         "--device", "cpu")
    cli = json.loads((tmp_path / "lq.json").read_text())
    prot = project.newProtocol(P["ProtDeepQsPredict"], inputVolume=vol)
    prot.useGpu.set(False)
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    assert prot.medianQ.get() == pytest.approx(cli["median_q"], abs=1e-6)
    assert prot.loadSummary()["percentiles_q"] == pytest.approx(cli["percentiles_q"], abs=1e-6)


def test_validate_cli_and_protocol_agree(project, pair, tmp_path):
    folder, vol, pdb, threshold = pair
    _cli("validate", "--map", folder / "map.mrc", "--threshold", threshold, "--resolution", 4.0,
         "--half1", folder / "half1.mrc", "--half2", folder / "half2.mrc", "--model", folder / "model.cif",
         "--out-dir", tmp_path / "rep")
    cli = json.loads((tmp_path / "rep" / "report.json").read_text())
    prot = launch(project, project.newProtocol(P["ProtDeepQsValidate"], inputVolume=vol, inputStructure=pdb,
                                               threshold=threshold, resolution=4.0))
    assert prot.isFinished(), prot.getErrorMessage()
    mine = prot.loadReport()
    assert mine["levels"] == cli["levels"] and mine["score"] == cli["score"]
    assert {c["id"]: c["status"] for c in mine["checks"]} == {c["id"]: c["status"] for c in cli["checks"]}
