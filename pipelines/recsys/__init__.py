"""Recommendation building blocks: implicit-feedback data, ranking metrics, baselines, oracle and the MF model.

Only :mod:`pipelines.recsys.model` imports torch and faiss; the other modules need NumPy, pandas and SciPy.
"""
