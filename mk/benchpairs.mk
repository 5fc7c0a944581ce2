# Pairs of issue 18, beside bench.mk's: a batch of Debian security updates
# on an installed bookworm system (bench/data/point-pair.sh; the point
# release's packages upgraded, nearly all of them rebuilt) and a Go patch
# release (bench/data/gopatch-pair.sh: 1.27.2 -> 1.27.3). Each also
# reports OSTree's static delta on disk (superblock + parts) and per-file
# zstd -19 --patch-from as byte floors: bytes_vs_ostree_delta_PAIR,
# bytes_vs_patchfrom_PAIR. Data is downloaded once into $(BENCH_DIR).
.PHONY: bench-point bench-gopatch

$(BENCH_DIR)/point/.done:
	bench/data/point-pair.sh $(BENCH_DIR)/point
$(BENCH_DIR)/gopatch/.done:
	bench/data/gopatch-pair.sh $(BENCH_DIR)/gopatch

bench-point: build $(BENCH_DIR)/point/.done
	@$(BENCH_TEE) $(GO) run ./bench/pairbench -pair point -old $(BENCH_DIR)/point/old -new $(BENCH_DIR)/point/new \
		-work $(BENCH_DIR)/work-point -bin $(BIN) -runs $(BENCH_RUNS) -patch-from \
		-json $(BENCH_PAIRS)/point.json | tee $(BENCH_LOG)/point.txt

bench-gopatch: build $(BENCH_DIR)/gopatch/.done
	@$(BENCH_TEE) $(GO) run ./bench/pairbench -pair gopatch -old $(BENCH_DIR)/gopatch/old -new $(BENCH_DIR)/gopatch/new \
		-work $(BENCH_DIR)/work-gopatch -bin $(BIN) -runs $(BENCH_RUNS) -patch-from \
		-json $(BENCH_PAIRS)/gopatch.json | tee $(BENCH_LOG)/gopatch.txt

BENCH_TARGETS += bench-point bench-gopatch
