"""Validation-report protocol in a headless project: map with half maps and a model -> levels 0,
1 and A, the HTML/JSON report, the summary, and the viewer's table."""

import os

import numpy as np
import pytest
from pwem import Domain
from pwem.protocols import ProtImportPdb

from deepqs.io import atoms_from_structure, write_map, write_model
from deepqs.simulate import build_protein_model, simulate_map
from deepqs_plugin.protocols.protocol_base import volumeFile
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


def test_validation_with_coordinates_runs_level_5(project, inputs, tmp_path):
    """Coordinates with their micrographs (Scipion objects) are converted and judged by the pruning
    classifier (check 5.a); every coordinate is counted."""
    from pwem.protocols import ProtImportMicrographs

    from deepqs.commands.simulate import write_simulated_micrographs

    vol, _, threshold = inputs
    m = write_simulated_micrographs(str(tmp_path / "mics"), build_protein_model(n_residues=50, seed=6), n=2,
                                    size=(512, 512), pixel_size=1.5, particles=10, seed=6)
    mics = launch(project, project.newProtocol(ProtImportMicrographs, filesPath=m["folder"], filesPattern=m["pattern"],
                                               samplingRate=1.5, voltage=300, sphericalAberration=2.7,
                                               amplitudeContrast=0.1)).outputMicrographs
    coords = launch(project, project.newProtocol(Domain.getProtocols()["ProtDeepQsImportCoordinates"],
                                                 inputMicrographs=mics, filesPath=m["coordinates"],
                                                 filesPattern="*.box")).outputCoordinates
    prot = launch(project, project.newProtocol(ProtDeepQsValidate, inputVolume=vol, inputCoordinates=coords,
                                               threshold=threshold, resolution=5.0))
    assert prot.isFinished(), prot.getErrorMessage()
    check = next(c for c in prot.loadReport()["checks"] if c["id"] == "5.a")
    assert check["status"] in ("ok", "warning") and check["values"]["coordinates"] == coords.getSize() == 20
    assert check["values"]["unmatched_coordinates"] == 0


def test_classes2d_are_converted_to_averages_and_a_particles_star(project, inputs, tmp_path):
    """A SetOfClasses2D gives the class averages (level 2) and its particles with their class
    numbers (level 3): the files handed to the engine hold exactly those images and labels."""
    from pwem.objects import Class2D, Particle, SetOfClasses2D, SetOfParticles

    from deepqs.io import read_stack, write_stack
    from deepqs.validation.inputs import load_inputs

    vol, _, threshold = inputs
    rng = np.random.default_rng(3)
    averages = rng.standard_normal((3, 24, 24)).astype(np.float32)
    particles = rng.standard_normal((3, 5, 24, 24)).astype(np.float32)
    write_stack(tmp_path / "averages.mrcs", averages, 1.5)
    write_stack(tmp_path / "particles.mrcs", particles.reshape(15, 24, 24), 1.5)
    parts = SetOfParticles(filename=str(tmp_path / "particles.sqlite"))
    parts.setSamplingRate(1.5)
    for i in range(15):
        parts.append(Particle(location=(i + 1, str(tmp_path / "particles.mrcs"))))
    parts.write()
    classes = SetOfClasses2D(filename=str(tmp_path / "classes.sqlite"))
    classes.setImages(parts)
    for k in range(3):
        cls = Class2D(objId=k + 1)
        cls.setRepresentative(Particle(location=(k + 1, str(tmp_path / "averages.mrcs"))))
        classes.append(cls)
        for i in range(5):
            p = Particle(location=(5 * k + i + 1, str(tmp_path / "particles.mrcs")))
            p.setObjId(5 * k + i + 1)
            cls.append(p)
        classes.update(cls)
    classes.write()

    prot = project.newProtocol(ProtDeepQsValidate, inputVolume=vol, threshold=threshold, resolution=5.0)
    prot.inputClasses.set(classes)
    prot.setWorkingDir(str(tmp_path / "run"))
    os.makedirs(prot._getExtraPath(), exist_ok=True)
    prot.convertInputStep()
    got, _ = read_stack(prot._inputFile("classes.mrcs"))
    np.testing.assert_allclose(got, averages, atol=1e-6)
    inp = load_inputs(volumeFile(vol), threshold, 5.0, classes=prot._inputFile("classes.mrcs"),
                      particles=prot._inputFile("particles.star"))
    assert inp.particles.shape == (15, 24, 24)
    np.testing.assert_allclose(inp.particles, particles.reshape(15, 24, 24), atol=1e-6)
    assert inp.particle_classes.tolist() == [k for k in range(3) for _ in range(5)]
