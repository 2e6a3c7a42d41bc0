"""scipion-em-deepqs: deep-learning quality control for cryo-EM, as a Scipion plugin suite."""

import os
import re

from setuptools import find_packages, setup
from setuptools.command.egg_info import egg_info

HERE = os.path.abspath(os.path.dirname(__file__))


def read_version() -> str:
    with open(os.path.join(HERE, "deepqs", "__init__.py"), encoding="utf-8") as fh:
        return re.search(r'^__version__ = "([^"]+)"', fh.read(), re.M).group(1)


with open(os.path.join(HERE, "README.rst"), encoding="utf-8") as fh:
    LONG_DESCRIPTION = fh.read()



class egg_info_plugin_first(egg_info):
    """Write top_level.txt with the Scipion plugin package first.

    ``scipion installp -p <path> --devel`` takes the first line of top_level.txt as the plugin's
    package; this distribution also holds the engine (``deepqs``), which sorts before it.
    """

    def run(self):
        super().run()
        path = os.path.join(self.egg_info, "top_level.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                names = fh.read().split()
            names = ["deepqs_plugin"] + [n for n in names if n != "deepqs_plugin"]
            with open(path, "w", encoding="utf-8") as fh:
                fh.write("\n".join(names) + "\n")


setup(
    name="scipion-em-deepqs",
    cmdclass={"egg_info": egg_info_plugin_first},
    version=read_version(),
    description="Deep-learning quality control for cryo-EM (DeepEM picking, PickerOptimizer pruning, "
    "Q-score, DeepQs local quality, validation levels) as a Scipion plugin and a command-line engine",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/x-rst",
    license="GPLv3",
    python_requires=">=3.8",
    packages=find_packages(include=["deepqs", "deepqs.*", "deepqs_plugin", "deepqs_plugin.*"]),
    py_modules=["deepqs_headless"],
    include_package_data=True,
    package_data={
        "deepqs": ["weights/*.pt", "weights/*.json", "weights/*.md", "weights/*.png"],
        "deepqs_plugin": ["protocols.conf", "*.png", "templates/*.json.template"],
    },
    install_requires=[
        "numpy>=1.22",
        "scipy>=1.8",
        "mrcfile>=1.4",
        "gemmi>=0.6",
        "matplotlib>=3.5",
        "tqdm>=4.60",
        "starfile>=0.4",
        "torch>=2.0",
    ],
    extras_require={
        "scipion": ["scipion-pyworkflow>=3.0", "scipion-em>=3.0", "scipion-app>=3.0"],
        "test": ["pytest>=7", "build"],
    },
    entry_points={
        "pyworkflow.plugin": ["deepqs_plugin = deepqs_plugin"],
        "console_scripts": ["deepqs = deepqs.cli:main"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Bio-Informatics",
    ],
)
