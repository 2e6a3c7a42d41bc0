"""Viewers of the DeepQs plugin."""

from .viewer_map_stats import DeepQsMapStatsViewer
from .viewer_qscore import DeepQsQScoreAttributeViewer, DeepQsQScoreViewer
from .viewer_localq import DeepQsLocalQViewer, DeepQsTrainViewer
from .viewer_picking import DeepEMPickViewer
from .viewer_validate import DeepQsValidationViewer
from .viewer_pruning import DeepQsPruningViewer
