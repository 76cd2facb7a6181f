"""Helpers of the ``vision`` family: image I/O and preprocessing, torch augmentations, the CNN, synthetic renders.

Submodules import torch and PIL at module level, so import them inside functions from anything that DAG
parsing touches (``pipelines.models.vision`` does).
"""
