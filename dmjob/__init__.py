"""`dmjob`: the command line of the DM Job API.

- `cli.py`: the commands (typer): start, status, logs, stop, result, list, schedule, suspend, resume;
- `client.py`: the HTTP client (httpx): base URL, function key and token from flags or the environment
  (`DMJOB_URL`, `DMJOB_KEY`, `DMJOB_TOKEN`), a token from the Azure CLI, the API's errors;
- `follow.py`: following a job: new log lines of the status' log tail, the progress bar.

Installed as a console script by pyproject.toml (`pip install .`), or run as `python -m dmjob`.
"""

__version__ = "2.0.0"  # the API's version (shared/openapi API_VERSION)
