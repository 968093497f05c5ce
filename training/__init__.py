"""guard_sdk.training: seed data, HarmAug augmentation, teachers, distillation and few-shot adaptation.

Installed from the top-level training/ folder; needs ``pip install 'guard-sdk[train]'``. Its stages land
in the issues that follow the foundation; this package is the place they plug into.
"""
