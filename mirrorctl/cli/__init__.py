"""The command line: parse, call a service, render. The only package that imports typer or rich."""
