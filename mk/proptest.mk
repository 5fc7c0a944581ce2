# Random tree pairs end to end (issue 16, proptest/): each input of
# FuzzUpgradeChain is a seed for a chain of random versions (4 in tests, 3
# pairs; 2 when fuzzing) published, upgraded through and verified. make gotest replays 9 pairs
# (under the race detector) and the kept seeds; make test runs
# PROPTEST_TEST_PAIRS more; make fuzz PROPTEST_FUZZ_PAIRS. A failing seed
# found by make fuzz is saved by go test in
# proptest/testdata/fuzz/FuzzUpgradeChain/: commit it. One found by make
# test is printed ("seed N"): save it there as `go test fuzz v1` /
# `uint64(N)`.
PROPTEST_TEST_PAIRS ?= 300
PROPTEST_FUZZ_PAIRS ?= 10000
# tmpfs when there is one: the test is about logic, and fsyncs on a shared
# disk would make most of its time.
PROPTEST_ENV = PROPTEST_TMPDIR=$(shell test -d /dev/shm && echo /dev/shm)

.PHONY: proptest proptest-fuzz

proptest:
	$(PROPTEST_ENV) PROPTEST_PAIRS=$(PROPTEST_TEST_PAIRS) $(GO) test -count=1 -timeout 40m -run '^FuzzUpgradeChain$$' ./proptest/

proptest-fuzz:
	$(PROPTEST_ENV) PROPTEST_CHAIN=2 PROPTEST_PAIRS=0 $(GO) test -run '^$$' -fuzz '^FuzzUpgradeChain$$' -fuzztime $(PROPTEST_FUZZ_PAIRS)x -fuzzminimizetime 1x ./proptest/

TEST_EXTRA += proptest
fuzz: proptest-fuzz
