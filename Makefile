# Entry points; each installs what it needs first (scripts/setup.sh).
.PHONY: setup demo demo-clean lint test

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

demo-clean:
	scripts/demo.sh clean

lint: setup
	scripts/test.sh lint

test:
	scripts/test.sh
