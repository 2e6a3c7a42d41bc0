"""DeepQs training protocol (simulated and map/model pairs), prediction with the trained weights
compared with the model, and the viewers' figures, all in a headless project."""

import json
import os

import numpy as np
import pytest
from pwem import Domain
from pwem.protocols import ProtImportPdb

from deepqs.io import atoms_from_structure, write_map, write_model
from deepqs.io.weights import load_weights
from deepqs.simulate import build_protein_model, simulate_map
from deepqs_plugin.tests.conftest import import_volume, launch

ProtDeepQsTrain = Domain.getProtocols()["ProtDeepQsTrain"]
ProtDeepQsPredict = Domain.getProtocols()["ProtDeepQsPredict"]

TINY = dict(epochs=1, validation=2, crop=16, batch=2, base=4, depth=2)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A folder of two small models with the index.csv the engine reads (fast, no shared data)."""
    folder = tmp_path_factory.mktemp("models")
    rows = ["file,n_atoms_nonH,has_protein,has_nucleic"]
    for seed in (1, 2):
        st = build_protein_model(n_residues=40, seed=seed)
        write_model(folder / ("m%d.cif" % seed), st)
        rows.append("m%d.cif,%d,1,0" % (seed, len(atoms_from_structure(st))))
    (folder / "index.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def pair(tmp_path_factory, project):
    folder = tmp_path_factory.mktemp("pair")
    st = build_protein_model(n_residues=40, seed=11)
    atoms = atoms_from_structure(st)
    sim = simulate_map(atoms, voxel_size=1.0, resolution=4.0, seed=11)
    write_map(folder / "map.mrc", sim.map)
    write_model(folder / "model.cif", st)
    vol = import_volume(project, folder / "map.mrc", 1.0)  # the header origin fits the model
    pdb = launch(project, project.newProtocol(ProtImportPdb, inputPdbData=1, pdbFile=str(folder / "model.cif"),
                                              inputVolume=vol.outputVolume))
    assert pdb.isFinished(), pdb.getErrorMessage()
    return vol.outputVolume, pdb.outputPdb


def test_train_on_simulated_maps_outputs_loadable_weights(project, tiny_models):
    prot = project.newProtocol(ProtDeepQsTrain, examples=4, structuresFolder=str(tiny_models), **TINY)
    assert prot.allowsGpu() and prot.usesGpu()
    assert prot.validate() == []
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    state, header = load_weights(prot.outputWeights.getFileName())
    assert header["architecture"] == "deepqs_localq_unet3d" and header["config"] == {"base": 4, "depth": 2}
    report = prot.loadReport()
    assert report["epochs"] == [1] and np.isfinite(report["val_loss"][0])
    assert prot.bestEpoch.get() == 1 and prot.valLoss.get() == pytest.approx(report["val_loss"][0])
    assert "Best validation epoch 1" in prot.summary()[0] and "simulated maps (4 examples" in prot.methods()[0]
    with open(prot.getStdoutLog()) as fh:
        assert "localq train" in fh.read()


def test_train_on_pairs_then_predict_with_those_weights_and_compare(project, pair):
    vol, model = pair
    train = project.newProtocol(ProtDeepQsTrain, dataSource=1, pairExamples=4, **TINY)
    train.inputVolumes.append(vol)
    train.inputStructures.append(model)
    assert train.validate() == []
    train = launch(project, train)
    assert train.isFinished(), train.getErrorMessage()
    with open(train._pairsFile()) as fh:
        assert fh.readline().strip() == "map,model" and fh.readline().count(",") == 1

    pred = project.newProtocol(ProtDeepQsPredict, inputVolume=vol, inputStructure=model,
                               inputWeights=train.outputWeights)
    assert pred.weightsPath() == train.outputWeights.getFileName()
    pred = launch(project, pred)
    assert pred.isFinished(), pred.getErrorMessage()
    with open(pred._out("localq_summary.json")) as fh:
        assert json.load(fh)["weights"].endswith("localq_weights.pt")
    cmp = pred.loadComparison()
    assert cmp["residues_compared"] == 40 and -1 <= cmp["pearson_residue"] <= 1
    assert pred.pearsonResidue.get() == pytest.approx(cmp["pearson_residue"])
    assert "per-residue Pearson" in pred.summary()[1]
    for name in ("localq_slices.png", "localq_histogram.png", "color_by_localq.cxc", "pred_vs_true.png"):
        assert os.path.getsize(pred._out(os.path.join("figures", name))) > 100, name


def test_validate_pairs_need_as_many_models_as_maps(project, pair):
    vol, _ = pair
    prot = project.newProtocol(ProtDeepQsTrain, dataSource=1, crop=20, depth=3)
    prot.inputVolumes.append(vol)
    errors = prot.validate()
    assert any("as many models as maps" in e for e in errors)
    assert any("divisible by 2^depth = 8" in e for e in errors)


def test_viewers_render_pngs(project, pair, tmp_path, tiny_models):
    from deepqs_plugin.viewers import DeepQsLocalQViewer, DeepQsTrainViewer

    vol, model = pair
    pred = launch(project, project.newProtocol(ProtDeepQsPredict, inputVolume=vol, inputStructure=model))
    assert pred.isFinished(), pred.getErrorMessage()
    viewer = DeepQsLocalQViewer(project=project, protocol=pred)
    figures = {"slices": viewer.slicesPlotter(), "resolution": viewer.slicesPlotter(resolution=True),
               "histogram": viewer.histogramPlotter(), "scatter": viewer.scatterPlotter()}
    slices = figures["slices"].getFigure()
    assert len(slices.axes) == 4 and "local Q (higher = better)" in slices.axes[3].get_ylabel()
    assert slices.axes[3].get_ylim() == (-1.0, 1.0)  # colour bar not inverted: higher = better = blue
    assert "lower = better" in figures["resolution"].getFigure().axes[3].get_ylabel()
    assert "median" in figures["histogram"].getFigure().axes[0].get_legend().get_texts()[0].get_text()
    assert "Pearson r" in figures["scatter"].getFigure().axes[0].get_title()
    for name, plotter in figures.items():
        out = tmp_path / (name + ".png")
        plotter.savefig(str(out))
        assert out.stat().st_size > 5000, name
        plotter.close()
    assert viewer.chimeraXScript().endswith("color_by_localq.cxc") and os.path.exists(viewer.chimeraXScript())
    with open(viewer.chimeraXScript()) as fh:
        assert "color sample #1 map #2 palette red:white:blue" in fh.read()

    train = launch(project, project.newProtocol(ProtDeepQsTrain, examples=2, structuresFolder=str(tiny_models), **TINY))
    plotter = DeepQsTrainViewer(project=project, protocol=train).curvesPlotter()
    assert len(plotter.getFigure().axes) == 2
    plotter.savefig(str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 5000
    plotter.close()
