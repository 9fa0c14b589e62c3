"""The command line: parse, call a service, render. The only package that imports typer or rich."""

import sys

# httpx imports its own command-line client (httpx._main, which imports click, rich and pygments) whenever
# those are installed; mirrorctl never runs it, and the import cost about 80 ms of every command's start-up.
# A None entry makes that import fail, which httpx is written for (it then defines a stub ``main``).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
