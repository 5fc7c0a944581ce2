# Hostile input and crashes (issue 6): make fuzz-short (part of make test),
# make fuzz, make crashtest. The hostile/ suite itself runs in make gotest
# (20 kill -9s there). Power cuts in the VM are not written yet.
# A fuzz crash leaves its input in <pkg>/testdata/fuzz/<Target>/: commit it,
# it is a regression case from then on (plain go test replays it).

# package:target for every decoder of outside data.
FUZZ_TARGETS := manifest:FuzzDecode manifest:FuzzDecodePolicies \
	repo:FuzzOpenIndex repo:FuzzOpenIndexSigned repo:FuzzParseDelivery \
	delta:FuzzApply bootptr:FuzzDecode initrd:FuzzParseCmdline \
	dbusapi:FuzzParseVersion dbusapi:FuzzParseOptions daemon:FuzzParseFileConfig
FUZZTIME_SHORT ?= 10s
FUZZTIME ?= 3m
# Minimising a new input may take a minute by default and stalls a short run.
FUZZ_MINIMIZE ?= 2s

.PHONY: fuzz fuzz-short crashtest

define run-fuzz
	@set -e; for pt in $(FUZZ_TARGETS); do \
		p=$${pt%%:*}; f=$${pt##*:}; echo "fuzz $$p $$f ($(1))"; \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(1) -fuzzminimizetime $(FUZZ_MINIMIZE) ./$$p/ 2>&1 | tail -n 3; \
		test $${PIPESTATUS[0]} -eq 0; \
	done
endef

fuzz-short:
	$(call run-fuzz,$(FUZZTIME_SHORT))

fuzz:
	$(call run-fuzz,$(FUZZTIME))

# 200 kill -9s across whole upgrades (make test runs 20).
crashtest: build
	UPGRADE_BIN=$(BIN) UPGRADE_CRASH_ITERS=200 $(GO) test -count=1 -timeout 60m -run 'TestKill9' -v ./hostile/ 2>&1 | grep -E '^(---|BENCH|ok|FAIL|\s+crash_test)' ; exit $${PIPESTATUS[0]}

TEST_EXTRA += fuzz-short
