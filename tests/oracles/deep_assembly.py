"""Test oracle for the deep stack's assembly rule (``derive/deep.py``): the stacked log joint (LJ)
written out for small widths with symbolic weights, differentiated by ``sympy.diff`` and compared,
at random rational points (30 digits), with the score and block-tridiagonal Hessian that the
assembly rule builds from the per-layer elementwise derivatives."""

from __future__ import annotations

import math
import random
from typing import Any

import sympy as sp

from deqfam.derive.deep import DeepSpecError, StackDerivation, X
from deqfam.derive.primitives import StablePrimitive, to_definition
from deqfam.derive.spec import ETA


def explicit_log_joint(stack: StackDerivation, widths: list[int]) -> dict[str, Any]:
    """(LJ) written out for small ``widths`` with symbolic ``W_l``, ``b_l``, data and latents.

    Returns ``{"log_joint", "latents" (list of lists of symbols), "W", "b", "data", "lam"}``.
    """
    if len(widths) != stack.depth + 1:
        raise DeepSpecError(f"widths must have {stack.depth + 1} entries, got {widths}")
    lam = sp.Symbol("lam", positive=True)
    data = [sp.Symbol(f"y{i}", real=True) for i in range(widths[0])]
    latents = [
        [sp.Symbol(f"z{l}_{j}", real=True) for j in range(widths[l])] for l in range(1, len(widths))
    ]
    W = [
        sp.Matrix(
            widths[l], widths[l + 1], lambda i, j, l=l: sp.Symbol(f"W{l + 1}_{i}_{j}", real=True)
        )
        for l in range(stack.depth)
    ]
    b = [
        sp.Matrix([sp.Symbol(f"b{l + 1}_{i}", real=True) for i in range(widths[l])])
        for l in range(stack.depth)
    ]
    total = sp.S.Zero
    below = data
    for l, layer in enumerate(stack.layers):
        eta = W[l] * sp.Matrix(latents[l]) + b[l]
        for i in range(widths[l]):
            total += layer.log_density.xreplace({X: below[i], ETA: eta[i]})
        below = latents[l]
    total -= lam * sum(z**2 for z in latents[-1]) / 2
    return {"log_joint": total, "latents": latents, "W": W, "b": b, "data": data, "lam": lam}


def _assembled(stack: StackDerivation, ex: dict[str, Any]) -> tuple[list[sp.Expr], sp.Matrix]:
    """Score of log p and Hessian of J = -log p by the assembly rule of the module docstring."""
    latents, W, b, data, lam = ex["latents"], ex["W"], ex["b"], ex["data"], ex["lam"]
    L = stack.depth
    xs = [data, *latents]
    etas = [W[l] * sp.Matrix(latents[l]) + b[l] for l in range(L)]

    def elem(layer: int, role: str, i: int) -> sp.Expr:
        e = stack.layers[layer].expressions[role]
        return e.xreplace({X: xs[layer][i], ETA: etas[layer][i]})

    sizes = [len(z) for z in latents]
    offsets = [sum(sizes[:l]) for l in range(L)]
    grad: list[sp.Expr] = []
    H = sp.zeros(sum(sizes), sum(sizes))
    for l in range(L):
        n_out = len(xs[l])
        s_below = sp.Matrix([elem(l, "score_eta", i) for i in range(n_out)])
        g = W[l].T * s_below
        c = sp.diag(*[-elem(l, "d2_eta", i) for i in range(n_out)])
        block = W[l].T * c * W[l]
        if l + 1 < L:
            g += sp.Matrix([elem(l + 1, "score_x", i) for i in range(sizes[l])])
            block += sp.diag(*[-elem(l + 1, "d2_x", i) for i in range(sizes[l])])
            off = sp.diag(*[-elem(l + 1, "d2_xeta", i) for i in range(sizes[l])]) * W[l + 1]
            o, o2 = offsets[l], offsets[l + 1]
            H[o : o + sizes[l], o2 : o2 + sizes[l + 1]] = off
            H[o2 : o2 + sizes[l + 1], o : o + sizes[l]] = off.T
        else:
            g -= lam * sp.Matrix(latents[l])
            block += lam * sp.eye(sizes[l])
        o = offsets[l]
        H[o : o + sizes[l], o : o + sizes[l]] = block
        grad.extend(list(g))
    return grad, H


