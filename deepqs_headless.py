"""A project-local, display-free Scipion installation for tests, the demo and scripts.

This module sits outside ``deepqs_plugin`` on purpose: importing the plugin imports Scipion,
which must not happen before the environment is set.

Scipion reads its configuration from environment variables when ``pyworkflow`` is first
imported, so :func:`activate` must run before any ``pyworkflow``/``pwem`` import.  It creates

    <home>/config/scipion.conf   (empty: defaults are fine)
    <home>/config/hosts.conf     (one 'localhost' host, no queue)
    <home>/data/                  (SCIPION_USER_DATA: projects, logs)

and points Scipion at them, with ``SCIPION_DOMAIN=pwem`` and this interpreter as Scipion's
Python, so that protocols launched in a subprocess see the same environment.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Optional

HOSTS_CONF = """\
[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = SCIPION_LOCALHOST
MANDATORY = False
SUBMIT_COMMAND =
CANCEL_COMMAND =
CHECK_COMMAND =
"""


def default_home() -> str:
    """``$DEEPQS_SCIPION_HOME``, else ``.scipion`` in the repository (or the current folder)."""
    if os.environ.get("DEEPQS_SCIPION_HOME"):
        return os.path.abspath(os.environ["DEEPQS_SCIPION_HOME"])
    repo = os.path.dirname(os.path.abspath(__file__))
    base = repo if os.path.exists(os.path.join(repo, "setup.py")) else os.getcwd()
    return os.path.join(base, ".scipion")


def scipion_environment(home: str) -> Dict[str, str]:
    """Environment variables of a headless Scipion installation rooted at ``home``."""
    return {
        "SCIPION_HOME": home,
        "SCIPION_USER_DATA": os.path.join(home, "data"),
        "SCIPION_CONFIG": os.path.join(home, "config", "scipion.conf"),
        "SCIPION_LOCAL_CONFIG": os.path.join(home, "config", "scipion.conf"),
        "SCIPION_HOSTS": os.path.join(home, "config", "hosts.conf"),
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_PYTHON": sys.executable,
        "SCIPION_TESTS": os.path.join(home, "data", "tests"),
        "SCIPION_NOTES_FILE": "notes.txt",
        "SCIPION_NOTIFY": "False",
        "MPLBACKEND": "Agg",
    }


def activate(home: Optional[str] = None, hosts_conf: Optional[str] = None) -> str:
    """Create (if needed) and select the headless Scipion home; return its path.

    ``hosts_conf`` replaces the default localhost ``hosts.conf`` (e.g. a SLURM one).
    The interpreter's folder goes first on ``PATH`` so that the ``deepqs`` command and
    Scipion's subprocesses use the same environment.
    """
    if "pyworkflow" in sys.modules and os.environ.get("SCIPION_HOME") != (home or default_home()):
        # Scipion already read another configuration; changing variables now would be ignored.
        raise RuntimeError("deepqs_headless.activate() must run before pyworkflow is imported")
    home = os.path.abspath(home or default_home())
    env = scipion_environment(home)
    os.makedirs(os.path.dirname(env["SCIPION_CONFIG"]), exist_ok=True)
    os.makedirs(env["SCIPION_USER_DATA"], exist_ok=True)
    if not os.path.exists(env["SCIPION_CONFIG"]):
        with open(env["SCIPION_CONFIG"], "w") as fh:
            fh.write("[PYWORKFLOW]\n")
    with open(env["SCIPION_HOSTS"], "w") as fh:
        fh.write(hosts_conf if hosts_conf is not None else HOSTS_CONF)
    os.environ.update(env)
    bindir = os.path.dirname(sys.executable)
    if not os.environ.get("PATH", "").startswith(bindir + os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return home


def main(argv=None) -> int:
    """``python -m deepqs_headless demo [--out DIR]``: the Scipion demo in a headless project."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "demo":
        print("usage: python -m deepqs_headless demo [--out DIR]", file=sys.stderr)
        return 2
    activate()
    from deepqs_plugin.demo import main as demo_main

    return demo_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
