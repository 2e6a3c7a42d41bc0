"""deepqs: the engine of scipion-em-deepqs.

Deep-learning and model-based quality control for cryo-EM single-particle analysis:
map/model I/O, simulation, Q-scores, DeepQs local quality, particle picking and pruning,
and validation levels.  Pure numpy/scipy/torch/mrcfile/gemmi: it never imports Scipion
(``pyworkflow``/``pwem``); the Scipion plugin lives in ``deepqs_plugin``.
"""

__version__ = "0.1.0"
