"""Validation-report protocol in a headless project: map with half maps and a model -> levels 0,
1 and A, the HTML/JSON report, the summary, and the viewer's table."""

import os

import numpy as np
import pytest
from pwem import Domain
from pwem.protocols import ProtImportPdb

from deepqs.io import atoms_from_structure, write_map, write_model
from deepqs.simulate import build_protein_model, simulate_map
from deepqs_plugin.tests.conftest import import_volume, launch

ProtDeepQsValidate = Domain.getProtocols()["ProtDeepQsValidate"]


@pytest.fixture(scope="module")
def inputs(project, tmp_path_factory):
    folder = tmp_path_factory.mktemp("val")
    st = build_protein_model(n_residues=50, seed=6)
    sim = simulate_map(atoms_from_structure(st), voxel_size=1.5, resolution=5.0, seed=6)
    for name, m in (("map", sim.map), ("half1", sim.half1), ("half2", sim.half2)):
        write_map(folder / (name + ".mrc"), m)
    write_model(folder / "model.cif", st)
    vol = import_volume(project, folder / "map.mrc", 1.5, setHalfMaps=True, half1map=str(folder / "half1.mrc"),
                        half2map=str(folder / "half2.mrc")).outputVolume
    pdb = launch(project, project.newProtocol(ProtImportPdb, inputPdbData=1, pdbFile=str(folder / "model.cif"),
                                              inputVolume=vol))
    assert pdb.isFinished(), pdb.getErrorMessage()
    threshold = float(np.percentile(sim.map.data, 97))
    return vol, pdb.outputPdb, threshold


def test_validation_report_levels_0_1_A(project, inputs, tmp_path):
    vol, model, threshold = inputs
    prot = project.newProtocol(ProtDeepQsValidate, inputVolume=vol, inputStructure=model, threshold=threshold,
                               resolution=5.0)
    assert prot.validate() == [] and prot.warnings() == []
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    report = prot.loadReport()
    assert report["levels"] == ["0", "1", "A"]
    assert prot.levels.get() == "0, 1, A"
    assert prot.passed.get() == report["score"]["passed"] and prot.evaluable.get() == report["score"]["evaluable"] >= 10
    ids = {c["id"]: c["status"] for c in report["checks"]}
    assert all(ids[k] in ("ok", "warning") for k in ("0.a", "1.a", "A.a"))
    assert ids["2.a"] == "not-applicable" and ids["5.a"] == "not-applicable"
    html = open(prot.outputReport.getFileName()).read()
    assert "out of" in html and "data:image/png;base64," in html
    assert prot.summary()[0].startswith("Levels attained: 0, 1, A;")
    assert "Sorzano2022" in prot.methods()[0] or "I2PC" in prot.methods()[0]

    from deepqs_plugin.viewers import DeepQsValidationViewer
    plotter = DeepQsValidationViewer(project=project, protocol=prot).summaryPlotter()
    assert "Levels 0, 1, A" in plotter.getFigure().axes[0].get_title()
    plotter.savefig(str(tmp_path / "summary.png"))
    assert (tmp_path / "summary.png").stat().st_size > 5000
    plotter.close()


def test_validation_without_half_maps_warns_and_needs_threshold(project, inputs, tmp_path):
    vol, _, _ = inputs
    plain = import_volume(project, vol.getFileName().replace(":mrc", ""), 1.5).outputVolume
    prot = project.newProtocol(ProtDeepQsValidate, inputVolume=plain, resolution=5.0)
    assert any("threshold" in e for e in prot.validate())
    assert any("no half maps" in w for w in prot.warnings())


def test_validation_with_class_averages_reaches_level_2(project, inputs, tmp_path):
    """Class averages imported into Scipion (projections of the map) are converted and checked."""
    from pwem.protocols import ProtImportAverages

    from deepqs.io import read_map, write_stack
    from deepqs.validation import align2d

    vol, model, threshold = inputs
    density = read_map(vol.getFileName().replace(":mrc", "")).data.astype(np.float64)
    rng = np.random.default_rng(0)
    directions = rng.standard_normal((6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    write_stack(tmp_path / "classes.mrcs", align2d.project(density, directions).astype(np.float32), 1.5)
    avg = launch(project, project.newProtocol(ProtImportAverages, filesPath=str(tmp_path), filesPattern="classes.mrcs",
                                              samplingRate=1.5))
    assert avg.isFinished(), avg.getErrorMessage()
    prot = launch(project, project.newProtocol(ProtDeepQsValidate, inputVolume=vol, inputClasses=avg.outputAverages,
                                               threshold=threshold, resolution=5.0))
    assert prot.isFinished(), prot.getErrorMessage()
    report = prot.loadReport()
    assert report["levels"] == ["0", "1", "2"]
    check = next(c for c in report["checks"] if c["id"] == "2.a")
    assert check["status"] == "ok", check["warnings"]
