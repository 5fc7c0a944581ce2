# systemd and network integration (issue 5). The unit checks and the netns
# tests run inside `make gotest` (systemd/, netmon/, nettest/); this adds the
# install check and the exposure score for `make bench`.
.PHONY: installtest bench-systemd

# Installs into a temp DESTDIR and checks the tree and the rendered units.
installtest: build
	@d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
	$(MAKE) --no-print-directory install DESTDIR=$$d PREFIX=/usr >/dev/null && \
	for f in usr/bin/upgraded usr/libexec/upgrade/upgrade-worker usr/bin/securityd usr/bin/upgradectl \
		usr/lib/systemd/system/upgraded.service usr/lib/systemd/system/upgrade-check.timer \
		usr/lib/systemd/system/dbus-org.laptop.Upgrade1.service \
		usr/share/dbus-1/system-services/org.laptop.Upgrade1.service \
		usr/share/dbus-1/system-services/org.laptop.Security1.service \
		usr/share/dbus-1/system.d/org.laptop.Upgrade1.conf usr/share/polkit-1/actions/org.laptop.upgrade.policy \
		usr/lib/tmpfiles.d/laptop-upgrade.conf; do \
		test -e $$d/$$f || { echo "installtest: missing $$f"; exit 1; }; done && \
	! grep -rl '@BINDIR@' $$d/usr/lib $$d/usr/share/dbus-1 && grep -q '^ExecStart=/usr/bin/upgraded --confine=required$$' $$d/usr/lib/systemd/system/upgraded.service && \
	echo "installtest: ok"

bench-systemd: build
	@d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
	sed 's|@BINDIR@|$(BIN)|g' systemd/units/upgraded.service > $$d/upgraded.service && \
	s=$$(systemd-analyze security --offline=true $$d/upgraded.service | sed -n 's/.*Overall exposure level for upgraded.service: \([0-9.]*\).*/\1/p') && \
	test -n "$$s" && mkdir -p $(BENCH_LOG) && echo "BENCH unit_exposure_upgraded $$s (0 = locked down, 10 = exposed)" | tee $(BENCH_LOG)/systemd.txt

TEST_EXTRA += installtest
BENCH_TARGETS += bench-systemd
