"""The workflow templates the plugin ships: Scipion discovers them, and each one, filled in with
simulated data, loads into a project and runs headless to the end."""

import numpy as np
from pwem import Domain

import deepqs_plugin
from deepqs.commands.simulate import write_simulated_map, write_simulated_micrographs
from deepqs.simulate import build_protein_model
from deepqs_plugin.tests.conftest import launch


def _templates():
    plugin = Domain.getPlugin("deepqs_plugin")._pluginInstance   # set when Scipion loads the plugin
    return {t.name: t for t in plugin.getTemplates()}


def test_templates_are_discovered():
    from pyworkflow.template import TemplateList

    names = set(_templates())
    assert names == {"deepqs_map_model_quality", "deepqs_picking"}
    listed = TemplateList()
    listed.addPluginTemplates()
    assert {t.getObjId() for t in listed.templates} >= {"deepqs_plugin-deepqs_map_model_quality",
                                                        "deepqs_plugin-deepqs_picking"}
    for t in _templates().values():
        assert len(t.description) > 40


def _run_template(project, template, values, timeout=900):
    template.replaceEnvVariables()
    template.parseContent()
    for alias, value in values.items():
        assert template.setParamValue(alias, str(value)), alias
    path = template.createTemplateFile()
    protocols = project.loadProtocols(path)
    runs = sorted(protocols.values(), key=lambda p: p.getObjId())
    # in workflow order (the template's order), each after the ones it reads from
    return [launch(project, project.getProtocol(prot.getObjId()), timeout=timeout) for prot in runs]


def test_map_model_quality_template_runs(project, tmp_path):
    st = build_protein_model(n_residues=40, seed=21)
    m = write_simulated_map(str(tmp_path / "map"), st, voxel_size=1.5, resolution=5.0, seed=21)
    from deepqs.io import read_map
    threshold = float(np.percentile(read_map(m["map"]).data, 97))
    done = _run_template(project, _templates()["deepqs_map_model_quality"],
                         {"map": m["map"], "half1": m["half_maps"][0], "half2": m["half_maps"][1],
                          "model": m["model"], "voxel": 1.5, "resolution": 5.0, "threshold": threshold})
    assert all(p.isFinished() for p in done), [(p.getRunName(), p.getErrorMessage()) for p in done]
    report = next(p for p in done if p.getClassName() == "ProtDeepQsValidate").loadReport()
    assert report["levels"] == ["0", "1", "A"]


def test_picking_template_runs(project, tmp_path):
    mics = write_simulated_micrographs(str(tmp_path / "mics"), build_protein_model(n_residues=80, seed=22), n=2,
                                       size=(512, 512), pixel_size=2.0, particles=12, seed=22)
    done = _run_template(project, _templates()["deepqs_picking"],
                         {"micrographs": mics["folder"], "coordinates": mics["coordinates"], "pixel": 2.0,
                          "diameter": mics["particle_diameter_A"]})
    assert all(p.isFinished() for p in done), [(p.getRunName(), p.getErrorMessage()) for p in done]
    prune = next(p for p in done if p.getClassName() == "ProtPickerOptimizer")
    assert prune.nKept.get() + prune.nRejected.get() > 0
    extract = next(p for p in done if p.getClassName() == "ProtDeepQsExtractParticles")
    # the kept picks become particles (minus boxes running off the micrographs, counted)
    assert extract.outputParticles.getSize() + extract.nSkipped.get() == prune.nKept.get() > 0
