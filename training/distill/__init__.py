"""Distillation: the KD loss, the Trainer that uses it, and the cached teacher scores it learns from."""
