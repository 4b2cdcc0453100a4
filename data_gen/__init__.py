"""Generators of the Good Gestalt datasets (and dCeleba); run ``python -m data_gen`` (conf/generate.yaml)."""
