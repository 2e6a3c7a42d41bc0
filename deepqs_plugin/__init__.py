"""Scipion plugin of scipion-em-deepqs.

Protocols are thin: they convert Scipion objects to files, run the ``deepqs`` engine with
``runJob`` (so that jobs can go to a queue and to a GPU) and read the results back into
Scipion objects.  The engine itself is the ``deepqs`` package.
"""

import os
import shlex
import sys

import pwem
from pyworkflow.utils import Environ

from deepqs import __version__  # the plugin and the engine share one version
from .constants import DEEPQS_ENV_ACTIVATION, DEEPQS_PYTHON, DEEPQS_WEIGHTS_DIR

_logo = "deepqs_logo.png"
_references = ["Zhu2017", "Li2022", "Pintilie2020", "DeepQs", "Sorzano2022"]


class Plugin(pwem.Plugin):
    """The DeepQs suite: DeepEM picking, PickerOptimizer pruning, Q-score, DeepQs, validation."""

    _url = "https://github.com/scipion-em/scipion-em-deepqs"
    _processingField = ["SPA", "MODELLING"]

    @classmethod
    def _defineVariables(cls):
        cls._defineVar(DEEPQS_PYTHON, sys.executable,
                       description="Python interpreter with the deepqs engine installed "
                                   "(default: the one running Scipion).")
        cls._defineVar(DEEPQS_ENV_ACTIVATION, "",
                       description="Optional shell command run before the engine, e.g. "
                                   "'conda activate deepqs' on GPU nodes.")
        cls._defineVar(DEEPQS_WEIGHTS_DIR, "",
                       description="Optional folder whose localq_default.pt, picking_default.pt or "
                                   "pruning_default.pt replace the shipped weights (e.g. retrained for "
                                   "a facility's microscopes); empty: the shipped weights.")

    @classmethod
    def getEnviron(cls):
        """Environment for engine jobs: Scipion's own, with the plugin's variables exported."""
        env = Environ(os.environ)
        env.update({"PYTHONUNBUFFERED": "1"})
        weights = (cls.getVar(DEEPQS_WEIGHTS_DIR) or "").strip()
        if weights:
            env["DEEPQS_WEIGHTS_DIR"] = weights   # read by deepqs.io.weights.default_weights_file
        return env

    @classmethod
    def getProgram(cls) -> str:
        """The shell command that runs the engine's command line (``python -m deepqs``)."""
        program = "%s -m deepqs" % shlex.quote(cls.getVar(DEEPQS_PYTHON) or sys.executable)
        activation = (cls.getVar(DEEPQS_ENV_ACTIVATION) or "").strip()
        if activation:
            program = "%s && %s" % (activation, program)
        return program

    @classmethod
    def defineBinaries(cls, env):
        """Declare (never build at definition time) an optional separate engine environment.

        The engine is a Python package installed with the plugin, so nothing is required.  A
        facility that wants the engine in its own environment (e.g. with a CUDA build of torch
        on GPU nodes) can install the package ``deepqs-engine`` with ``scipion installb
        deepqs-engine`` and point ``DEEPQS_PYTHON`` at ``<EM_ROOT>/deepqs-engine-<version>/env/bin/python``.
        """
        python = shlex.quote(sys.executable)
        commands = [("%s -m venv env && env/bin/pip install --upgrade pip && env/bin/pip install 'torch' "
                     "'scipion-em-deepqs==%s'" % (python, __version__), "env/bin/python")]
        env.addPackage("deepqs-engine", version=__version__, tar="void.tgz", commands=commands,
                       neededProgs=[], default=False)
