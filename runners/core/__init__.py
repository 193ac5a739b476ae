"""The harness's foundations, importing nothing else of the project: the run record (the contract
between runners and reports), the atomic writer, the job and report locks, secret redaction."""
