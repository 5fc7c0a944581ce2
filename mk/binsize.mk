# Binary sizes (issue 16: what go-tuf adds to each binary), as BENCH lines
# for bench/results.md; the same flags as `make build`.
.PHONY: bench-binsize
bench-binsize: build
	@$(BENCH_TEE) for f in $(BIN)/*; do echo "BENCH binary_size_$$(basename $$f | tr - _) $$(stat -c %s $$f) bytes"; done \
		| tee $(BENCH_LOG)/binsize.txt

BENCH_TARGETS += bench-binsize
