"""The Optuna sweeper's implementation: study settings, the search space, the sweep loop, and the
trial a job reports to. The Hydra plugin shell is in ``hydra_plugins/``."""
