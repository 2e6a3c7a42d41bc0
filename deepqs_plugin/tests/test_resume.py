"""Resume: a picking run killed half way and continued ("Continue" mode) does not pick the
finished micrographs again, picks the rest once, and ends with one closed, duplicate-free output."""

import json
import os
import time

from pwem import Domain
from pwem.protocols import ProtImportMicrographs
from pyworkflow.protocol.constants import MODE_RESUME

from deepqs.commands.simulate import write_simulated_micrographs
from deepqs.simulate import build_protein_model
from deepqs_plugin.tests.conftest import launch


def _summaries(project, prot):
    folder = os.path.join(project.getPath(), prot._getExtraPath("summaries"))
    if not os.path.isdir(folder):
        return {}
    return {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)}


def test_killed_picking_run_continues_without_redoing_finished_micrographs(project, tmp_path):
    n_mics = 6
    data = write_simulated_micrographs(str(tmp_path / "sim"), build_protein_model(n_residues=60, seed=5), n=n_mics,
                                       size=(512, 512), pixel_size=2.0, particles=10, seed=5)
    mics = launch(project, project.newProtocol(ProtImportMicrographs, filesPath=data["folder"],
                                               filesPattern=data["pattern"], samplingRate=data["pixel_size_A"],
                                               voltage=300, sphericalAberration=2.7, amplitudeContrast=0.1))
    assert mics.isFinished(), mics.getErrorMessage()
    pick = project.newProtocol(Domain.getProtocols()["ProtDeepEMPick"], particleDiameter=data["particle_diameter_A"],
                               numberOfThreads=1)       # one micrograph after the other
    pick.inputMicrographs.set(mics.outputMicrographs)
    project.launchProtocol(pick)                        # returns at once; the run goes on in its own process

    # kill it once some, but not all, micrographs are picked
    deadline = time.time() + 300
    while time.time() < deadline and len(_summaries(project, pick)) < 3:
        time.sleep(0.5)
    pick = project.getProtocol(pick.getObjId())
    project.stopProtocol(pick)
    pick = project.getProtocol(pick.getObjId())
    assert pick.isAborted()
    # the micrographs whose step had finished (a step cut short is run again, as it should be)
    ids = {m.getMicName(): m.getObjId() for m in mics.outputMicrographs}
    finished = [ids[json.loads(s.argsStr.get())[0]] for s in pick.loadSteps()
                if s.funcName.get() == "pickMicrographStep" and s.isFinished()]
    times = _summaries(project, pick)
    before = {f: times[f] for f in ("pick_%06d.json" % i for i in finished)}
    assert 1 <= len(before) < n_mics, (finished, times)

    # continue
    pick.runMode.set(MODE_RESUME)
    pick = launch(project, pick)
    assert pick.isFinished(), pick.getErrorMessage()
    after = _summaries(project, pick)
    assert len(after) == n_mics                                     # one engine job per micrograph
    assert all(after[f] == t for f, t in before.items()), (before, after)  # finished ones not run again
    picked = [json.load(open(os.path.join(project.getPath(), pick._getExtraPath("summaries", f)))) for f in after]
    assert sum(s["micrographs"] for s in picked) == n_mics

    coords = pick.outputCoordinates
    assert coords.isStreamClosed()
    rows = [(c.getMicId(), c.getX(), c.getY()) for c in coords.iterItems()]
    assert len(rows) == len(set(rows)) == sum(s["picked"] for s in picked) > 0    # no pick twice
    assert len({m for m, _, _ in rows}) >= n_mics - 1              # picks on (almost) every micrograph
