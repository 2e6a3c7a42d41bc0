"""What every DeepQs protocol shares: running the engine's command line as a Scipion job."""

import glob
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

    def runEngine(self, arguments, expected=()):
        """Run ``deepqs <arguments>`` (a list of already shell-quoted words) with ``runJob``.

        On failure the engine's own error line (``deepqs COMMAND: error: ...``) becomes the
        protocol's error message instead of a bare exit status.  ``expected``: files the job
        must have written; checked afterwards because a job sent to a queue on its own
        (``QUEUE_FOR_JOBS=Y``) reports no exit status to Scipion.
        """
        try:
            self.runJob(Plugin.getProgram(), " ".join(arguments), env=Plugin.getEnviron())
        except subprocess.CalledProcessError as exc:
            reason = self._engineErrorLine()
            if reason:
                raise RuntimeError(reason) from exc
            raise
        missing = [f for f in expected if not os.path.exists(f)]
        if missing:
            reason = self._engineErrorLine()
            raise RuntimeError(reason or "The engine job did not write %s (see the logs)." % ", ".join(missing))

    def _engineErrorLine(self):
        """The last ``deepqs ...: error: ...`` line of this run's error logs (the protocol's and its
        queue jobs'), if any."""
        logs = [self.getStderrLog()] + sorted(glob.glob(os.path.join(os.path.dirname(self.getStderrLog()), "*.err")),
                                              key=os.path.getmtime)
        lines = []
        for path in logs:
            if os.path.exists(path):
                with open(path, errors="replace") as fh:
                    lines += [line.strip() for line in fh if line.startswith("deepqs ") and ": error: " in line]
        return lines[-1] if lines else None

    @staticmethod
    def _defineGpuParams(form, useGpuHelp, default=True):
        """Hidden USE_GPU / GPU_LIST, declared the Scipion way (``%(GPU)s`` reaches the engine as
        ``--device cuda:N``; queue systems renumber the GPUs from 0)."""
        form.addHidden(params.USE_GPU, params.BooleanParam, default=default, label="Use GPU",
                       help=useGpuHelp + "  Without a visible GPU the CPU is used, with a warning in the log.")
        form.addHidden(params.GPU_LIST, params.StringParam, default="0", label="GPU ID",
                       help="GPU to use, relative to the visible devices (queue systems renumber them).")

    def _validateGpus(self):
        """Errors for a GPU list the engine cannot use: each engine job runs on one GPU.

        (With several threads Scipion hands each thread its own GPUs; one per thread is right.)
        """
        if not self.allowsGpu() or not self.usesGpu():
            return []
        threads = max(1, self.numberOfThreads.get()) if hasattr(self, "numberOfThreads") else 1
        if len(self.getGpuList()) > threads:
            return ["Each engine job uses one GPU: give at most %d GPU id(s) (one per thread), got '%s'."
                    % (threads, self.gpuList.get())]
        return []

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
        path = os.path.abspath(volumeFile(volume))
        args = [shlex.quote(path)]
        if not self._headerVoxelMatches(path, volume.getSamplingRate()):
            args += ["--voxel-size", "%.6f" % volume.getSamplingRate()]   # Scipion's sampling rate wins
        if getattr(self, "originFrom", None) is not None and self.originFrom.get() == ORIGIN_FROM_SCIPION:
            # "=" keeps argparse from reading a negative origin as an option
            args.append("--origin=%.6f,%.6f,%.6f" % volume.getShiftsFromOrigin())
        return args

    @staticmethod
    def _headerVoxelMatches(path, samplingRate):
        """True when the file's header already holds Scipion's sampling rate (to 1e-5 relative):
        then the header value (full float32 precision) is used, so the CLI and the protocol give
        identical numbers."""
        try:
            from deepqs.io import map_header_info
            voxel = map_header_info(path)["voxel_size_A"]
        except Exception:  # unreadable here: the engine will say why
            return False
        return all(abs(v - samplingRate) <= 1e-5 * samplingRate for v in voxel)

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
