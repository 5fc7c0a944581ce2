# Delta codecs on real files (issue 18): the changed .gz man pages and
# changelogs and ELF executables of a few Debian packages at two versions
# from the apt mirror (bench/data/codec-pair.sh, ~150 MB of downloads
# once), against `zstd --patch-from`. Prints gz_delta_ratio and
# elf_delta_ratio.
$(BENCH_DIR)/codec/.done:
	bench/data/codec-pair.sh $(BENCH_DIR)/codec

.PHONY: bench-codecs
bench-codecs: $(BENCH_DIR)/codec/.done
	@$(BENCH_TEE) $(GO) run ./bench/codecbench -old $(BENCH_DIR)/codec/old -new $(BENCH_DIR)/codec/new | tee $(BENCH_LOG)/codecs.txt

BENCH_TARGETS += bench-codecs
