"""Scipion finds the plugin, its protocols, viewers, references and protocol tree entries."""

import configparser
import json
import os

from pwem import Domain

import deepqs_plugin


def test_domain_discovers_plugin():
    assert "deepqs_plugin" in Domain.getPlugins()
    module = Domain.getPlugin("deepqs_plugin")
    assert module is deepqs_plugin
    assert isinstance(module._pluginInstance, deepqs_plugin.Plugin)
    assert deepqs_plugin.__version__


def test_protocols_and_viewers_discovered():
    protocols = Domain.getProtocols()
    assert "ProtDeepQsMapStats" in protocols
    assert protocols["ProtDeepQsMapStats"]._package is deepqs_plugin
    assert "DeepQsMapStatsViewer" in Domain.getViewers()


def test_references_are_in_bibtex():
    bib = deepqs_plugin._bibtex
    for key in deepqs_plugin._references:
        assert key in bib, key
    assert bib["Pintilie2020"]["journal"] == "Nature Methods"
    assert bib["Zhu2017"]["pages"] == "348"
    assert bib["Sorzano2022"]["volume"] == "240"


def test_engine_command_runs_the_package():
    program = deepqs_plugin.Plugin.getProgram()
    assert program.endswith("-m deepqs")


def _conf_protocol_values(node, out):
    if isinstance(node, dict):
        if node.get("tag") == "protocol":
            out.append(node["value"])
        for child in node.get("children", []):
            _conf_protocol_values(child, out)
    else:
        for child in node:
            _conf_protocol_values(child, out)
    return out


def test_protocols_conf_lists_every_protocol():
    conf = configparser.ConfigParser()
    conf.optionxform = str
    conf.read(os.path.join(os.path.dirname(deepqs_plugin.__file__), "protocols.conf"))
    tree = json.loads(conf.get("PROTOCOLS", "Protocols SPA"))
    assert tree[0]["text"] == "DeepQs"
    listed = set(_conf_protocol_values(tree, []))
    ours = {name for name, cls in Domain.getProtocols().items() if cls._package is deepqs_plugin}
    assert ours and ours <= listed


def test_every_citation_formats():
    """Scipion formats each reference (needs author, journal, year) without an error."""
    from pyworkflow.protocol import Protocol

    prot = Protocol()
    for key, cite in deepqs_plugin._bibtex.items():
        text = prot._getCiteText(cite)
        assert "Error with citation" not in text, key
        assert cite["year"] in text


def test_weights_folder_variable_reaches_the_engine_jobs(monkeypatch, tmp_path):
    from deepqs_plugin.constants import DEEPQS_WEIGHTS_DIR

    plugin = deepqs_plugin.Plugin
    assert DEEPQS_WEIGHTS_DIR in plugin._vars
    assert "DEEPQS_WEIGHTS_DIR" not in plugin.getEnviron() or os.environ.get("DEEPQS_WEIGHTS_DIR")
    monkeypatch.setitem(plugin._vars, DEEPQS_WEIGHTS_DIR, str(tmp_path))
    assert plugin.getEnviron()["DEEPQS_WEIGHTS_DIR"] == str(tmp_path)


def test_define_binaries_only_declares_an_optional_engine_environment():
    calls = []

    class RecordingEnv:
        def addPackage(self, name, **kwargs):
            calls.append((name, kwargs))

    deepqs_plugin.Plugin.defineBinaries(RecordingEnv())
    assert [c[0] for c in calls] == ["deepqs-engine"]
    kwargs = calls[0][1]
    assert kwargs["default"] is False and kwargs["version"] == deepqs_plugin.__version__
    command, target = kwargs["commands"][0]
    assert "scipion-em-deepqs==%s" % deepqs_plugin.__version__ in command and target == "env/bin/python"
