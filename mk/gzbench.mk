# Deflate-aware deltas on real gzip files (issue 18): the man pages and
# changelogs of a few Debian packages at two versions from the apt mirror
# (bench/data/gz-pair.sh, ~150 MB of downloads once), measured against
# `zstd --patch-from` of the .gz files. Prints gz_delta_ratio.
$(BENCH_DIR)/gz/.done:
	bench/data/gz-pair.sh $(BENCH_DIR)/gz

.PHONY: bench-gz
bench-gz: $(BENCH_DIR)/gz/.done
	@$(BENCH_TEE) $(GO) run ./bench/gzbench -old $(BENCH_DIR)/gz/old -new $(BENCH_DIR)/gz/new | tee $(BENCH_LOG)/gz.txt

BENCH_TARGETS += bench-gz
