"""Preference tuning (DPO) on the LoRA recipe's building blocks: ``loss`` (sequence log-probabilities
and the DPO loss), ``data`` (tokenized chosen/rejected pairs), ``reference`` (the reference policy's
log-probabilities, computed once), ``loop`` (the explicit training loop, ``train_dpo``)."""