def _numeric(expr: sp.Expr, values: dict[sp.Symbol, sp.Expr]) -> sp.Float:
    plain = to_definition(expr) if expr.has(StablePrimitive) else expr
    return sp.N(plain.xreplace(values), 30)


def verify_assembly(
    stack: StackDerivation, widths: list[int], n_points: int = 2, seed: int = 0, scale: float = 0.5
) -> dict[str, float]:
    """Compare the assembly rule with SymPy's own derivatives of the explicit joint.

    The explicit joint (:func:`explicit_log_joint`) is differentiated by ``sympy.diff`` with
    respect to every latent (gradient) and every pair (Hessian); both are evaluated at
    ``n_points`` random points (30 digits) together with the assembled score and block
    Hessian. Returns the largest absolute differences ``{"gradient", "hessian"}``. Random points
    keep every ``eta`` inside the families' domains (scaled by ``scale``).
    """
    ex = explicit_log_joint(stack, widths)
    flat = [z for layer in ex["latents"] for z in layer]
    logp = ex["log_joint"]
    grad_exact = [sp.diff(logp, z) for z in flat]
    hess_exact = sp.Matrix(len(flat), len(flat), lambda i, j: -sp.diff(grad_exact[i], flat[j]))
    grad_asm, hess_asm = _assembled(stack, ex)
    rng = random.Random(seed)
    symbols = sorted(logp.free_symbols, key=lambda s: s.name)
    worst = {"gradient": 0.0, "hessian": 0.0}
    for _ in range(n_points):
        values = _random_point(stack, ex, symbols, rng, scale)
        for a, e in zip(grad_asm, grad_exact, strict=True):
            worst["gradient"] = max(worst["gradient"], float(abs(_numeric(a - e, values))))
        for a, e in zip(hess_asm, hess_exact, strict=True):
            worst["hessian"] = max(worst["hessian"], float(abs(_numeric(a - e, values))))
    return worst


def _random_point(stack, ex, symbols, rng, scale) -> dict[sp.Symbol, sp.Expr]:
    """Random values with every ``eta_l`` inside layer ``l``'s domain and data in its support."""
    values: dict[sp.Symbol, sp.Expr] = {}
    for s in symbols:
        values[s] = sp.Rational(rng.randint(-1000, 1000), 1000) * sp.Rational(repr(scale))
    values[ex["lam"]] = sp.Rational(rng.randint(100, 2000), 1000)
    first = stack.layers[0].family
    for y in ex["data"]:
        values[y] = _support_value(first.support, rng)
    for l, layer in enumerate(stack.layers):
        lo, hi = layer.family.domain_floats
        if math.isinf(lo) and math.isinf(hi):
            continue
        # a bounded side: b_l at an interior point, W_l small, so every eta_l stays inside
        if math.isfinite(lo) and math.isfinite(hi):
            centre = (lo + hi) / 2
        else:
            centre = hi - 1 if math.isfinite(hi) else lo + 1
        for bsym in ex["b"][l]:
            values[bsym] = sp.Rational(repr(round(centre, 6)))
        for wsym in ex["W"][l]:
            values[wsym] = values[wsym] / 20
    return values


def _support_value(support: str, rng: random.Random) -> sp.Expr:
    if support in ("binary",):
        return sp.Integer(rng.randint(0, 1))
    if support == "plus_minus_one":
        return sp.Integer(rng.choice((-1, 1)))
    if support in ("nonnegative_integers", "integers", "positive_integers"):
        return sp.Integer(rng.randint(1, 5))
    if support == "unit_interval":
        return sp.Rational(rng.randint(1, 999), 1000)
    if support == "positive_real":
        return sp.Rational(rng.randint(1, 3000), 1000)
    return sp.Rational(rng.randint(-2000, 2000), 1000)
