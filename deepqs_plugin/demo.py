"""The Scipion half of ``make demo``: simulated data through DeepQs protocols in a headless project.

Run it as ``python -m deepqs_headless demo --out DIR`` (the Scipion environment must be set
before Scipion is imported).  It runs the engine demo (``deepqs demo``), imports the simulated
map with its half maps, the model and the micrographs into a new Scipion project, runs the
DeepQs protocols on them and prints where everything is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from deepqs_plugin import Plugin


def _launch(project, protocol):
    project.launchProtocol(protocol, wait=True)
    protocol = project.getProtocol(protocol.getObjId())
    if not protocol.isFinished():
        raise SystemExit("demo: protocol '%s' ended %s: %s"
                         % (protocol.getRunName(), protocol.getStatus(), protocol.getErrorMessage()))
    print("  finished: %s" % protocol.getRunName())
    return protocol


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="deepqs-scipion-demo", description=__doc__)
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--project", default=None, help="Scipion project name (default: deepqs_demo_<time>)")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)

    print("1/3 engine demo: simulating data into %s" % out)
    cmd = "%s demo --out %s" % (Plugin.getProgram(), subprocess.list2cmdline([out]))
    subprocess.run(cmd, shell=True, check=True)
    with open(os.path.join(out, "demo_manifest.json")) as fh:
        manifest = json.load(fh)

    print("2/3 Scipion project")
    from pwem import Domain
    from pwem.protocols import ProtImportMicrographs, ProtImportPdb, ProtImportVolumes
    from pyworkflow.project import Manager

    manager = Manager()
    name = args.project or "deepqs_demo_%s" % time.strftime("%Y%m%d_%H%M%S")
    manager.createProject(name)
    project = manager.loadProject(name)

    sim = manifest["map"]
    imp_vol = _launch(project, project.newProtocol(
        ProtImportVolumes, objLabel="import simulated map", filesPath=sim["map"],
        samplingRate=sim["voxel_size_A"], setHalfMaps=True, half1map=sim["half_maps"][0],
        half2map=sim["half_maps"][1]))
    imp_pdb = _launch(project, project.newProtocol(
        ProtImportPdb, objLabel="import simulated model", inputPdbData=1, pdbFile=sim["model"],
        inputVolume=imp_vol.outputVolume))
    mics = manifest["micrographs"]
    imp_mics = _launch(project, project.newProtocol(
        ProtImportMicrographs, objLabel="import simulated micrographs", filesPath=mics["folder"],
        filesPattern=mics["pattern"], samplingRate=mics["pixel_size_A"], voltage=mics["voltage_kV"],
        sphericalAberration=mics["cs_mm"], amplitudeContrast=mics["amplitude_contrast"]))

    print("3/3 DeepQs protocols")
    ProtDeepQsMapStats = Domain.getProtocols()["ProtDeepQsMapStats"]
    stats = _launch(project, project.newProtocol(ProtDeepQsMapStats, objLabel="map statistics",
                                                 inputVolume=imp_vol.outputVolume))
    for line in stats.summary():
        print("  " + line)
    ProtDeepQsQScore = Domain.getProtocols()["ProtDeepQsQScore"]
    qscore = _launch(project, project.newProtocol(ProtDeepQsQScore, objLabel="q-score",
                                                  inputVolume=imp_vol.outputVolume,
                                                  inputStructure=imp_pdb.outputPdb,
                                                  resolution=sim["requested_resolution_A"]))
    for line in qscore.summary():
        print("  " + line)
    ProtDeepQsPredict = Domain.getProtocols()["ProtDeepQsPredict"]
    localq = _launch(project, project.newProtocol(ProtDeepQsPredict, objLabel="deepqs local quality",
                                                  inputVolume=imp_vol.outputVolume, inputStructure=imp_pdb.outputPdb))
    for line in localq.summary():
        print("  " + line)

    ProtDeepQsImportCoordinates = Domain.getProtocols()["ProtDeepQsImportCoordinates"]
    truth = _launch(project, project.newProtocol(ProtDeepQsImportCoordinates, objLabel="import simulated truth",
                                                 inputMicrographs=imp_mics.outputMicrographs,
                                                 filesPath=mics["coordinates"], filesPattern="*.box"))
    ProtDeepEMPick = Domain.getProtocols()["ProtDeepEMPick"]
    pick = _launch(project, project.newProtocol(ProtDeepEMPick, objLabel="deepem pick (shipped model)",
                                                inputMicrographs=imp_mics.outputMicrographs,
                                                particleDiameter=mics["particle_diameter_A"],
                                                inputTruth=truth.outputCoordinates))
    for line in pick.summary():
        print("  " + line)
    ProtPickerOptimizer = Domain.getProtocols()["ProtPickerOptimizer"]
    prune = _launch(project, project.newProtocol(ProtPickerOptimizer, objLabel="pickeroptimizer prune",
                                                 inputSet=pick.outputCoordinates))
    for line in prune.summary():
        print("  " + line)

    print("\nDemo outputs")
    print("  engine data (maps, model, micrographs, coordinates): %s" % out)
    print("  Scipion project: %s" % project.getPath())
    in_project = lambda path: os.path.abspath(os.path.join(project.getPath(), path))
    print("  map statistics: %s" % in_project(stats.mapStats.getJsonFile()))
    print("  histogram: %s" % in_project(stats.mapStats.getHistogramFile()))
    print("  model with Q-scores: %s" % in_project(qscore.outputAtomStruct.getFileName()))
    print("  DeepQs local-Q map: %s" % in_project(localq.localQ.getFileName()))
    print("  DeepQs figures (slices, histogram, predicted vs true, ChimeraX): %s"
          % in_project(localq._out("figures")))
    print("  DeepEM picks: %s (precision-recall curve: %s)"
          % (in_project(pick._coordsDir()), in_project(pick.prCurveFile())))
    print("  pruned picks: kept %d, discarded %d (scores: %s)" % (
        prune.nKept.get(), prune.nRejected.get(), in_project(prune.scoredBatches()[0][1])))
    print("  open it in the GUI with: scipion3 project %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
