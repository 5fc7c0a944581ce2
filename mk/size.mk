# What each binary links (issue 15): cmd/deps_test.go (in make gotest) fails
# if securityd links the network stack or upgradectl the engine;
# make bench-size records the binaries' sizes.
.PHONY: bench-size

bench-size: build
	@$(BENCH_TEE) GO=$(GO) bench/binsize.sh $(BIN) | tee $(BENCH_LOG)/size.txt

BENCH_TARGETS += bench-size
