from reconciler.sandbox.cli import sandbox

sandbox(prog_name="python -m reconciler.sandbox")
