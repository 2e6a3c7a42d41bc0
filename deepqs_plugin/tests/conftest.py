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


def status_in_run_db(project, protocol):
    """The status the protocol's own process last wrote to its run database.

    Unlike ``project._updateProtocol`` this never checks whether the process is alive: that check
    races with a process that writes "finished" and exits between the project's read of the run
    database and its time stamp, and then marks a finished protocol as failed."""
    from pyworkflow.protocol.protocol import getProtocolFromDb

    prot = getProtocolFromDb(project.getPath(), protocol.getDbPath(), protocol.getObjId())
    try:
        return prot.getStatus()
    finally:
        prot.getProject().closeMapper()
        prot.closeMappers()


def wait_until_inactive(project, protocols, timeout=600, poll=1.0):
    """Wait until none of ``protocols`` is active according to its own run database, then return
    them synchronised into the project (a dead process that never wrote a final status is still
    caught then: the project marks it failed)."""
    from pyworkflow.protocol.constants import ACTIVE_STATUS

    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(status_in_run_db(project, p) not in ACTIVE_STATUS for p in protocols):
            break
        time.sleep(poll)
    out = []
    for p in protocols:
        p = project.getProtocol(p.getObjId())
        project._updateProtocol(p)
        out.append(project.getProtocol(p.getObjId()))
    return out


def import_volume(project, path, sampling, **kwargs):
    """Import a map file as a Scipion Volume with pwem's own import protocol."""
    from pwem.protocols import ProtImportVolumes

    prot = project.newProtocol(ProtImportVolumes, filesPath=os.path.abspath(path), samplingRate=sampling, **kwargs)
    prot = launch(project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    return prot
