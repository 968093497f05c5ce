"""guard_sdk.training: seed data, fine-tuning, evaluation; HarmAug augmentation, teachers, distillation and
few-shot adaptation next.

Installed from the top-level training/ folder; needs ``pip install 'guard-sdk[train]'``. Modules: data (one
schema, readers, leakage-free splits), recipe (YAML recipes), finetune (the supervised baseline), evaluate
(metrics and calibration), linear_head (a closed-form probe for the demo and tests).
"""
