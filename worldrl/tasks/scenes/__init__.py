"""Procedural MuJoCo physics scenes (``worldrl/Playground-v0``): scenes built in code with ``mujoco.MjSpec`` from a
seed, an event log per episode, and synthetic audio derived from contacts.

One concept per module: ``materials`` (materials and colours), ``spec`` (scene description -> ``MjSpec``), ``kinds``
(the scene kinds and their samplers), ``events`` (contact, motion, fall, table and goal events), ``audio`` (contact
sounds), ``mel`` (log-mel features), ``env`` (the Gymnasium env). This package imports no other worldrl layer above
``worldrl.tasks``.
"""
