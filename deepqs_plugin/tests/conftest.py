"""Fixtures for protocol tests: a fresh headless Scipion project per test module."""

import os
import shutil
import time
import uuid

import pytest


@pytest.fixture(scope="module")
def project(request):
    """A new Scipion project (cwd set to it); removed afterwards unless DEEPQS_KEEP_PROJECTS is set."""
    from pyworkflow.project import Manager

    manager = Manager()
    name = "test_%s_%s" % (request.module.__name__.rsplit(".", 1)[-1], uuid.uuid4().hex[:8])
    cwd = os.getcwd()
    manager.createProject(name)
    proj = manager.loadProject(name)  # loading also enters the project folder
    yield proj
    os.chdir(cwd)
    if not os.environ.get("DEEPQS_KEEP_PROJECTS"):
        shutil.rmtree(proj.getPath(), ignore_errors=True)


def launch(project, protocol, timeout=600):
    """Launch ``protocol`` and wait for it; return it re-read from the project database."""
    project.launchProtocol(protocol, wait=True)
    deadline = time.time() + timeout
    while protocol.isActive() and time.time() < deadline:  # queued protocols return at once
        time.sleep(1)
        protocol = project.getProtocol(protocol.getObjId())
    return project.getProtocol(protocol.getObjId())


def import_volume(project, path, sampling, **kwargs):
    """Import a map file as a Scipion Volume with pwem's own import protocol."""
    from pwem.protocols import ProtImportVolumes

    prot = project.newProtocol(ProtImportVolumes, filesPath=os.path.abspath(path), samplingRate=sampling, **kwargs)
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    return prot
