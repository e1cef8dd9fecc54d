"""The Hydra config tree (installed as ``boxpose._configs``)."""
