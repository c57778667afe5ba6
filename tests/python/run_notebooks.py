"""Executes the notebooks headless (nbclient) and fails if any cell fails.

Usage: run_notebooks.py NOTEBOOK_DIR OUT_DIR
The server to talk to comes from the environment (TRIBUTARY_FLIGHT, TRIBUTARY_HTTP,
TRIBUTARY_TOKEN), as a user's notebook would take it.
"""
import pathlib
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
books = sorted(src.glob("*.ipynb"))
if not books:
    sys.exit(f"no notebooks in {src}")
failed = []
for path in books:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(out)}})
    try:
        client.execute()
        print(f"ok     {path.name} ({len(nb.cells)} cells)")
    except CellExecutionError as e:
        failed.append(path.name)
        print(f"FAILED {path.name}: {str(e).splitlines()[-1] if str(e) else e}")
    nbformat.write(nb, out / path.name)
if failed:
    sys.exit(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")
