"""What every DeepQs protocol shares: running the engine's command line as a Scipion job."""

import os
import shlex
import subprocess

import pyworkflow.protocol.params as params
from pwem.protocols import EMProtocol

from deepqs_plugin import Plugin
from deepqs_plugin.constants import ORIGIN_FROM_HEADER, ORIGIN_FROM_SCIPION


def volumeFile(volume) -> str:
    """Path of a Scipion Volume's file, without Scipion's ``:mrc`` format suffix."""
    fn = volume.getFileName()
    return fn[:-4] if fn.endswith(":mrc") else fn


class DeepQsProtocol(EMProtocol):
    """Base class: heavy work goes through :meth:`runEngine`, i.e. ``runJob`` of ``deepqs``,
    so that it can be sent to a queue; the engine's one-line error reaches the user."""

    _label = None  # abstract: not offered in the GUI

    def runEngine(self, arguments):
        """Run ``deepqs <arguments>`` (a list of already shell-quoted words) with ``runJob``.

        On failure the engine's own error line (``deepqs COMMAND: error: ...``) becomes the
        protocol's error message instead of a bare exit status.
        """
        try:
            self.runJob(Plugin.getProgram(), " ".join(arguments), env=Plugin.getEnviron())
        except subprocess.CalledProcessError as exc:
            reason = self._engineErrorLine()
            if reason:
                raise RuntimeError(reason) from exc
            raise

    def _engineErrorLine(self):
        """The last ``deepqs ...: error: ...`` line of this run's stderr log, if any."""
        path = self.getStderrLog()
        if not os.path.exists(path):
            return None
        with open(path, errors="replace") as fh:
            lines = [line.strip() for line in fh if line.startswith("deepqs ") and ": error: " in line]
        return lines[-1] if lines else None

    # ------------------------------------------------------------------ maps
    @staticmethod
    def _defineOriginParam(form):
        form.addParam("originFrom", params.EnumParam,
                      choices=["map file header", "Scipion object"], default=ORIGIN_FROM_HEADER,
                      display=params.EnumParam.DISPLAY_HLIST, label="Map origin from", expertLevel=params.LEVEL_ADVANCED,
                      help="Where the real-space position (Å) of the first voxel comes from. "
                           "'map file header' follows the header origin (or nstart × voxel size "
                           "when the origin is zero), as Chimera/ChimeraX and MapQ do; atomic "
                           "models deposited with the map fit this frame. 'Scipion object' uses "
                           "the origin set when importing into Scipion (centred unless set).")

    def _mapArgs(self, volume):
        """Engine arguments naming a map: its file, Scipion's voxel size and, if asked, origin."""
        args = [shlex.quote(os.path.abspath(volumeFile(volume))), "--voxel-size", "%.6f" % volume.getSamplingRate()]
        if getattr(self, "originFrom", None) is not None and self.originFrom.get() == ORIGIN_FROM_SCIPION:
            # "=" keeps argparse from reading a negative origin as an option
            args.append("--origin=%.6f,%.6f,%.6f" % volume.getShiftsFromOrigin())
        return args

    def _validateVolume(self, volume, label="input map"):
        """Errors for a map without sampling rate or file."""
        if volume is None:
            return ["Choose the %s." % label]
        errors = []
        if not volume.getSamplingRate() or volume.getSamplingRate() <= 0:
            errors.append("The %s has no sampling rate (Å/voxel): set it when importing." % label)
        if not os.path.exists(volumeFile(volume)):
            errors.append("The %s file %s does not exist." % (label, volumeFile(volume)))
        return errors
