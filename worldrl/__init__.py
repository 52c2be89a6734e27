"""worldrl: learned world models as Gymnasium and TorchRL simulators.

Importing the package registers ``WorldModel-v0`` with Gymnasium and makes processes forked from this one run
torch on one thread (``worldrl.envs.forking``: fork-based async vector envs would otherwise hang).
"""

__version__ = "0.1.0"

from worldrl.envs.forking import install_fork_hook as _install_fork_hook
from worldrl.envs.registration import register_envs as _register_envs
from worldrl.errors import DataLoadingError, ModelConfigurationError, TrainingError, WorldRLError

_register_envs()
_install_fork_hook()

__all__ = ["DataLoadingError", "ModelConfigurationError", "TrainingError", "WorldRLError", "__version__"]
