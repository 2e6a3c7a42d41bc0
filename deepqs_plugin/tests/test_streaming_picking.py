"""Streaming: micrographs appear in a folder over time, a streaming import feeds a scheduled
DeepEM picking protocol, whose growing coordinates feed a scheduled PickerOptimizer; every
micrograph is picked exactly once, every pick is pruned exactly once, and the outputs close when
the input stream closes."""

import json
import os
import shutil
import time

import pytest
from pwem import Domain
from pwem.protocols import ProtImportMicrographs

from deepqs.commands.simulate import write_simulated_micrographs
from deepqs.simulate import build_protein_model

from deepqs_plugin.tests.conftest import wait_until_inactive


def _refresh(project, prot):
    project._updateProtocol(prot)
    return project.getProtocol(prot.getObjId())


@pytest.fixture
def fast_file_checks(monkeypatch):
    import pyworkflow as pw
    # the import polls its folder every SCIPION_EM_NEW_FILE_CHECK_SEC (10 s by default)
    monkeypatch.setenv("SCIPION_EM_NEW_FILE_CHECK_SEC", "1")
    monkeypatch.setattr(pw.Config, "SCIPION_EM_NEW_FILE_CHECK_SEC", 1, raising=False)
    # streaming protocols look for new input every SCIPION_STEPS_CHECK_SEC (5 s by default)
    monkeypatch.setenv("SCIPION_STEPS_CHECK_SEC", "1")


def test_micrographs_arriving_over_time_are_each_picked_and_pruned_once(project, tmp_path, fast_file_checks):
    data = write_simulated_micrographs(str(tmp_path / "sim"), build_protein_model(n_residues=60, seed=8), n=3,
                                       size=(512, 512), pixel_size=2.0, particles=12, seed=8)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copy(data["micrographs"][0], incoming)

    imp = project.newProtocol(ProtImportMicrographs, filesPath=str(incoming), filesPattern="mic_*.mrc",
                              samplingRate=data["pixel_size_A"], voltage=300, sphericalAberration=2.7,
                              amplitudeContrast=0.1, dataStreaming=True, timeout="150", fileTimeout="1")
    project.launchProtocol(imp)
    pick = project.newProtocol(Domain.getProtocols()["ProtDeepEMPick"], particleDiameter=data["particle_diameter_A"])
    pick.inputMicrographs.set(imp)
    pick.inputMicrographs.setExtended("outputMicrographs")
    project.scheduleProtocol(pick)
    prune = project.newProtocol(Domain.getProtocols()["ProtPickerOptimizer"])
    prune.inputSet.set(pick)
    prune.inputSet.setExtended("outputCoordinates")
    project.scheduleProtocol(prune)

    # the second micrograph arrives while the protocols run; the third only once the pruning has
    # made its first batch, so that it must prune picks that arrive later (the import closes its
    # stream 150 s after the last file)
    time.sleep(6)
    shutil.copy(data["micrographs"][1], incoming)
    batch_dir = os.path.join(project.getPath(), _refresh(project, prune)._getExtraPath("batches"))
    wait = time.time() + 140
    while time.time() < wait and not (os.path.isdir(batch_dir) and os.listdir(batch_dir)):
        time.sleep(1)
    assert os.path.isdir(batch_dir) and os.listdir(batch_dir), "the pruning made no batch within 140 s"
    shutil.copy(data["micrographs"][2], incoming)
    imp, pick, prune = wait_until_inactive(project, [imp, pick, prune], timeout=400)
    assert imp.isFinished(), imp.getErrorMessage()
    assert pick.isFinished(), pick.getErrorMessage()
    assert prune.isFinished(), prune.getErrorMessage()

    coords = pick.outputCoordinates
    assert coords.isStreamClosed()
    mics = [m.clone() for m in imp.outputMicrographs]   # sets reuse one item object while iterating
    assert len(mics) == 3
    done = os.listdir(os.path.join(project.getPath(), pick._getExtraPath("DONE")))
    assert sorted(done) == sorted(["all.TXT"] + ["mic_%06d.TXT" % m.getObjId() for m in mics])
    with open(os.path.join(project.getPath(), pick._getExtraPath("DONE", "all.TXT"))) as fh:
        ids = [int(line) for line in fh]
    assert sorted(ids) == sorted(m.getObjId() for m in mics)          # each micrograph once
    picked = [json.load(open(os.path.join(project.getPath(), pick._getExtraPath("summaries", f))))
              for f in os.listdir(os.path.join(project.getPath(), pick._getExtraPath("summaries")))]
    assert sum(s["micrographs"] for s in picked) == 3
    per_mic = {m.getObjId(): len(list(coords.iterCoordinates(m))) for m in mics}
    assert sum(per_mic.values()) == coords.getSize() == sum(s["picked"] for s in picked)

    # every pick pruned exactly once, in batches made as the picks arrived; both outputs closed
    kept, discarded = prune.outputCoordinates, getattr(prune, "outputCoordinates_discarded", None)
    outs = [o for o in (kept, discarded) if o is not None]
    assert all(o.isStreamClosed() for o in outs)
    for o in outs:                                                  # still point at their micrographs
        assert o.getMicrographs().getFileName() == imp.outputMicrographs.getFileName()
        assert len(list(o.getMicrographs().iterItems())) == 3
    pruned_ids = [c.getObjId() for o in outs for c in o.iterItems()]
    assert sorted(pruned_ids) == sorted(c.getObjId() for c in coords.iterItems())
    batches = prune._knownBatches()
    in_batches = [i for b in batches for i in prune._flatIds(prune._batchIds(b))]
    assert sorted(in_batches) == sorted(pruned_ids)                  # no pick in two batches
    # the third micrograph's picks came after the first batch: a later batch pruned them
    assert len(batches) >= 2, batches
    assert prune.nKept.get() + prune.nRejected.get() == coords.getSize()
