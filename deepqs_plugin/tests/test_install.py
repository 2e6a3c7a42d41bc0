"""Facility installs: the plugin installs with ``scipion installp -p <path> --devel`` and from a
wheel into an environment that has Scipion and the dependencies but not this package, and
``scipion inspect deepqs_plugin`` then loads every part of it.

The clean environments are virtual environments whose only extra path is a folder of links to
this environment's installed packages minus this one: no download, same versions.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OWN = ("deepqs", "scipion_em_deepqs", "scipion-em-deepqs", "__editable__.scipion_em_deepqs",
       "__editable___scipion_em_deepqs")
SKIP_COPY = shutil.ignore_patterns(".git", ".venv", ".scipion", "build", "dist", "*.egg-info", "__pycache__",
                                   ".pytest_cache", "demo_output")


def _bare_env(root):
    """A virtual environment seeing every installed dependency but not scipion-em-deepqs."""
    site = sysconfig.get_paths()["purelib"]
    farm = os.path.join(root, "deps")
    os.makedirs(farm)
    for name in os.listdir(site):
        if not name.startswith(OWN):
            os.symlink(os.path.join(site, name), os.path.join(farm, name))
    env = os.path.join(root, "env")
    venv.EnvBuilder(with_pip=False).create(env)
    python = os.path.join(env, "bin", "python")
    env_site = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       text=True).strip()
    with open(os.path.join(env_site, "deps.pth"), "w") as fh:
        fh.write(farm + "\n")
    return env, python


def _run(cmd, env_dir, home, **kwargs):
    """Run in the environment, from the Scipion home folder: ``python -m`` puts the working folder
    on sys.path, and a source checkout there (with its .egg-info) would shadow the install."""
    environ = dict(os.environ, SCIPION_HOME=home, PATH=os.path.join(env_dir, "bin") + os.pathsep + os.environ["PATH"])
    environ.pop("PYTHONPATH", None)
    return subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=600, cwd=home, **kwargs)


def _source_copy(root):
    """The source tree under a folder named like the pip package (what ``installp --devel`` expects)."""
    src = os.path.join(root, "scipion-em-deepqs")
    shutil.copytree(REPO, src, ignore=SKIP_COPY)
    return src


def _check_installed(python, env_dir, home, expect_under):
    # the packages come from the new install, not from the test's environment
    out = _run([python, "-c", "import deepqs, deepqs_plugin; print(deepqs.__file__); print(deepqs_plugin.__file__)"],
               env_dir, home)
    assert out.returncode == 0, out.stderr
    assert all(line.startswith(expect_under) for line in out.stdout.split()), out.stdout
    # scipion inspect: every sub-module loads (the plugin has no wizards)
    out = _run([python, "-m", "scipion", "inspect", "deepqs_plugin"], env_dir, home)
    assert out.returncode == 0, out.stdout + out.stderr
    for sub in ("constants", "convert", "protocols", "viewers", "tests"):
        assert ">>> %s:  loaded" % sub in out.stdout, out.stdout
    assert "error" not in out.stdout.lower()
    # what `scipion inspect deepqs_plugin info` lists (its PyPI lookup left out: no network needed)
    listing = ("import deepqs_plugin, pwem\n"
               "from scipion.install.inspect_plugins import showProtocols, showReferences, showViewers\n"
               "assert not showReferences(False, deepqs_plugin, 'deepqs_plugin')\n"
               "assert not showProtocols(False, deepqs_plugin, 'deepqs_plugin', False)\n"
               "assert not showViewers(False, deepqs_plugin, 'deepqs_plugin')\n"
               "print('PLUGINS', sorted(pwem.Domain.getPlugins()))\n")
    out = _run([python, "-c", listing], env_dir, home)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "'deepqs_plugin'" in out.stdout.split("PLUGINS", 1)[1]             # found through its entry point
    for name in ("ProtDeepQsQScore", "ProtDeepQsPredict", "ProtDeepQsTrain", "ProtDeepEMTrain", "ProtDeepEMPick",
                 "ProtPickerOptimizer", "ProtDeepQsValidate", "DeepQsLocalQViewer", "DeepEMPickViewer",
                 "DeepQsPruningViewer", "Pintilie", "Zhu"):
        assert name in out.stdout, name
    # the engine's command line and its shipped weights, templates and protocol tree
    out = _run([os.path.join(env_dir, "bin", "deepqs"), "--help"], env_dir, home)
    assert out.returncode == 0 and "qscore" in out.stdout, out.stderr
    files = ("import os, deepqs, deepqs_plugin\n"
             "d, p = os.path.dirname(deepqs.__file__), os.path.dirname(deepqs_plugin.__file__)\n"
             "for f in ('weights/localq_default.pt', 'weights/picking_default.pt', 'weights/pruning_default.pt'):\n"
             "    assert os.path.getsize(os.path.join(d, f)) > 10000, f\n"
             "assert os.path.exists(os.path.join(p, 'protocols.conf'))\n"
             "assert len([f for f in os.listdir(os.path.join(p, 'templates')) if f.endswith('.json.template')]) >= 2\n")
    out = _run([python, "-c", files], env_dir, home)
    assert out.returncode == 0, out.stderr


@pytest.fixture
def scipion_home(tmp_path):
    home = tmp_path / "scipion_home"
    home.mkdir()
    return str(home)


def test_installp_devel_from_a_source_folder(tmp_path, scipion_home):
    env_dir, python = _bare_env(str(tmp_path))
    src = _source_copy(str(tmp_path))
    out = _run([python, "-m", "scipion", "installp", "-p", src, "--devel"], env_dir, scipion_home)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "ERROR" not in out.stdout, out.stdout[-3000:]
    _check_installed(python, env_dir, scipion_home, src)


def test_install_from_a_wheel(tmp_path, scipion_home):
    src = _source_copy(str(tmp_path))
    dist = str(tmp_path / "dist")
    out = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    wheels = [os.path.join(dist, f) for f in os.listdir(dist) if f.endswith(".whl")]
    assert len(wheels) == 1
    env_dir, python = _bare_env(str(tmp_path / "w"))
    out = _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheels[0]], env_dir, scipion_home)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    shutil.rmtree(src)                       # nothing may come from the source tree any more
    env_site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env_dir,
                    scipion_home).stdout.strip()
    _check_installed(python, env_dir, scipion_home, env_site)
