"""guard_sdk.training: the stages before export, one folder per stage of the flow.

data/ (one schema, readers, leakage-free splits) → harmaug/ (a jailbroken generator writes new harmful
instructions, a responder answers them, a teacher labels them) → distill/ (the student learns hard labels
and the teacher's probabilities) or dapt/ (a new rule from a few examples); experiments/ (the HarmAug
ablation, the DAPT experiment). recipe.py reads the YAML recipes, trainer.py is the Trainer run every stage
shares, finetune.py the supervised baseline, evaluate.py metrics and calibration.

Installed from the top-level training/ folder; needs ``pip install 'guard-sdk[train]'``.
"""
