# The daemon's Landlock confinement (issue 14) on Debian's cloud kernel,
# booted through the initrd under qemu: the probe of confine.TestConfinement
# in a guest (one boot, ~15 s). The host run is part of make gotest.
.PHONY: confine-vmtest

confine-vmtest: deps initrd
	UPGRADE_VM=1 UPGRADE_VM_KERNEL=$(KERNEL_DIR)/vmlinuz UPGRADE_VM_INITRD=$(INITRD) \
		$(GO) test -count=1 -timeout 5m -run '^TestConfinementVM$$' -v ./confine/ 2>&1 | grep -v '^=== ' ; exit $${PIPESTATUS[0]}

TEST_EXTRA += confine-vmtest
