# Delta codecs on real files (issue 18), against `zstd -19 --patch-from`
# of the same files: gz_delta_ratio and elf_delta_ratio on the changed
# .gz and x86-64 ELF files of the point-release pair (mk/benchpairs.mk),
# and the same figures suffixed _pkgs on a few Debian packages at the
# oldest and the newest version the apt mirror offers
# (bench/data/codec-pair.sh, ~150 MB of downloads once).
$(BENCH_DIR)/codec/.done:
	bench/data/codec-pair.sh $(BENCH_DIR)/codec

.PHONY: bench-codecs
bench-codecs: $(BENCH_DIR)/codec/.done $(BENCH_DIR)/point/.done
	@$(BENCH_TEE) { $(GO) run ./bench/codecbench -old $(BENCH_DIR)/point/old -new $(BENCH_DIR)/point/new && \
		$(GO) run ./bench/codecbench -suffix _pkgs -old $(BENCH_DIR)/codec/old -new $(BENCH_DIR)/codec/new; } | tee $(BENCH_LOG)/codecs.txt

BENCH_TARGETS += bench-codecs
