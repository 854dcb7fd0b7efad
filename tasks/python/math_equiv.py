"""Symbolic answer checks of quantlab's MATH Level 5 tasks (quantlab-tasks `src/math.rs`).

Reads one JSON query per line on stdin and writes one line `{"equal": true|false}` per query on
stdout, in order. Queries:

  {"kind": "is_equiv", "x1": A, "x2": B}
      the behaviour of lm-eval 0.4.9.1 `lm_eval/tasks/leaderboard/math/utils.py::is_equiv` on two
      normalised answers: both parsed with sympy's `parse_latex` (ANTLR 4.11 backend), equal when
      `simplify(A - B) == 0`; a parse, subtraction or simplification failure, or more than one
      second (SIGALRM), is "not equal".
  {"kind": "math_verify", "gold": SOLUTION, "pred": GENERATION}
      lm-eval 0.4.9.1's `exact_match`: math_verify's `verify` of the reference solution parsed with
      LaTeX extraction only and the generation parsed with the default extraction.

Exits with status 3 and one line on stderr when a package it needs is missing.
"""

import json
import signal
import sys


def need(what):
    sys.stderr.write(what + "\n")
    sys.exit(3)


try:
    import sympy
    from sympy.parsing.latex import parse_latex
except ImportError as e:
    need(f"cannot import sympy's LaTeX parser ({e})")
try:
    from importlib.metadata import version

    antlr = version("antlr4-python3-runtime")
except Exception:
    need("antlr4-python3-runtime is not installed")
if antlr.split(".")[:2] != ["4", "11"]:
    need(f"antlr4-python3-runtime is {antlr}; sympy's LaTeX parser needs 4.11")
try:
    from math_verify import LatexExtractionConfig, parse, verify
except ImportError as e:
    need(f"cannot import math_verify ({e})")


class Expired(Exception):
    pass


def on_alarm(signum, frame):
    raise Expired()


def sympy_equal(x1, x2, seconds=1):
    """parse_latex both, simplify the difference, compare with 0; any failure is False."""
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        a = parse_latex(x1)
        b = parse_latex(x2)
        return bool(sympy.simplify(a - b) == 0)
    except ImportError:
        raise
    except BaseException as e:  # Expired, parse errors, TypeError, ValueError, ...
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return False
    finally:
        signal.alarm(0)


def verify_equal(gold, pred):
    g = parse(gold, extraction_config=[LatexExtractionConfig()])
    p = parse(pred)
    return bool(verify(g, p))


def main():
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        q = json.loads(line)
        if q["kind"] == "is_equiv":
            eq = sympy_equal(q["x1"], q["x2"])
        elif q["kind"] == "math_verify":
            eq = verify_equal(q["gold"], q["pred"])
        else:
            raise ValueError(f"unknown query kind {q['kind']!r}")
        out.write(json.dumps({"equal": eq}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
