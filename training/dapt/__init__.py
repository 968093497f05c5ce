"""DAPT (Balashankar et al., 2023): a new rule from a few examples, their nearest known rows
(``neighbours``), prompt tuning or LoRA (``adapt``), virtual tokens baked into the vocabulary for export
(``prompt_baking``)."""
