"""The Q-score protocol and its viewers, headless, on a simulated map and model."""


import gemmi
import numpy as np
import pytest
from pwem import Domain
from pwem.protocols import ProtImportPdb

from deepqs.io import read_atom_site_column, write_model
from deepqs.simulate import build_protein_model, simulate_map
from deepqs.io import atoms_from_structure, write_map
from deepqs_plugin.tests.conftest import import_volume, launch

ProtDeepQsQScore = Domain.getProtocols()["ProtDeepQsQScore"]


@pytest.fixture(scope="module")
def sim_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qscore")
    st = build_protein_model(n_residues=40, seed=3)
    atoms = atoms_from_structure(st)
    sim = simulate_map(atoms, voxel_size=1.0, resolution=3.5, seed=3)
    write_map(folder / "map.mrc", sim.map)
    write_model(folder / "model.cif", st)
    return folder / "map.mrc", folder / "model.cif", sim.map


@pytest.fixture(scope="module")
def qscore_run(project, sim_pair):
    map_path, model_path, mapdata = sim_pair
    imp_vol = import_volume(project, map_path, 1.0)
    imp_pdb = launch(project, project.newProtocol(ProtImportPdb, inputPdbData=1, pdbFile=str(model_path)))
    assert imp_pdb.isFinished(), imp_pdb.getErrorMessage()
    prot = project.newProtocol(ProtDeepQsQScore, inputVolume=imp_vol.outputVolume,
                               inputStructure=imp_pdb.outputPdb, resolution=3.5)
    assert prot.validate() == []
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    return prot


def test_qscore_protocol_outputs(qscore_run, sim_pair):
    from deepqs.qscore import compute_qscores
    from deepqs.io import read_atoms

    prot = qscore_run
    out = prot.outputAtomStruct.getFileName()
    q = read_atom_site_column(out, "Q-score")
    atoms = read_atoms(out)
    assert len(q) == len(atoms) > 250
    # The protocol's numbers are the engine's numbers.
    direct = compute_qscores(sim_pair[2], read_atoms(sim_pair[1]), sigma=0.6)
    assert np.allclose(q, np.round(direct.q, 6), atol=2e-6, equal_nan=True)
    assert prot.meanQ.get() == pytest.approx(float(np.nanmean(direct.q)), abs=1e-6)
    assert 0.3 < prot.meanQ.get() < 1.0
    assert prot.atomsOutside.get() == 0
    summary = prot.loadSummary()
    assert summary["resolution_A"] == 3.5 and summary["expected_q"] == pytest.approx(-0.1775 * 3.5 + 1.1192, abs=1e-4)
    assert "Mean Q" in prot.summary()[0]
    assert "Q-scores [" in prot.methods()[0] and "Pintilie2020" in prot.methods()[0]

    # Scipion's attribute loop mirrors the Q column, one value per atom.
    block = gemmi.cif.read(out).sole_block()
    attrs = block.find("_scipion_attributes.", ["name", "recipient", "specifier", "value"])
    assert len(attrs) == len(q)
    first = attrs[0]
    assert gemmi.cif.as_string(first[0]) == "Q-score" and first[1] == "atoms"
    assert gemmi.cif.as_string(first[2]) == "%s:%d@%s" % (atoms.chain[0], atoms.resseq[0], atoms.name[0])
    assert float(first[3]) == pytest.approx(q[0], abs=1e-6)


def test_qscore_viewers_render(qscore_run, tmp_path):
    from deepqs_plugin.viewers import DeepQsQScoreViewer

    viewer = DeepQsQScoreViewer(project=qscore_run.getProject(), protocol=qscore_run)
    hist = viewer.histogramPlotter()
    ax = hist.getFigure().axes[0]
    assert sum(p.get_height() for p in ax.patches) == qscore_run.atomsScored.get()
    assert any("expected" in line.get_label() for line in ax.get_lines())
    hist.savefig(str(tmp_path / "hist.png"))
    prof = viewer.profilePlotter()
    prof.savefig(str(tmp_path / "profile.png"))
    assert (tmp_path / "hist.png").stat().st_size > 2000 and (tmp_path / "profile.png").stat().st_size > 2000
    script = viewer.writeChimeraXScript()
    text = open(script).read()
    assert "color byattribute qscore #1 palette red:white:blue range 0,1" in text
    defattr = open(qscore_run._getExtraPath("qscore.defattr")).read().splitlines()
    assert defattr[:3] == ["attribute: qscore", "recipient: atoms", "match mode: 1-to-1"]
    assert len(defattr) - 3 == qscore_run.atomsScored.get()
    hist.close()
    prof.close()


def test_qscore_validate_messages(project):
    prot = project.newProtocol(ProtDeepQsQScore)
    errors = " ".join(prot.validate())
    assert "map" in errors and "atomic model" in errors


def test_qscore_protocol_on_a_gpu_or_the_cpu_with_a_warning(project, qscore_run):
    prot = project.newProtocol(ProtDeepQsQScore, inputVolume=qscore_run.inputVolume.get(),
                               inputStructure=qscore_run.inputStructure.get(), resolution=3.5)
    prot.useGpu.set(True)
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    with open(prot.getStdoutLog()) as fh:
        log = fh.read()
    assert "--device cuda:0" in log
    assert prot.meanQ.get() == pytest.approx(qscore_run.meanQ.get(), abs=1e-9)   # torch = numpy
    if not __import__("torch").cuda.is_available():
        with open(prot.getStderrLog()) as fh:
            assert "running on the CPU" in fh.read()
