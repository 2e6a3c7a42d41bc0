"""What every DeepQs protocol shares: running the engine's command line as a Scipion job."""

import os
import subprocess

from pwem.protocols import EMProtocol

from deepqs_plugin import Plugin


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
