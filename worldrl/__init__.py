"""worldrl: learned world models as Gymnasium and TorchRL simulators.

Importing the package registers ``WorldModel-v0`` with Gymnasium.
"""

__version__ = "0.1.0"

from worldrl.envs.registration import register_envs as _register_envs

_register_envs()
