import math

import pytest

from hyperswitch.search.expr import ExpressionError, parse_expression


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("ratio * damping", {"ratio": 3.0, "damping": 1e-3}, 3e-3),
        ("lr / 10 + 1", {"lr": 0.5}, 1.05),
        ("-a ** 2", {"a": 3}, -9),
        ("2 ** -k", {"k": 3}, 0.125),
        ("log10(x) * 2", {"x": 1000.0}, 6.0),
        ("max(a, b) - min(a, b)", {"a": 2, "b": 7}, 5),
        ("sqrt(batch / 32) * base", {"batch": 128, "base": 0.1}, 0.2),
        ("floor(steps / 3) % 7", {"steps": 100}, 33 % 7),
        ("exp(0)", {}, 1.0),
    ],
)
def test_evaluates_arithmetic(text, values, expected):
    assert math.isclose(parse_expression(text).evaluate(values), expected, rel_tol=1e-12)


def test_names_are_collected():
    assert parse_expression("ratio * damping + log(x)").names == {"ratio", "damping", "x"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("__import__('os').system('true')", "functions"),
        ("a.__class__", "Attribute"),
        ("x[0]", "Subscript"),
        ("'abc'", "only numbers"),
        ("lambda: 1", "Lambda"),
        ("a if b else c", "IfExp"),
        ("a < b", "Compare"),
        ("open('f')", "functions"),
        ("log(x=1)", "keyword"),
        ("a and b", "BoolOp"),
        ("True + 1", "only numbers"),
        ("1 +", "not a valid expression"),
        ("", "non-empty"),
    ],
)
def test_rejects_everything_but_arithmetic(text, fragment):
    with pytest.raises(ExpressionError, match=fragment):
        parse_expression(text)


def test_evaluation_errors_are_expression_errors():
    with pytest.raises(ExpressionError, match="division by zero"):
        parse_expression("a / b").evaluate({"a": 1, "b": 0})
    with pytest.raises(ExpressionError, match="unknown name"):
        parse_expression("a * c").evaluate({"a": 1})
    with pytest.raises(ExpressionError, match="cannot evaluate"):
        parse_expression("log(a)").evaluate({"a": -1.0})
