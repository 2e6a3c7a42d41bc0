"""Extraction protocol in a headless project: picks -> particles on the right pixels, with their
coordinates, the micrographs' sampling rate, edge boxes skipped and counted; the particles then
go through PickerOptimizer."""

import json
import os

import numpy as np
import pytest
from pwem import Domain
from pwem.protocols import ProtImportMicrographs

from deepqs.commands.simulate import write_simulated_micrographs
from deepqs.io import read_coordinates, read_micrograph, read_stack
from deepqs.simulate import build_protein_model
from deepqs_plugin.tests.conftest import launch

P = Domain.getProtocols()


@pytest.fixture(scope="module")
def coords(project, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("extract"))
    m = write_simulated_micrographs(out, build_protein_model(n_residues=60, seed=4), n=2, size=(512, 512),
                                    pixel_size=2.0, particles=12, seed=4)
    mics = launch(project, project.newProtocol(ProtImportMicrographs, filesPath=m["folder"], filesPattern=m["pattern"],
                                               samplingRate=2.0, voltage=300, sphericalAberration=2.7,
                                               amplitudeContrast=0.1))
    folder = os.path.join(out, "picks")
    os.makedirs(folder)
    for t in json.load(open(m["ground_truth"])):
        stem = os.path.splitext(t["micrograph"])[0]
        xy = read_coordinates(os.path.join(m["coordinates"], stem + ".star")).xy
        with open(os.path.join(folder, stem + ".csv"), "w") as fh:
            # every true particle, plus one centre 5 px from the left edge (its box runs off)
            fh.write("x,y\n" + "".join("%d,%d\n" % tuple(np.rint(p)) for p in xy) + "5,250\n")
    imp = launch(project, project.newProtocol(P["ProtDeepQsImportCoordinates"], inputMicrographs=mics.outputMicrographs,
                                              filesPath=folder, filesPattern="*.csv", boxSize=64))
    assert imp.isFinished(), imp.getErrorMessage()
    return imp.outputCoordinates


def test_extract_particles(project, coords):
    prot = launch(project, project.newProtocol(P["ProtDeepQsExtractParticles"], inputCoordinates=coords,
                                               normalise=False))
    assert prot.isFinished(), prot.getErrorMessage()
    parts = prot.outputParticles
    n_mics = coords.getMicrographs().getSize()
    xy = np.array([(c.getX(), c.getY()) for c in coords.iterItems()])
    off = ((xy - 32 < 0) | (xy + 31 >= 512)).any(axis=1)           # boxes running off a 512 x 512 micrograph
    assert off.sum() >= n_mics                                      # at least the added edge centres
    assert parts.getSize() == coords.getSize() - off.sum()          # skipped, and counted
    assert prot.nSkipped.get() == off.sum() and "skipped" in " ".join(prot.summary())
    assert parts.getSamplingRate() == pytest.approx(2.0) and parts.getDim()[:2] == (64, 64)
    mic_files = {m.getObjId(): m.getFileName() for m in coords.getMicrographs()}
    for p in list(parts.iterItems())[:5]:
        index, stack = p.getLocation()
        box = read_stack(stack)[0][index - 1]
        c = p.getCoordinate()
        image = read_micrograph(mic_files[c.getMicId()])[0]
        # the box is the micrograph around (x = column, y = row)
        assert np.allclose(box, image[c.getY() - 32:c.getY() + 32, c.getX() - 32:c.getX() + 32])
    assert "extracted" in prot.methods()[0]


def test_extracted_particles_go_to_pickeroptimizer(project, coords):
    ext = launch(project, project.newProtocol(P["ProtDeepQsExtractParticles"], inputCoordinates=coords))
    prune = launch(project, project.newProtocol(P["ProtPickerOptimizer"], inputSet=ext.outputParticles))
    assert prune.isFinished(), prune.getErrorMessage()
    kept = prune.outputParticles.getSize()
    discarded = getattr(prune, "outputParticles_discarded", None)
    assert kept + (discarded.getSize() if discarded is not None else 0) == ext.outputParticles.getSize()
    assert kept >= 0.7 * ext.outputParticles.getSize()           # they are true particles


def test_extract_warns_and_validates(project, coords):
    prot = project.newProtocol(P["ProtDeepQsExtractParticles"], inputCoordinates=coords, invert=True)
    assert any("PickerOptimizer" in w for w in prot.warnings())
    prot = project.newProtocol(P["ProtDeepQsExtractParticles"], inputCoordinates=coords, boxSize=4)
    assert any("at least 8 pixels" in e for e in prot.validate())
