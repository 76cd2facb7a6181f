"""Customer lifetime value building blocks: BG/NBD and Gamma-Gamma (``btyd``), the logged model (``model``),
evaluation figures (``plots``) and bring-your-own transaction logs (``byo``). Used by ``pipelines.models.ltv``."""
