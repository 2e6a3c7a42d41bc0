"""Scipion objects the DeepQs plugin outputs."""

import json

import pyworkflow.object as pwobj
from pwem.objects import EMObject


class MapStatistics(EMObject):
    """Header and value statistics of one map: voxel size and origin in Å, box in voxels."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._jsonFile = pwobj.String()
        self._histogramFile = pwobj.String()
        self.voxelSize = pwobj.String()   # "x, y, z" in Å/voxel
        self.box = pwobj.String()         # "nx, ny, nz" in voxels
        self.origin = pwobj.String()      # "x, y, z" in Å
        self.minimum = pwobj.Float()
        self.maximum = pwobj.Float()
        self.mean = pwobj.Float()
        self.std = pwobj.Float()

    def setJsonFile(self, path):
        self._jsonFile.set(path)

    def getJsonFile(self):
        return self._jsonFile.get()

    def setHistogramFile(self, path):
        self._histogramFile.set(path)

    def getHistogramFile(self):
        return self._histogramFile.get()

    def loadJson(self) -> dict:
        """The engine's full JSON summary."""
        with open(self.getJsonFile()) as fh:
            return json.load(fh)

    def fillFromSummary(self, summary: dict):
        """Copy the figures of a ``deepqs info --json`` map summary into this object."""
        fmt = lambda values: ", ".join("%g" % v for v in values)
        self.voxelSize.set(fmt(summary["voxel_size_A"]))
        self.box.set(fmt(summary["grid_size_xyz"]))
        self.origin.set(fmt(summary["origin_A"]))
        self.minimum.set(summary["min"])
        self.maximum.set(summary["max"])
        self.mean.set(summary["mean"])
        self.std.set(summary["std"])

    def __str__(self):
        return "MapStatistics (box %s, %s Å/voxel)" % (self.box.get(), self.voxelSize.get())
