"""The last hidden layer as cover functions: solve the output layer exactly; functional DOF.

A scalar network is ``u(x) = Σ_j a_j h_j(x) + c`` with ``h`` the last hidden layer. With the hidden
layers frozen, ``u`` is linear in ``θ = (a, c)``, every functional of a :class:`Task` is quadratic
in ``θ`` and its minimiser is one linear solve: the "cover functions" ``h_j`` get their
coefficients the way NMM cover functions do. The gap between the trained and the solved loss
measures how far the optimiser left the output layer from its optimum (training completion).
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import nmm
from nmm.linalg import SolverOptions, solve_dense

from .mlp import MLP, trainable
from .task import Task, _contract


@dataclass(frozen=True)
class CoverSolve:
    """Result of :func:`cover_solve`.

    Attributes:
        net: the network with the solved output layer.
        loss: the functional at ``net``; ``loss_trained`` at the given network.
        gap: ``loss_trained - loss`` (>= 0 up to round-off: the training completion gap).
        errors, errors_trained: relative L2/H1 errors (empty without an exact solution).
        n_features: cover functions (last hidden width + the constant of the output bias).
        rank: numerical rank of the output-layer system (dependent features lower it).
        stats: solver stats (relative residual, refinement steps, condition estimate).
    """

    net: MLP
    loss: float
    loss_trained: float
    gap: float
    errors: dict
    errors_trained: dict
    n_features: int
    rank: int
    stats: np.ndarray


def _features(net: MLP):
    return lambda x: jnp.concatenate([net.hidden(x), jnp.ones((1,), x.dtype)])


@eqx.filter_jit
def _quadratic(net, task):
    """Hessian, gradient at 0 and value at 0 of the task's functional in θ (exact: it is quadratic)."""
    vals = task.evaluate(_features(net))
    m = net.widths[-1] + 1

    def energy(theta):
        return task.energy(_contract(vals, theta))

    zero = jnp.zeros((m,), vals["volume"]["u"].dtype)
    return jax.hessian(energy)(zero), jax.grad(energy)(zero), energy(zero)


def cover_solve(net: MLP, task: Task, solver: SolverOptions | None = None) -> CoverSolve:
    """Freeze the hidden layers of ``net`` and solve its output layer exactly on ``task``.

    The system is the Hessian of the task's functional with respect to the output weights and bias
    (the Gram or stiffness matrix of the last hidden layer's functions), solved by the same
    regularised direct solver as NMM systems (:func:`nmm.linalg.solve_dense`).
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an nmm_nn.MLP, got {type(net).__name__}")
    if not isinstance(task, Task):
        raise TypeError(f"task must be an nmm_nn.Task, got {type(task).__name__}")
    if net.out_size != "scalar":
        raise ValueError(f"net must have a scalar output, got out_size={net.out_size!r}")
    if net.output_transform is not None:
        raise ValueError(
            "cover_solve: net has an output transform (its output layer is not the last map)"
        )
    if net.in_size != task.dim:
        raise ValueError(f"net.in_size={net.in_size} does not match the task's dimension {task.dim}")
    hess, grad0, _ = _quadratic(net, task)
    a, b = np.asarray(hess), -np.asarray(grad0)
    theta, stats = solve_dense(a, b, solver)
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError("cover_solve: the output-layer solve gave non-finite coefficients")
    solved = eqx.tree_at(
        lambda n: (n.weights[-1], n.biases[-1]),
        net,
        (jnp.asarray(theta[:-1][None, :]), jnp.asarray(theta[-1:])),
    )
    loss, loss_trained = float(task.loss(solved)), float(task.loss(net))
    errs = task.errors(solved) if task.has_exact else {}
    errs_trained = task.errors(net) if task.has_exact else {}
    d = np.sqrt(np.where(np.diag(a) > 0, np.diag(a), 1.0))
    rank = int(np.linalg.matrix_rank(a / d[:, None] / d[None, :], hermitian=True))
    return CoverSolve(
        solved, loss, loss_trained, loss_trained - loss, errs, errs_trained, len(theta), rank, stats
    )


@dataclass(frozen=True)
class FunctionalDOF:
    """Effective degrees of freedom of a network on a point set (Grigsby et al. 2022).

    Attributes:
        rank: numerical rank of the Jacobian of the outputs at the points with respect to the
            trainable parameters (singular values above ``rtol`` times the largest).
        n_params: trainable parameters; ``n_points`` points; ``n_dofs``: unknowns of the given
            NMM space (None without one).
        singular_values: of the Jacobian, descending.
    """

    rank: int
    n_params: int
    n_points: int
    n_dofs: int | None
    singular_values: np.ndarray


def functional_dof(
    net: MLP | nmm.Field, points, space: nmm.ManifoldSpace | None = None, rtol: float | None = None
) -> FunctionalDOF:
    """Rank of ``∂ net(points) / ∂ parameters`` (``points (m, in_size)``), beside the parameter
    count and the unknowns of ``space``. ``rtol`` defaults to ``max(m, P) · eps``. ``net`` may
    also be an ``nmm.Field`` (parameters: its coefficients; points must lie in its domain)."""
    if isinstance(net, nmm.Field):
        dim, n_params = net.space.dim, net.space.n_dofs
    elif isinstance(net, MLP):
        dim, n_params = net.in_size, net.n_params
    else:
        raise TypeError(f"net must be an nmm_nn.MLP or an nmm.Field, got {type(net).__name__}")
    pts = jnp.asarray(points, dtype=float)
    if dim == 1 and pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim != 2 or pts.shape[1] != dim or pts.shape[0] == 0:
        raise ValueError(f"points must have shape (m, {dim}), got {pts.shape}")
    if not bool(jnp.all(jnp.isfinite(pts))):
        raise ValueError("points contains non-finite values")
    if space is not None and not isinstance(space, nmm.ManifoldSpace):
        raise TypeError(f"space must be an nmm.ManifoldSpace or None, got {type(space).__name__}")
    jac = np.asarray(_jacobian(net, pts))
    sv = np.linalg.svd(jac, compute_uv=False)
    tol = (max(jac.shape) * np.finfo(float).eps if rtol is None else float(rtol)) * (
        sv[0] if sv.size else 0
    )
    return FunctionalDOF(
        int(np.sum(sv > tol)),
        n_params,
        int(pts.shape[0]),
        None if space is None else space.n_dofs,
        sv,
    )


@eqx.filter_jit
def _jacobian(net, pts):
    params, static = eqx.partition(net, trainable(net))
    flat, unravel = ravel_pytree(params)

    def outputs(p):
        model = eqx.combine(unravel(p), static)
        return jax.vmap(lambda x: jnp.reshape(model(x), (-1,)))(pts).reshape(-1)

    return jax.jacrev(outputs)(flat) if pts.shape[0] < flat.size else jax.jacfwd(outputs)(flat)
