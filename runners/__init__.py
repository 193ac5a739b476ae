"""Jobs: data, training loop, evaluation, run records and tracking.

Import submodules directly (``runners.job``, ``runners.core.record``, ...): this package imports
nothing on its own so that light modules (config, record) stay light.
"""
