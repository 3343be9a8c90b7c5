"""nmm_nn — MLPs trained on the very problems nmm solves, and the bridge between networks and covers.

* :class:`MLP` (equinox), :class:`Task` (the shared discrete functional), :func:`train` (optax,
  jitted ``lax.scan`` chunks, checkpoints);
* :func:`covers` (exact linear regions of ReLU/hat networks, kink sets, counts) and the region
  bounds; :func:`to_mlp` (exact ReLU network of a degree-0 NMM field); :func:`cover_solve` (the
  output layer solved exactly on the last hidden layer's "cover functions");
  :func:`functional_dof` (rank of the parameter Jacobian).
"""

from .ansatz import rectangle_ansatz as rectangle_ansatz
from .cover_solve import CoverSolve as CoverSolve
from .cover_solve import FunctionalDOF as FunctionalDOF
from .cover_solve import cover_solve as cover_solve
from .cover_solve import functional_dof as functional_dof
from .inverse import InverseTask as InverseTask
from .inverse import hinv_task as hinv_task
from .inverse import pinv_task as pinv_task
from .mlp import MLP as MLP
from .regions import NetworkCovers as NetworkCovers
from .regions import covers as covers
from .regions import deep_bound_1d as deep_bound_1d
from .regions import region_bound as region_bound
from .regions import shallow_bound as shallow_bound
from .regions import tent_map as tent_map
from .spacetime import SpaceTimeTask as SpaceTimeTask
from .spacetime import spacetime_errors as spacetime_errors
from .spacetime import vectorised as vectorised
from .task import Task as Task
from .to_mlp import to_mlp as to_mlp
from .train import History as History
from .train import train as train

__all__ = [
    "SpaceTimeTask",
    "spacetime_errors",
    "vectorised",
    "MLP",
    "Task",
    "train",
    "History",
    "covers",
    "NetworkCovers",
    "shallow_bound",
    "deep_bound_1d",
    "region_bound",
    "tent_map",
    "to_mlp",
    "rectangle_ansatz",
    "cover_solve",
    "CoverSolve",
    "functional_dof",
    "FunctionalDOF",
    "InverseTask",
    "pinv_task",
    "hinv_task",
]
