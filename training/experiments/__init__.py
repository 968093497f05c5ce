"""Experiments that train several models and write a table: the HarmAug ablation and the DAPT experiment."""
