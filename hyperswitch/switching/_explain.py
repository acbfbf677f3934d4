"""One line that says what a policy's switch rule did and saw, from ``Stepper.switch_report()``.

``hyperswitch train`` prints it; the Python API has it as ``hyperswitch.switching.explain_switch(report)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _g(x: float) -> str:
    return f"{x:.3g}"


def _where(report: Mapping[str, Any], prefix: str) -> str:
    """'step 212', or 'epoch 9 (step 198)' for a rule on epochs."""
    step = report.get(f"{prefix}at_step")
    if report.get("unit") == "epoch" and report.get(f"{prefix}at_epoch") is not None:
        return f"epoch {report[f'{prefix}at_epoch']} (step {step})"
    return f"step {step}"


def _switched(report: Mapping[str, Any]) -> str:
    step = report.get("switch_step")
    if step is None:  # fired after the last update: nothing was left to run in phase 2
        return f"the rule fired after the run's last update: no update of {report.get('to', 'phase 2')} was left"
    return f"switched {report.get('from', 'phase 1')} -> {report.get('to', 'phase 2')} at step {step}"


def explain_switch(report: Mapping[str, Any] | None) -> str | None:
    """The report in words: whether the rule fired, and the numbers it decided on. None without a report."""
    if report is None:
        return None
    rule = report.get("rule")
    if rule == "never":
        return "no switch: the policy says switch: never"
    if rule == "fixed":
        if report["fired"]:
            return f"{_switched(report)} (fixed: after {report['at']} {report['unit']}s)"
        return f"no switch: the fixed rule switches after {report['unit']} {report['at']}, which the run did not reach"
    if rule == "adaptive":
        stat = f"the mean loss-change rate over the last K={report['K']} {report['unit']}s"
        theta = f"θ={_g(report['threshold'])}"
        if report["fired"]:
            before = report["checks"] - 1
            return (f"{_switched(report)}: after {_where(report, '')} {stat} was {_g(report['value'])} < {theta} "
                    f"({f'the {before} checks before were >= θ' if before else 'its first check'})")
        if not report["checks"]:
            return (f"no switch: the rule never checked: {stat} needs K+1={report['K'] + 1} finite losses in a "
                    f"row (one per {report['unit']}) and the run gave fewer")
        return (f"no switch: {stat} stayed >= {theta} in all {report['checks']} checks; lowest "
                f"{_g(report['closest'])} at {_where(report, 'closest_')}, last {_g(report['last'])} at "
                f"{_where(report, 'last_')}")
    if rule == "swats":
        if report["fired"]:
            return (f"{_switched(report)}: after step {report['at_step']} SWATS's bias-corrected mean of its "
                    "projected SGD learning rate matched the current projection within rtol "
                    f"eps={_g(report['threshold'])}; SGD learning rate {_g(report['lr'])}")
        return (f"no switch: SWATS stayed in its Adam phase for all {report['steps']} steps: for no parameter "
                "tensor did the bias-corrected mean of its projected SGD learning rate come within rtol "
                f"eps={_g(report['threshold'])} of the current projection (pytorch-optimizer's rule; it keeps no "
                "record of how close it came)")
    return f"switch rule {rule}: {'fired' if report.get('fired') else 'did not fire'}"
