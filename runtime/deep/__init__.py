"""Deep exponential-family PCA: the joint MAP of a stack of latent layers as one DEQ.

Model (``derive/deep.py`` derives every elementwise function used here): ``z_0 = Y`` observed,
latents ``z_1 .. z_L``, prior ``z_L ~ N(0, lam^{-1} I)`` and, for ``l = L .. 1``,
``z_{l-1} | z_l`` with per-unit log density
``ell_l(x, eta) = lin_l(x, eta) + log h_l(x) - A_l(eta)`` at ``eta_l = W_l z_l + b_l``
(``lin = eta T(x)``, or ``max(0, eta) T(x)`` with the dropout mask).
The MAP latents minimise the negative log joint, for every sample separately,

    J(z_1..z_L) = -sum_l 1^T ell_l(z_{l-1}, W_l z_l + b_l) + lam/2 |z_L|^2          (up to log h(Y))

whose gradient and block-tridiagonal Hessian are, with ``e_l = eta_l`` and the elementwise
derivatives ``ell_e, ell_x, ell_ee, ell_xx, ell_xe`` of the layer functions,

    g_l    = -W_l^T ell_e,l(z_{l-1}, e_l) - ell_x,l+1(z_l, e_{l+1}) [l < L] + lam z_L [l = L]
    H_ll   = W_l^T diag(-ell_ee,l) W_l + diag(-ell_xx,l+1) [l < L] + lam I [l = L]
    H_l,l+1 = -diag(ell_xe,l+1) W_{l+1}.

``g = 0`` is the stacked DEQ (each layer's stationarity condition couples it to both
neighbours); for ``L = 1`` it is Theorem 1 of the seed paper. The state is the concatenation
``z = (z_1, ..., z_L)``, one row per sample.

Solver: Newton on ``J`` with a batched backtracking Armijo line search (``J = +inf`` outside a
family's domain), i.e. ``runtime.solvers.newton_solve`` over the ``NewtonProblem`` of ``solve``.
The Newton system is solved by a block-tridiagonal Cholesky factorisation
(``O(sum_l d_l^3)``). ``J`` is convex when every layer above the data is Gaussian (the quadratic
part is ``sum |z_{l-1} - W_l z_l - b_l|^2/2 + lam/2|z_L|^2``, strongly convex after the triangular
change of variables ``e_{l-1} = z_{l-1} - W_l z_l - b_l``), but not in general: when a pivot of the
factorisation is not positive definite the sample has met negative curvature. That is counted
(``DeepSolverStats.negative_curvature``), and the step there uses the absolute-value modified
Newton direction ``-V |Lambda|^{-1} V^T g`` (eigen-decomposition ``H = V Lambda V^T``, eigenvalues
floored at ``sqrt(eps) max|Lambda|``), which is a descent direction; a solution whose Hessian is
not positive definite (a saddle) is reported (``local_minimum`` False) and handled by the
non-convergence policy, never hidden.

Backward (implicit function theorem): with ``u = H^{-1} grad_z`` (the forward's factor), per layer

    dphi/deta_l = -(W_l u_l) * ell_ee,l - u_{l-1} * ell_xe,l [l >= 2]
    grad W_l = ell_e,l^T u_l - dphi/deta_l^T z_l,   grad b_l = -sum_s dphi/deta_l,
    grad Y   = (W_1 u_1) * ell_xe,1(Y, eta_1),

i.e. ``-u^T dg/dtheta``; no unrolling, no iteration.

Modules, one responsibility each: ``functions`` (``LayerFunctions``), ``problem`` (``J``, ``g``,
Hessian blocks), ``linalg`` (block Cholesky, dense assembly, modified Newton), ``solve``
(the ``NewtonProblem`` and ``solve_stack``), ``stats``, ``implicit`` (the autograd Function),
``laplace``, ``model`` (``DeepExpFamPCA``) and ``training`` (``train_deep``).
"""

from .functions import Fn1, Fn2, LayerFunctions
from .implicit import DeepEquilibrium, deep_equilibrium
from .laplace import GaussianPrecision, JointLaplace
from .linalg import BlockTridiagonalCholesky, assemble_dense, modified_newton
from .model import DeepExpFamPCA
from .problem import StackProblem
from .solve import StackNewtonProblem, StackSolution, solve_stack
from .stats import DeepSolverStats, NegativeCurvatureWarning, check_deep_convergence
from .training import train_deep

__all__ = [
    "BlockTridiagonalCholesky",
    "DeepEquilibrium",
    "DeepExpFamPCA",
    "DeepSolverStats",
    "Fn1",
    "Fn2",
    "GaussianPrecision",
    "JointLaplace",
    "LayerFunctions",
    "NegativeCurvatureWarning",
    "StackNewtonProblem",
    "StackProblem",
    "StackSolution",
    "assemble_dense",
    "check_deep_convergence",
    "deep_equilibrium",
    "modified_newton",
    "solve_stack",
    "train_deep",
]
