"""GPU jobs through Scipion's queue system against a real SLURM on localhost (issue 8).

``.ci/slurm.sh`` installs and starts a one-node SLURM (munge, slurmctld, slurmd; 2 GRES GPUs on
fake device files).  These tests write a SLURM ``hosts.conf``, create a project with it and run:

1. a whole protocol submitted to the queue (``QUEUE_FOR_JOBS=N``);
2. a GPU protocol whose engine jobs are submitted one by one (``QUEUE_FOR_JOBS=Y``): the job
   files exist, SLURM gave the job a GPU (``CUDA_VISIBLE_DEVICES`` set by SLURM, never by us) and
   the engine got device ``cuda:0`` (Scipion renumbers queued GPUs from 0);
3. cancellation with ``stopProtocol``: the job leaves the queue and the protocol is aborted.

They skip (with the reason) when not root or when SLURM cannot start; with
``DEEPQS_REQUIRE_SLURM=1`` (set by ``.ci/run``) a skip becomes a failure, so CI runs them.
"""

import glob
import os
import subprocess
import time
import uuid

import pytest
from pwem import Domain

from deepqs_plugin.tests.conftest import import_volume, wait_until_inactive

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, ".ci", "slurm.sh")
SLURM_DIR = os.environ.get("DEEPQS_SLURM_DIR", "/tmp/deepqs-slurm")
SLURM_CONF = os.path.join(SLURM_DIR, "slurm.conf")

HOSTS_CONF = """\
[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = SLURM
MANDATORY = False
SUBMIT_PREFIX = scipion
SUBMIT_COMMAND = SLURM_CONF={conf} sbatch %_(JOB_SCRIPT)s
CANCEL_COMMAND = SLURM_CONF={conf} scancel %_(JOB_ID)s
CHECK_COMMAND = SLURM_CONF={conf} squeue -h -j %_(JOB_ID)s
SUBMIT_TEMPLATE = #!/bin/bash
    #SBATCH -J %_(JOB_NAME)s
    #SBATCH -o %_(JOB_LOGS)s.out
    #SBATCH -e %_(JOB_LOGS)s.err
    #SBATCH -p %_(JOB_QUEUE)s
    #SBATCH --ntasks=%_(JOB_NODES)d
    #SBATCH --cpus-per-task=%_(JOB_THREADS)d
    #SBATCH --mem=%_(JOB_MEMORY)sM
    #SBATCH --gres=gpu:%_(GPU_COUNT)s
    echo "deepqs queue job $SLURM_JOB_ID on $(hostname): CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-unset}}"
    %_(JOB_COMMAND)s
QUEUES = {{"debug": [["JOB_MEMORY", "1024", "Memory (MB)", "Memory of each job"], ["QUEUE_FOR_JOBS", "N", "Use queue for jobs", "Send each engine job to the queue instead of the whole protocol"]]}}
QUEUES_DEFAULT = {{"JOB_GPUS": "0"}}
"""


def _slurm_up():
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=dict(os.environ, SLURM_CONF=SLURM_CONF),
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "allocated"))


@pytest.fixture(scope="module")
def slurm():
    required = os.environ.get("DEEPQS_REQUIRE_SLURM") == "1"
    give_up = pytest.fail if required else pytest.skip
    if os.geteuid() != 0:
        give_up("the SLURM tests need root (they start munged, slurmctld and slurmd)")
    started = False
    if not _slurm_up():
        run = subprocess.run(["bash", SCRIPT, "start"], capture_output=True, text=True, timeout=180)
        if run.returncode != 0 or not _slurm_up():
            give_up("SLURM could not start: %s" % (run.stderr.strip().splitlines() or ["no message"])[-1])
        started = True
    yield SLURM_CONF
    if started:
        subprocess.run(["bash", SCRIPT, "stop"], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def queue_project(slurm, tmp_path_factory):
    from pyworkflow.project import Manager

    import pyworkflow as pw

    hosts = tmp_path_factory.mktemp("hosts") / "hosts.conf"
    hosts.write_text(HOSTS_CONF.format(conf=slurm))
    # As at a facility, the SLURM hosts.conf is the installation's: every project Scipion opens
    # (also the copies it loads from run databases to update a protocol) sees the queue.
    saved_hosts, saved_env = pw.Config.SCIPION_HOSTS, os.environ.get("SCIPION_HOSTS")
    # this process and the protocol processes it starts
    pw.Config.SCIPION_HOSTS = os.environ["SCIPION_HOSTS"] = str(hosts)
    manager = Manager()
    name = "test_queue_slurm_%s" % uuid.uuid4().hex[:8]
    cwd = os.getcwd()
    manager.createProject(name)
    project = manager.loadProject(name)
    assert project.getHostConfig("localhost").getSubmitTemplate(), "hosts.conf not loaded"
    yield project
    pw.Config.SCIPION_HOSTS = saved_hosts
    if saved_env is None:
        os.environ.pop("SCIPION_HOSTS", None)
    else:
        os.environ["SCIPION_HOSTS"] = saved_env
    os.chdir(cwd)


def _squeue(job_id):
    out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], env=dict(os.environ, SLURM_CONF=SLURM_CONF),
                         capture_output=True, text=True)
    return out.stdout.strip()


