"""The pricing model: train the DQN agent in the fitted simulator, select the candidate to register (agent or
baseline) on validation episodes, score it against the optimum, MLflow flavor."""

from __future__ import annotations

import logging

import numpy as np

from pipelines.models.pricing.data import PricingData
from pipelines.models.pricing.params import PricingParams

log = logging.getLogger(__name__)


def train_agent(data: PricingData, params: PricingParams):
    """Train the DQN agent in the FITTED simulator; returns the :class:`~pipelines.models.pricing.agent.PricingPolicy`
    (on CPU) with the checkpoint that did best on the validation episodes of that simulator.

    The truth (``data.score_curves`` when the generator left it) is never read here: with or without it, the same
    data give the same agent.
    """
    import torch

    from pipelines.models.pricing.agent import DQNConfig, PricingPolicy, train_dqn
    from pipelines.utils import pick_device

    torch.manual_seed(params.seed)  # the network's initial weights, whatever the caller seeded before
    policy = PricingPolicy(data.catalog, data.est_curves, hidden=params.hidden)
    config = DQNConfig(
        steps=params.train_steps, parallel_episodes=params.parallel_episodes, episode_days=params.episode_days,
        batch_size=params.batch_size, learning_rate=params.learning_rate, gamma=params.gamma,
        eps_start=params.eps_start, eps_end=params.eps_end, exploration_fraction=params.exploration_fraction,
        target_tau=params.target_tau, val_every=params.val_every, max_seconds=params.max_train_seconds,
        seed=params.seed,
    )
    # Training episodes start anywhere before the holdout; checkpoints are validated on the season just before it.
    h0 = data.holdout_start
    history = train_dqn(policy, data.est_curves, data.calendar, (0, h0 - params.episode_days),
                        (data.val_start, params.eval_days), config, device=pick_device())
    policy.history = {"step_reward": history.step_reward, "val_steps": history.val_steps,
                      "val_profit": history.val_profit}
    log.info("pricing DQN: %d transitions in %.1f s, best validation at step %d", history.transitions,
             history.seconds, history.best_step)
    return policy.cpu()


def fit(data: PricingData, params: PricingParams):
    """Train the agent, then pick the candidate to register among the baselines and the agent.

    Every candidate is scored on the validation episodes of the fitted simulator (the ``eval_days`` before the
    holdout, their own seeds; never the holdout, never the truth) by the primary metric against the fitted
    simulator's optimum; :func:`pipelines.promotion.select_candidate` picks the best (ties: the simpler baseline).
    All candidates are already fitted on the whole training part (the agent trains on episodes from all of it; the
    baselines' elasticities come from all of it), so the winner is returned as is. It carries ``candidate`` (its
    name, ``"model"`` for the agent) and ``selection`` (the validation scores); a baseline winner is a
    :class:`~pipelines.models.pricing.baselines.RulePricing`, logged and served like the agent.
    """
    from pipelines.models.pricing.baselines import RULES, RulePricing
    from pipelines.models.pricing.scoring import profit_ratio, validation
    from pipelines.promotion import select_candidate

    agent = train_agent(data, params)
    candidates = {**{rule: RulePricing(rule, data.catalog, data.est_curves) for rule in RULES}, "model": agent}
    scores = {name: profit_ratio(validation(policy, data)) for name, policy in candidates.items()}
    winner = select_candidate(scores, higher_is_better=True)
    chosen = candidates[winner]
    chosen.candidate, chosen.selection = winner, scores
    # The agent's training record goes with the registered model, whichever won (reward curve, metrics).
    chosen.training_summary, chosen.history = agent.training_summary, agent.history
    log.info("pricing: candidate %s selected on validation (%s)", winner,
             ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return chosen.eval()


def score(model, data: PricingData) -> float:
    """The primary metric of a policy on the holdout episodes (profit / optimal profit, same demand shocks)."""
    from pipelines.models.pricing.scoring import holdout, profit_ratio

    return profit_ratio(holdout(model, data))


def log_model(model, data: PricingData):
    """Log the policy with ``mlflow.pytorch`` (signature: state features -> Q-value per level)."""
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.models.pricing.demand import day_numbers

    model = model.cpu()
    lg = data.logged.head(5)
    if lg.empty:
        rows = np.arange(min(5, data.catalog.n_products))
        day = np.repeat(day_numbers(data.calendar[-1:]), len(rows))
        last = data.catalog.prices[rows, data.catalog.reference_level]
    else:
        rows, day, last = lg["row"].to_numpy(np.int64), lg["day"].to_numpy(np.int64), lg["last_price"].to_numpy()
    example = model.features(rows, day, data.catalog.order_up_to[rows], last)
    signature = infer_signature(example, model.q_values(example))
    # Pickle, not the default pt2 export: the logged object must keep price(), the catalogue and the fitted curves.
    return mlflow.pytorch.log_model(model, name="model", signature=signature, input_example=example,
                                    serialization_format="pickle")


def load_model(uri: str):
    """The logged :class:`~pipelines.models.pricing.agent.PricingPolicy`, on CPU, ready for ``price`` and
    :func:`score`."""
    import mlflow

    return mlflow.pytorch.load_model(uri, map_location="cpu")
