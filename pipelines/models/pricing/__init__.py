"""Pricing: a DQN agent sets every product's daily price within guardrails, trained in a demand simulator.

Data: ``daily_sales`` (price and units per product and day) and ``products`` (base price, cost). Time split: the
last ``eval_days`` days are the holdout; everything the agent and its features use is fitted before it.

* Demand model: a Poisson log-log regression per product with shared weekday and yearly terms, fitted on the
  training days (:func:`pipelines.models.pricing.demand.fit_curves`). It gives the agent's state features and the
  simulator the agent is trained and selected in.
* Simulator (:mod:`pipelines.models.pricing.simulator`): Poisson demand from a set of curves, lost sales beyond the
  stock on hand, restocks every ``restock_every_days`` up to ``restock_cover`` times the cycle's demand at the recent
  sales rate (``units_28d`` of the Feast FeatureService ``pricing_v1`` at the holdout start), profit reward net of
  holding cost. Two instances: the FITTED simulator (training, checkpoint and candidate selection) and the SCORING
  simulator (holdout and oracle): the generator's true curves when the truth exists, else the fitted curves again.
* Agent (:class:`pipelines.models.pricing.agent.PricingPolicy`): one DQN shared by all products, acting on 11 price
  levels (0.7-1.3 x base price) clipped to the guardrails (margin floor, ceiling, daily-change limit).
* Candidates: the agent, static pricing (base price) and the myopic price from the fitted elasticities, each scored
  on validation episodes of the fitted simulator (the ``eval_days`` before the holdout); the best is registered (a
  baseline as a :class:`pipelines.models.pricing.baselines.RulePricing`, served like the agent).
* Evaluation on the holdout days, several seeds with common random numbers, per product-episode (the gate's units):
  profit of the registered candidate and of every baseline over the optimal policy's (dynamic programming over
  inventory in the scoring simulator). ``profit_ratio_to_oracle`` = total profit / optimal profit. With the truth
  the optimum is the oracle; without it, it is the optimum of the fitted simulator and ``oracle`` is ``None``. Plus
  an off-policy estimate (IPS, SNIPS, DR) of the policy's value from the logged holdout prices.

Modules: ``params``, ``data`` (split, demand fit, catalogue, logged holdout), ``demand``, ``simulator``, ``agent``
(the DQN, torch), ``model`` (train, select, score, MLflow), ``baselines`` (static and myopic pricing, as policies and as
registrable candidates), ``scoring`` (per-unit results and the primary metric), ``oracle`` (dynamic
programming), ``ope`` (off-policy estimates), ``gym_env`` (a Gymnasium view of one product), ``evaluation``,
``plots``, ``serving`` and ``spec`` (the family's ``SPEC``).
"""

from pipelines.models.pricing.spec import SPEC

__all__ = ["SPEC"]
