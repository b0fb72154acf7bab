"""Batched equilibrium solvers for exponential-family DEQ layers: one protocol.

Every solver returns a ``Solution`` (value, ``SolverStats``, factor for the backward,
per-sample ``Status``) and takes one ``SolverConfig``. Modules:

* ``config``: ``SolverConfig`` and its validation.
* ``result``: ``SolverStats``, ``Solution``, ``Status`` and the non-convergence policy.
* ``line_search``: the one batched backtracking Armijo search.
* ``newton``: Newton over the ``NewtonProblem`` protocol (``newton_solve``).
* ``inner`` / ``dense``: the inner problem of Theorem 1 and its dense-Hessian ``NewtonProblem``
  (``newton``, ``cg_newton``); ``cg``: batched conjugate gradients.
* ``fixed_point``, ``anderson``, ``broyden``: generic solvers of ``z = f(z)``.
* ``registry``: name -> solver; ``contraction``: the contraction certificate of the map (10).
"""

from .anderson import anderson
from .broyden import broyden
from .cg import batched_cg
from .config import SolverConfig, as_config, make_config
from .contraction import ContractionCertificate, contraction_certificate
from .dense import DenseNewtonProblem, cg_newton, newton
from .fixed_point import fixed_point
from .inner import InnerProblem, hessian_from_slope
from .line_search import armijo_search, objective_trials, trial_steps
from .newton import Linearisation, NewtonProblem, newton_solve
from .registry import (
    GENERIC_SOLVERS,
    OBJECTIVE_SOLVERS,
    get_generic_solver,
    get_solver,
    list_solvers,
    register_solver,
)
from .result import (
    POLICIES,
    ConvergenceError,
    ConvergenceWarning,
    NewtonResult,
    Solution,
    SolverStats,
    Status,
    check_convergence,
    row_norm,
)

__all__ = [
    "GENERIC_SOLVERS",
    "OBJECTIVE_SOLVERS",
    "POLICIES",
    "ContractionCertificate",
    "ConvergenceError",
    "ConvergenceWarning",
    "DenseNewtonProblem",
    "InnerProblem",
    "Linearisation",
    "NewtonProblem",
    "NewtonResult",
    "Solution",
    "SolverConfig",
    "SolverStats",
    "Status",
    "anderson",
    "armijo_search",
    "as_config",
    "batched_cg",
    "broyden",
    "cg_newton",
    "check_convergence",
    "contraction_certificate",
    "fixed_point",
    "get_generic_solver",
    "get_solver",
    "hessian_from_slope",
    "list_solvers",
    "make_config",
    "newton",
    "newton_solve",
    "objective_trials",
    "register_solver",
    "row_norm",
    "trial_steps",
]
