"""Reinforcement learning for dynamic pricing: demand curves, simulator, DP oracle, DQN agent and off-policy evaluation.

Modules:
    demand: demand curves, from the generator's truth or fitted on a price/units history (Poisson log-log model).
    env: guardrails, the vectorised inventory simulator, rollouts and the Gymnasium environment.
    oracle: the optimal policy under known curves (dynamic programming over inventory and the last price).
    agents: the shared DQN pricing policy (a torch module exposing ``price``), its trainer and the baselines.
    ope: off-policy estimates (IPS, SNIPS, DM, DR) of a policy's value from the logged price history.

Only NumPy and pandas are imported at package import; torch and gymnasium are imported where they are used.
"""
