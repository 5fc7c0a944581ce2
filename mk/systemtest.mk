# The whole product in qemu (issue 14, systemtest/): the image from
# `make image` boots through the project's initrd and upgrades itself.
# make systemtest runs every scenario; make test runs the timer (1) and the
# broken release (3) through systemtest-short.
SYSTEMTEST_ENV = UPGRADE_SYSTEMTEST=1 UPGRADE_BIN=$(BIN) \
	UPGRADE_IMAGE_DIR=$(IMAGE_DIR) UPGRADE_IMAGE_PORT=$(IMAGE_PORT)
SYSTEMTEST_SHORT ?= ^(TestTimer|TestBrokenRelease)$$
# $(1): the -run pattern.
define run-systemtest
	$(SYSTEMTEST_ENV) $(GO) test -count=1 -timeout 90m -run '$(1)' -v ./systemtest/ 2>&1 | grep -v '^=== ' ; exit $${PIPESTATUS[0]}
endef

.PHONY: systemtest systemtest-short
systemtest: deps build initrd image
	$(call run-systemtest,.)

systemtest-short: deps build initrd image
	$(call run-systemtest,$(SYSTEMTEST_SHORT))

TEST_EXTRA += systemtest-short

# Figures of scenario 1 (issue 14), medians of BENCH_OS_RUNS runs:
# os_upgrade_s, os_reboot_to_good_s, os_boot_to_ready_s,
# os_daemon_idle_rss_mib.
BENCH_OS_RUNS ?= 3
.PHONY: bench-os
bench-os: deps build initrd image
	@$(BENCH_TEE) { $(SYSTEMTEST_ENV) UPGRADE_OS_BENCH_RUNS=$(BENCH_OS_RUNS) $(GO) test -count=1 -timeout 120m -run '^TestOSBench$$' -v ./systemtest/ | grep '^BENCH'; } | tee $(BENCH_LOG)/os.txt

BENCH_TARGETS += bench-os
