"""Names shared by the DeepQs Scipion plugin: configuration variables and file names."""

# Configuration variables (scipion.conf or the environment).
DEEPQS_PYTHON = "DEEPQS_PYTHON"
"""Python interpreter that runs the engine (``python -m deepqs``). Defaults to Scipion's own."""

DEEPQS_ENV_ACTIVATION = "DEEPQS_ENV_ACTIVATION"
"""Optional shell command run before the engine, e.g. ``conda activate deepqs`` on GPU nodes."""

DEEPQS_WEIGHTS_DIR = "DEEPQS_WEIGHTS_DIR"
"""Optional folder of weights replacing the shipped defaults (``localq_default.pt``,
``picking_default.pt``, ``pruning_default.pt``), e.g. a facility's retrained models."""

# File names inside a protocol's extra folder.
MAP_STATS_JSON = "map_stats.json"
MAP_HISTOGRAM_PNG = "map_histogram.png"

# Where the map origin is taken from.
ORIGIN_FROM_HEADER = 0
ORIGIN_FROM_SCIPION = 1
