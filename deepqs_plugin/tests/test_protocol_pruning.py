"""PickerOptimizer pruning protocol in a headless project: picks on particles and on junk
(ice blobs, aggregates) are split into kept and discarded sets with class probabilities;
fine-tuning on a few labelled picks first; particles input."""

import json
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
ProtPickerOptimizer = P["ProtPickerOptimizer"]
ProtDeepQsImportCoordinates = P["ProtDeepQsImportCoordinates"]


def _import_coords(project, mics, folder, rows_by_mic, box):
    os.makedirs(folder, exist_ok=True)
    for stem, rows in rows_by_mic.items():
        with open(os.path.join(folder, stem + ".csv"), "w") as fh:
            fh.write("x,y\n" + "".join("%d,%d\n" % (x, y) for x, y in rows))
    prot = launch(project, project.newProtocol(ProtDeepQsImportCoordinates, inputMicrographs=mics, filesPath=folder,
                                               filesPattern="*.csv", boxSize=box))
    assert prot.isFinished(), prot.getErrorMessage()
    return prot.outputCoordinates


@pytest.fixture(scope="module")
def picks(project, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("prune"))
    m = write_simulated_micrographs(out, build_protein_model(n_residues=80, seed=3), n=2, size=(768, 768),
                                    pixel_size=2.0, particles=20, junk=("ice_blobs", "carbon_edge", "aggregates"),
                                    seed=3)
    mics = launch(project, project.newProtocol(ProtImportMicrographs, filesPath=m["folder"], filesPattern=m["pattern"],
                                               samplingRate=2.0, voltage=300, sphericalAberration=2.7,
                                               amplitudeContrast=0.1)).outputMicrographs
    truth = json.load(open(m["ground_truth"]))
    good, bad = {}, {}
    for t in truth:
        stem = os.path.splitext(t["micrograph"])[0]
        good[stem] = [tuple(xy) for xy in read_coordinates(os.path.join(m["coordinates"], stem + ".star")).xy]
        bad[stem] = [tuple(j["center_xy"]) for j in t["junk"] if j["kind"] in ("ice_blob", "aggregate")]
    both = {k: good[k] + bad[k] for k in good}
    box = 2 * m["box_size_px"] // 2
    return {"mics": mics, "all": _import_coords(project, mics, os.path.join(out, "all"), both, box),
            "good": _import_coords(project, mics, os.path.join(out, "good"), {k: v[:8] for k, v in good.items()}, box),
            "bad": _import_coords(project, mics, os.path.join(out, "bad"), bad, box),
            "n_good": sum(len(v) for v in good.values()), "n_bad": sum(len(v) for v in bad.values())}


def _check_split(prot, total, source=None):
    kept, discarded = prot.outputCoordinates, getattr(prot, "outputCoordinates_discarded", None)
    if source is not None:   # the same picks, on the same micrographs, come out
        out = sorted((c.getMicId(), c.getX(), c.getY()) for o in (kept, discarded) if o is not None
                     for c in o.iterItems())
        assert out == sorted((c.getMicId(), c.getX(), c.getY()) for c in source.iterItems())
    n_disc = discarded.getSize() if discarded is not None else 0
    for out in (kept, discarded):
        if out is not None and source is not None:
            assert out.getMicrographs().getSize() == source.getMicrographs().getSize() > 0
    assert kept.getSize() + n_disc == total                     # every pick in exactly one output
    threshold = prot.usedThreshold.get()
    for out, is_kept in ((kept, True), (discarded, False)):
        if out is None:
            continue
        for c in out.iterItems():
            p = np.array([c._pruneParticle.get(), c._pruneIce.get(), c._pruneCarbon.get()])
            assert abs(p.sum() - 1) < 1e-3 and (p[0] >= threshold - 1e-6) == is_kept
    return kept.getSize(), n_disc


def test_prune_picks_with_the_shipped_classifier(project, picks):
    prot = project.newProtocol(ProtPickerOptimizer, inputSet=picks["all"])
    assert prot.validate() == []
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    total = picks["n_good"] + picks["n_bad"]
    n_kept, n_disc = _check_split(prot, total, picks["all"])
    assert prot.nKept.get() == n_kept and "Kept %d of %d" % (n_kept, total) in prot.summary()[0]
    assert "PickerOptimizer" in prot.methods()[0]
    s = prot.loadSummary()
    assert s["n_items"] == total and s["n_kept"] == n_kept


def test_prune_with_adaptive_threshold_and_rotation_average(project, picks):
    prot = launch(project, project.newProtocol(ProtPickerOptimizer, inputSet=picks["all"], thresholdMode=1, tta=True))
    assert prot.isFinished(), prot.getErrorMessage()
    _check_split(prot, picks["n_good"] + picks["n_bad"], picks["all"])
    s = prot.loadSummary()
    assert s["tta"] is True and s["threshold_rule"].startswith("adaptive")


def test_fine_tune_on_labelled_picks_then_prune(project, picks):
    # 16 good examples: far fewer than the 50 per class that default settings need, so fine-tune anyway
    prot = project.newProtocol(ProtPickerOptimizer, inputSet=picks["all"], goodSubset=picks["good"],
                               badSubset=picks["bad"], epochs=2, minValPerClass=0)
    assert prot.warnings() == []
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    assert os.path.getsize(prot._getExtraPath("classifier.pt")) > 1000
    _check_split(prot, picks["n_good"] + picks["n_bad"])
    assert "fine-tuned" in prot.methods()[0]
    assert json.load(open(prot._getExtraPath("train_summary.json")))["epochs_run"] == 2


def test_prune_validation(project, picks):
    prot = project.newProtocol(ProtPickerOptimizer, inputSet=picks["all"], goodSubset=picks["good"])
    assert any("both good and ice" in e for e in prot.validate())


def test_pruning_viewer_figures(project, picks, tmp_path):
    from deepqs_plugin.viewers import DeepQsPruningViewer

    prot = launch(project, project.newProtocol(ProtPickerOptimizer, inputSet=picks["all"], goodSubset=picks["good"],
                                               badSubset=picks["bad"], epochs=1))
    assert prot.isFinished(), prot.getErrorMessage()
    # default settings with 16 good examples: the shipped classifier is used, and the protocol says so
    assert any("too few" in w for w in prot.warnings())
    assert "too few labelled examples to fine-tune" in prot.methods()[0]
    assert any("not used for fine-tuning" in line for line in prot.summary())
    viewer = DeepQsPruningViewer(project=project, protocol=prot)
    figures = {"kept": viewer.galleryPlotter(True, 16), "discarded": viewer.galleryPlotter(False, 16),
               "hist": viewer.histogramPlotter(), "confusion": viewer.confusionPlotter()}
    # every labelled example was among the input picks: the matrix counts all of them
    n_labelled = picks["good"].getSize() + picks["bad"].getSize()
    assert f"({n_labelled})" in figures["confusion"].getFigure().axes[0].get_title()
    for name, plotter in figures.items():
        plotter.savefig(str(tmp_path / (name + ".png")))
        assert (tmp_path / (name + ".png")).stat().st_size > 3000, name
        plotter.close()
