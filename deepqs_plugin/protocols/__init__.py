"""Protocols of the DeepQs plugin."""

from .protocol_map_stats import ProtDeepQsMapStats
