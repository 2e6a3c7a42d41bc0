"""DeepEM picking protocols in a headless project: import coordinates, train from the shipped
model, pick (streaming-capable protocol, closed output), evaluate, and the viewer's figures."""

import csv
import os

import numpy as np
import pytest
from pwem import Domain
from pwem.protocols import ProtImportMicrographs

from deepqs.commands.simulate import write_simulated_micrographs
from deepqs.io import read_coordinates
from deepqs.simulate import build_protein_model
from deepqs_plugin.tests.conftest import launch

P = Domain.getProtocols()
ProtDeepEMTrain, ProtDeepEMPick = P["ProtDeepEMTrain"], P["ProtDeepEMPick"]
ProtDeepQsImportCoordinates = P["ProtDeepQsImportCoordinates"]


@pytest.fixture(scope="module")
def data(tmp_path_factory, project):
    out = str(tmp_path_factory.mktemp("mics"))
    manifest = write_simulated_micrographs(out, build_protein_model(n_residues=120, seed=2), n=3, size=(768, 768),
                                           pixel_size=2.0, particles=25, seed=2)
    mics = launch(project, project.newProtocol(
        ProtImportMicrographs, filesPath=manifest["folder"], filesPattern=manifest["pattern"],
        samplingRate=manifest["pixel_size_A"], voltage=300, sphericalAberration=2.7, amplitudeContrast=0.1))
    assert mics.isFinished(), mics.getErrorMessage()
    coords = launch(project, project.newProtocol(ProtDeepQsImportCoordinates, inputMicrographs=mics.outputMicrographs,
                                                 filesPath=manifest["coordinates"], filesPattern="*.box"))
    assert coords.isFinished(), coords.getErrorMessage()
    return manifest, mics.outputMicrographs, coords


def test_import_coordinates_converts_box_corners_to_centres(data):
    manifest, mics, imp = data
    out = imp.outputCoordinates
    stars = sorted(f for f in os.listdir(manifest["coordinates"]) if f.endswith(".star"))
    truth = {os.path.splitext(f)[0]: read_coordinates(os.path.join(manifest["coordinates"], f)) for f in stars}
    assert out.getSize() == sum(len(c) for c in truth.values()) == 75
    mic = next(iter(mics))
    got = sorted((c.getX(), c.getY()) for c in out.iterCoordinates(mic))
    want = sorted((int(round(x)), int(round(y))) for x, y in truth["mic_001"].xy)
    assert len(got) == len(want) and max(abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in zip(got, want)) <= 2
    assert out.getBoxSize() > 0


def test_train_from_shipped_model_then_pick_and_evaluate(project, data, tmp_path):
    manifest, mics, imp = data
    train = project.newProtocol(ProtDeepEMTrain, inputMicrographs=mics, inputCoordinates=imp.outputCoordinates,
                                particleDiameter=manifest["particle_diameter_A"], epochs=2, patience=1)
    assert train.allowsGpu() and train.validate() == []
    train = launch(project, train)
    assert train.isFinished(), train.getErrorMessage()
    assert os.path.getsize(train.outputModel.getFileName()) > 1000
    assert 0 < train.threshold.get() < 1 and train.particlesUsed.get() == 75
    assert "Trained on 75 particles from 3 micrographs" in train.summary()[0]
    assert "DeepEM particle picker" in train.methods()[0]

    pick = project.newProtocol(ProtDeepEMPick, inputMicrographs=mics, particleDiameter=manifest["particle_diameter_A"],
                               modelSource=1, inputModel=train.outputModel, inputTruth=imp.outputCoordinates)
    assert pick.allowsGpu() and pick.validate() == []
    pick = launch(project, pick)
    assert pick.isFinished(), pick.getErrorMessage()
    coords = pick.outputCoordinates
    assert coords.isStreamClosed() and coords.getSize() > 30
    scores = np.array([c._deepemScore.get() for c in coords.iterItems()])
    assert np.all((scores >= pick.pickSummaries()[0]["threshold"] - 1e-6) & (scores <= 1))
    # the Scipion set holds exactly what the engine wrote, micrograph by micrograph
    for mic in mics:
        with open(os.path.join(pick._coordsDir(), os.path.splitext(os.path.basename(mic.getFileName()))[0]
                               + ".csv")) as fh:
            engine = sorted((int(round(float(r["x"]))), int(round(float(r["y"])))) for r in csv.DictReader(fh))
        assert sorted(c.getPosition() for c in coords.iterCoordinates(mic)) == engine
    ev = pick.loadEvaluation()
    assert ev["micrographs"] == 3 and ev["0.5x_radius"]["n_truth"] == 75
    assert any("F1" in line for line in pick.summary())
    assert "DeepEM" in pick.methods()[0]

    from deepqs_plugin.viewers import DeepEMPickViewer
    viewer = DeepEMPickViewer(project=project, protocol=pick)
    first = next(iter(mics)).getMicName()
    assert viewer.picksPlotter(1).getFigure().axes[0].get_title().startswith(first)   # number 1 = the first
    for name, plotter in (("picks", viewer.picksPlotter(1)), ("hist", viewer.histogramPlotter()),
                          ("pr", viewer.prPlotter())):
        out = tmp_path / (name + ".png")
        plotter.savefig(str(out))
        assert out.stat().st_size > 5000, name
        plotter.close()


def test_pick_validation_messages(project, data):
    _, mics, _ = data
    prot = project.newProtocol(ProtDeepEMPick, inputMicrographs=mics, particleDiameter=100.0, modelSource=2,
                               modelFile="/nonexistent/picker.pt")
    assert any("does not exist" in e for e in prot.validate())
    prot = project.newProtocol(ProtDeepEMTrain, inputMicrographs=mics, particleDiameter=100.0, startFrom=1)
    assert any("continue from" in e for e in prot.validate())
    prot = project.newProtocol(ProtDeepEMPick, inputMicrographs=mics)   # no diameter: a message, not a crash
    assert any("particle diameter" in e for e in prot.validate())
