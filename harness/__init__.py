"""MoCA harness: train, sweep, evaluate and draw the figures of the MoCA paper and its baselines.

A regular package (not a namespace package): another ``harness/`` folder on ``sys.path`` cannot
silently merge into this one.
"""
