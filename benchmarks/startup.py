"""Start-up of each rule's script: seconds from a fresh interpreter to its first line of work (its imports and
`start(snakemake)`, with a stand-in `snakemake` object), beside `python -c "import torch"` in the same run.

Usage: python benchmarks/startup.py [--rounds R] [SCRIPT ...]   (default: every workflow/scripts/*.py, 5 rounds)
Each round times every script and `import torch` once, in turn; each keeps its fastest round (on a shared machine
the slower rounds measure the neighbours). One line per script:
    <script> s=<seconds> over_torch=<seconds more than import torch>
Issue 36's target: evaluate, quantize and mechanism within import torch + 1.5 s.
"""

import argparse
import ast
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path("workflow/scripts")
STAND_IN = """import types
snakemake = types.SimpleNamespace(log=[{log!r}], threads=1, config={{}})
"""


def first_work_line(script: Path) -> int:
    """The line after `start(snakemake)`: everything before it is start-up."""
    for node in ast.parse(script.read_text()).body:
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "start":
            return node.end_lineno
    raise SystemExit(f"{script} never calls start(snakemake)")


def start_up_code(script: Path, log: Path) -> str:
    lines = script.read_text().splitlines()[: first_work_line(script)]
    return STAND_IN.format(log=str(log)) + "\n".join(lines)


def seconds(code: str) -> float:
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scripts", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scripts = args.scripts or sorted(SCRIPTS.glob("*.py"))
    with tempfile.TemporaryDirectory() as scratch:
        codes = {"import torch": "import torch"}
        codes |= {script.stem: start_up_code(script, Path(scratch) / f"{script.stem}.log") for script in scripts}
        fastest = {name: float("inf") for name in codes}
        for _ in range(args.rounds):
            for name, code in codes.items():
                fastest[name] = min(fastest[name], seconds(code))
    torch_s = fastest.pop("import torch")
    print(f"python -c 'import torch': {torch_s:.2f} s (fastest of {args.rounds})")
    for name, spent in sorted(fastest.items(), key=lambda item: -item[1]):
        print(f"{name} s={spent:.2f} over_torch={spent - torch_s:+.2f}")


if __name__ == "__main__":
    main()
