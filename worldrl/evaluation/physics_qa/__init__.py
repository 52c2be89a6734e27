"""Physics questions with exact answers, generated from ``worldrl/Playground-v0`` scenes.

Every answer is a fact of the MuJoCo simulation (the event log, the trajectory, or a re-simulation), never a typed
label. ``simulate`` runs and renders scenes (and their edited, impossible versions), ``questions`` turns a rollout into
items of seven types (after Physion, CLEVRER and IntPhys), ``generate`` balances, splits by scene seed and writes
parquet + images + clips, ``reader`` loads them back for evaluation.
"""