def _job_log(script, flag):
    """The file named by ``#SBATCH -o`` / ``-e`` in a submission script."""
    line = next(l for l in script.splitlines() if l.startswith("#SBATCH %s " % flag))
    return line.split(None, 2)[2].strip()


def _to_queue(prot, for_jobs):
    prot._useQueue.set(True)
    prot.setQueueParams(["debug", {"JOB_MEMORY": "1024", "QUEUE_FOR_JOBS": "Y" if for_jobs else "N"}])


def _wait(project, prot, timeout=600):
    """``launchProtocol`` does not wait for queued protocols: poll the run's own database."""
    return wait_until_inactive(project, [prot], timeout=timeout, poll=2.0)[0]


@pytest.fixture(scope="module")
def volume(queue_project, tmp_path_factory):
    from deepqs.io import atoms_from_structure, write_map
    from deepqs.simulate import build_protein_model, simulate_map

    folder = tmp_path_factory.mktemp("qmap")
    sim = simulate_map(atoms_from_structure(build_protein_model(n_residues=30, seed=4)), voxel_size=1.5,
                       resolution=5.0, seed=4)
    write_map(folder / "map.mrc", sim.map)
    return import_volume(queue_project, folder / "map.mrc", 1.5).outputVolume


def test_whole_protocol_runs_as_one_slurm_job(queue_project, volume):
    prot = queue_project.newProtocol(Domain.getProtocols()["ProtDeepQsMapStats"], inputVolume=volume)
    _to_queue(prot, for_jobs=False)
    queue_project.launchProtocol(prot)
    assert prot.useQueueForProtocol() and prot.getJobIds(), "the protocol was not submitted"
    job = prot.getJobIds()[0]
    prot = _wait(queue_project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    scripts = glob.glob(os.path.join(queue_project.getPath(), prot.getWorkingDir(), "logs", "scipion*.job"))
    assert scripts, "no submission script"
    text = open(scripts[0]).read()
    assert "#SBATCH -J %s" % prot.strId() in text and "pw_protocol_run.py" in text
    out = open(os.path.join(queue_project.getPath(), _job_log(text, "-o"))).read()
    assert "deepqs queue job %s" % job in out
    assert prot.mapStats.getJsonFile()


def test_gpu_protocol_jobs_go_to_the_queue_one_by_one(queue_project, volume):
    prot = queue_project.newProtocol(Domain.getProtocols()["ProtDeepQsPredict"], inputVolume=volume)
    prot.gpuList.set("1")   # the GPU the user chose; in the queue SLURM picks it and Scipion renumbers it 0
    _to_queue(prot, for_jobs=True)
    queue_project.launchProtocol(prot)
    prot = _wait(queue_project, prot)
    assert prot.isFinished(), prot.getErrorMessage()
    logs = os.path.join(queue_project.getPath(), prot.getWorkingDir(), "logs")
    jobs = sorted(glob.glob(os.path.join(logs, "*-*-*.job")))
    assert len(jobs) == 1, os.listdir(logs)          # one engine job: localq predict
    script = open(jobs[0]).read()
    assert "localq predict" in script and "--device cuda:0" in script   # renumbered from 0
    assert "CUDA_VISIBLE_DEVICES=" not in script.split("echo", 1)[0]   # we never set it ourselves
    out = open(_job_log(script, "-o")).read()
    seen = out.split("CUDA_VISIBLE_DEVICES=")[1].split()[0]
    assert seen != "unset", "SLURM gave the job no GPU"
    err = open(_job_log(script, "-e")).read()
    import torch
    if not torch.cuda.is_available():   # fake GPUs: the engine says it runs on the CPU
        assert "running on the CPU" in err
    assert os.path.exists(prot.localQ.getFileName())


def test_stop_protocol_cancels_its_slurm_job(queue_project, volume, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    prot = queue_project.newProtocol(Domain.getProtocols()["ProtDeepQsTrain"], examples=5000, epochs=50,
                                     structuresFolder=str(empty), validation=2, crop=16, base=4, depth=2)
    _to_queue(prot, for_jobs=False)
    queue_project.launchProtocol(prot)
    job = prot.getJobIds()[0]
    deadline = time.time() + 120
    while _squeue(job) != "RUNNING" and time.time() < deadline:
        time.sleep(1)
    assert _squeue(job) == "RUNNING"
    prot = queue_project.getProtocol(prot.getObjId())
    queue_project.stopProtocol(prot)
    deadline = time.time() + 60
    while _squeue(job) not in ("", "COMPLETED", "CANCELLED") and time.time() < deadline:
        time.sleep(1)
    assert _squeue(job) in ("", "CANCELLED"), "the job is still queued"
    assert queue_project.getProtocol(prot.getObjId()).isAborted()


def test_a_failing_queued_job_fails_the_protocol_with_the_engine_message(queue_project, volume):
    # A job sent to the queue on its own reports no exit status to Scipion: the protocol checks
    # the job's outputs and takes the engine's error line from the job's error log.
    prot = queue_project.newProtocol(Domain.getProtocols()["ProtDeepQsPredict"], inputVolume=volume,
                                     maskMode=1, threshold=1e6)
    prot.gpuList.set("0")
    _to_queue(prot, for_jobs=True)
    queue_project.launchProtocol(prot)
    prot = _wait(queue_project, prot)
    assert prot.isFailed()
    assert "molecular mask" in prot.getErrorMessage() and "is empty" in prot.getErrorMessage()
