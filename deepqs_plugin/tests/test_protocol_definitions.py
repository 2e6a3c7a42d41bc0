"""Every protocol of the plugin is complete for the GUI: a label, help on every parameter, its own
summary, methods, citations, validation, and declared outputs; viewers exist for the ones that
produce figures; GPU protocols declare GPU_LIST."""

import pytest
import pyworkflow.protocol.params as params
from pwem import Domain
from pwem.protocols import EMProtocol

import deepqs_plugin

OURS = sorted((name, cls) for name, cls in Domain.getProtocols().items()
              if cls.__module__.startswith("deepqs_plugin.") and getattr(cls, "_label", None))
GPU = {"ProtDeepQsPredict", "ProtDeepQsTrain", "ProtDeepEMTrain", "ProtDeepEMPick", "ProtDeepQsQScore", "ProtPickerOptimizer", "ProtDeepQsValidate"}
WITH_VIEWER = {"ProtDeepQsMapStats", "ProtDeepQsQScore", "ProtDeepQsPredict", "ProtDeepQsTrain", "ProtDeepEMPick"}


def test_the_plugin_has_its_protocols():
    assert {n for n, _ in OURS} >= GPU | WITH_VIEWER | {"ProtDeepQsImportCoordinates"}


@pytest.mark.parametrize("name,cls", OURS, ids=[n for n, _ in OURS])
def test_protocol_is_complete(project, name, cls):
    prot = project.newProtocol(cls)
    missing = [p for sec in prot._definition.iterSections() for p, param in sec.iterParams()
               if not isinstance(param, params.LabelParam) and not (param.help.get() or "").strip()]
    assert missing == [], f"{name}: parameters without help: {missing}"
    for method in ("_summary", "_methods", "_citations", "_validate", "_warnings"):
        assert getattr(cls, method) is not getattr(EMProtocol, method), f"{name} does not define {method}"
    assert cls._possibleOutputs, name
    assert isinstance(prot.summary(), list) and prot.summary(), name   # says something before running
    assert all(key in deepqs_plugin._bibtex for key in prot._citations())
    if name in GPU:
        assert prot.allowsGpu() and prot.getAttributeValue(params.GPU_LIST) == "0", name


def test_viewers_target_the_protocols_with_figures():
    targets = {t.__name__ for v in Domain.getViewers().values() if v.__module__.startswith("deepqs_plugin.")
               for t in getattr(v, "_targets", [])}
    assert WITH_VIEWER <= targets


@pytest.mark.parametrize("name", sorted(GPU))
def test_gpu_protocols_refuse_more_gpus_than_engine_jobs(project, name):
    prot = project.newProtocol(Domain.getProtocols()[name])
    prot.useGpu.set(True)
    prot.gpuList.set("0 1")
    assert any("Each engine job uses one GPU" in e for e in prot.validate())
    prot.gpuList.set("1")
    assert not any("GPU" in e for e in prot.validate())
    if hasattr(prot, "numberOfThreads"):
        prot.numberOfThreads.set(2)
        prot.gpuList.set("0 1")          # one GPU per thread: fine
        assert not any("GPU" in e for e in prot.validate())
