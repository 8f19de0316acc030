# Two commands do everything on a fresh machine (each sets itself up first):
#   make run    the simulated pipeline: lens + camera + classical/DfDNet depth, pictures in out/
#   make test   the whole test suite
.PHONY: setup run test bench clean

setup:
	@bash tools/setup.sh

run: setup
	@bash tools/in_env.sh dfdnet run --sim $(ARGS)

test: setup
	@bash tools/in_env.sh python -m pytest test $(ARGS)

bench: setup
	@bash tools/in_env.sh python benchmarks/run_all.py

clean:
	rm -rf build install log out
