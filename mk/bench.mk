# Benchmarks against the peers (issues 2 and 7): `make bench` prints BENCH
# lines and writes bench/results.md and bench/bytes.png; `make bench-quick`
# runs a small pair only (no Debian), for development.
#
# Data is built once and cached under $(BUILD)/bench: the Go pair (1.26.8 ->
# 1.27.3), the Debian pair (debootstrap minbase -> a few packages more) and
# the synthetic scale trees. Each pair's repositories (ours, ostree, casync)
# are cached in $(BUILD)/bench/work-PAIR and rebuilt when their inputs change.
BENCH_DIR := $(BUILD)/bench
BENCH_LOG := $(BENCH_DIR)/log
BENCH_PAIRS := $(BENCH_DIR)/pairs
BENCH_RUNS ?= 5
# Sizes for the scale series: clone and verify on disk, plan in memory.
BENCH_SCALE_DISK ?= 1000,10000,100000
BENCH_SCALE_PLAN ?= 1000,10000,100000,1000000
# `cmd | tee` must fail when cmd fails.
BENCH_TEE = set -o pipefail; mkdir -p $(BENCH_LOG) $(BENCH_PAIRS);

.PHONY: bench-data bench-clone bench-go bench-deb bench-quarter bench-scale bench-dbus bench-report bench-quick

$(BENCH_DIR)/go/.done:
	bench/data/go-pair.sh $(BENCH_DIR)/go
$(BENCH_DIR)/deb/.done:
	bench/data/deb-pair.sh $(BENCH_DIR)/deb
$(BENCH_DIR)/quick/.done: $(BENCH_DIR)/go/.done
	bench/data/quick-pair.sh $(BENCH_DIR)/go $(BENCH_DIR)/quick
bench-data: $(BENCH_DIR)/go/.done $(BENCH_DIR)/deb/.done

bench-clone: build $(BENCH_DIR)/go/.done
	@$(BENCH_TEE) $(GO) run ./bench/clonebench -tree $(BENCH_DIR)/go/old -runs $(BENCH_RUNS) | tee $(BENCH_LOG)/clone.txt

bench-go: build $(BENCH_DIR)/go/.done
	@$(BENCH_TEE) $(GO) run ./bench/pairbench -pair go -old $(BENCH_DIR)/go/old -new $(BENCH_DIR)/go/new \
		-work $(BENCH_DIR)/work-go -bin $(BIN) -runs $(BENCH_RUNS) -primary -verify \
		-json $(BENCH_PAIRS)/go.json | tee $(BENCH_LOG)/go.txt

bench-deb: build $(BENCH_DIR)/deb/.done
	@$(BENCH_TEE) $(GO) run ./bench/pairbench -pair deb -old $(BENCH_DIR)/deb/old -new $(BENCH_DIR)/deb/new \
		-work $(BENCH_DIR)/work-deb -bin $(BIN) -runs $(BENCH_RUNS) \
		-json $(BENCH_PAIRS)/deb.json | tee $(BENCH_LOG)/deb.txt

# Both pairs again with every client capped at a quarter of one core (a
# cgroup's cpu.max, the class of CPU the XO had), against rsync only; the
# repositories and roots are bench-go's and bench-deb's, so it runs after
# them. BENCH names end in _q25.
bench-quarter: bench-go bench-deb
	@$(BENCH_TEE) for p in go deb; do \
		$(GO) run ./bench/pairbench -pair $${p}_q25 -old $(BENCH_DIR)/$$p/old -new $(BENCH_DIR)/$$p/new \
			-work $(BENCH_DIR)/work-$$p -bin $(BIN) -runs 3 -peers rsync -cpu-quota 0.25 \
			-json $(BENCH_PAIRS)/$${p}_q25.json || exit 1; \
	done | tee $(BENCH_LOG)/quarter.txt

# Needs bench-go's repository and provisioned root.
bench-dbus: build
	@test -e $(BENCH_DIR)/work-go/state0 || $(MAKE) bench-go
	@$(BENCH_TEE) $(GO) run ./bench/dbusbench -work $(BENCH_DIR)/work-go -bin $(BIN) -timer-runs 3 | tee $(BENCH_LOG)/dbus.txt

bench-scale:
	@$(BENCH_TEE) $(GO) run ./bench/scalebench -work $(BENCH_DIR)/scale -runs $(BENCH_RUNS) \
		-disk $(BENCH_SCALE_DISK) -plan $(BENCH_SCALE_PLAN) | tee $(BENCH_LOG)/scale.txt

bench-report:
	$(GO) run ./bench/report -logs $(BENCH_LOG) -pairs $(BENCH_PAIRS) -md bench/results.md -png bench/bytes.png

# The small pair only, three runs, for development; results stay in
# $(BENCH_DIR)/quick-* (bench/results.md is left alone).
bench-quick: deps build $(BENCH_DIR)/quick/.done
	@$(BENCH_TEE) $(GO) run ./bench/pairbench -pair quick -old $(BENCH_DIR)/quick/old -new $(BENCH_DIR)/quick/new \
		-work $(BENCH_DIR)/work-quick -bin $(BIN) -runs 3 -verify -json $(BENCH_DIR)/quick.json | tee $(BENCH_DIR)/quick.txt

BENCH_TARGETS += bench-clone bench-go bench-deb bench-quarter bench-scale bench-dbus
