"""Arithmetic expressions for derived parameters (``lr: ratio * damping``), parsed and never ``eval``ed.

The text is parsed with :mod:`ast` and only numbers, parameter names, ``+ - * / // % **``, unary minus
and a few functions (``log, log2, log10, exp, sqrt, abs, min, max, round, floor, ceil``) are accepted;
anything else (attributes, subscripts, strings, calls of other names, lambdas, ...) is rejected with a
message. Evaluation walks the tree.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
}


class ExpressionError(ValueError):
    """An expression that is not allowed or cannot be evaluated."""


@dataclass(frozen=True)
class Expression:
    text: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        try:
            return _eval(self.tree.body, values)
        except ZeroDivisionError as exc:
            raise ExpressionError(f"division by zero in {self.text!r}") from exc
        except (OverflowError, ValueError, TypeError) as exc:
            raise ExpressionError(f"cannot evaluate {self.text!r}: {exc}") from exc


def parse_expression(text: str) -> Expression:
    """Parse ``text``; raise :class:`ExpressionError` naming the first construct that is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("must be a non-empty arithmetic expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"is not a valid expression ({exc.msg})") from exc
    names: set[str] = set()
    _check(tree.body, names)
    return Expression(text=text, tree=tree, names=frozenset(names))


def _check(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"only numbers are allowed as constants, not {node.value!r}")
    elif isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, names)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError(f"only the functions {', '.join(sorted(FUNCTIONS))} may be called")
        if node.keywords:
            raise ExpressionError("keyword arguments are not allowed")
        for arg in node.args:
            _check(arg, names)
    else:
        raise ExpressionError(f"{type(node).__name__} is not allowed in an expression")


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise ExpressionError(f"unknown name {node.id!r}")
        return values[node.id]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, values))
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return FUNCTIONS[node.func.id](*(_eval(a, values) for a in node.args))
    raise ExpressionError(f"{type(node).__name__} is not allowed")  # unreachable after _check
