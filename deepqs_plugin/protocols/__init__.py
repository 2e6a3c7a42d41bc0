"""Protocols of the DeepQs plugin."""

from .protocol_map_stats import ProtDeepQsMapStats
from .protocol_qscore import ProtDeepQsQScore
from .protocol_localq_predict import ProtDeepQsPredict
from .protocol_localq_train import ProtDeepQsTrain
from .protocol_picking import ProtDeepEMPick, ProtDeepEMTrain, ProtDeepQsImportCoordinates
from .protocol_validate import ProtDeepQsValidate
from .protocol_pruning import ProtPickerOptimizer
from .protocol_extract import ProtDeepQsExtractParticles
