"""Tests of the DeepQs Scipion plugin: protocols run in real, headless Scipion projects."""
