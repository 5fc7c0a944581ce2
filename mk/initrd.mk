# The initramfs (issue 4): make initrd, make vmtest, make bench-initrd.
# KERNEL_DIR holds a kernel tree as dpkg -x leaves it (boot/vmlinuz-*,
# lib/modules/VERSION); by default Debian's cloud kernel, fetched once.
KERNEL_DIR ?= $(BUILD)/kernel
INITRD ?= $(BUILD)/initrd.cpio.gz
INITRD_MODULES ?= scripts/initrd/modules.txt
INITRD_KMOD ?= $(KERNEL_DIR)/lib/modules/$$(cat $(KERNEL_DIR)/version)
# The second, newer kernel the kernel-switch tests put in slot b (issue 17),
# pinned, with its image built from its own modules.
KERNEL2_PKG ?= linux-image-6.12.118+deb12-cloud-amd64
KERNEL2_DIR ?= $(BUILD)/kernel2
INITRD2 ?= $(BUILD)/initrd-kernel2.cpio.gz
# Debian's own initramfs-tools image of the same kernel, for the comparison
# figures of bench-initrd (issue 14).
DEBIAN_INITRD ?= $(BUILD)/debian-initrd.img

.PHONY: initrd initrd2 debian-initrd slot-initrd kernel kernel2 vmtest bench-initrd

kernel: $(KERNEL_DIR)/.done
$(KERNEL_DIR)/.done:
	scripts/initrd/fetch-kernel.sh $(KERNEL_DIR)

kernel2: $(KERNEL2_DIR)/.done
$(KERNEL2_DIR)/.done:
	scripts/initrd/fetch-kernel.sh $(KERNEL2_DIR) $(KERNEL2_PKG)

debian-initrd: $(DEBIAN_INITRD)
$(DEBIAN_INITRD): $(KERNEL_DIR)/.done scripts/initrd/debian-initrd.sh
	scripts/initrd/debian-initrd.sh $(KERNEL_DIR) $@

initrd2: initrd $(KERNEL2_DIR)/.done
	$(GO) run ./initrd/cmd/mkinitrd -init $(BUILD)/initrd/init -kmod $(KERNEL2_DIR)/lib/modules/$$(cat $(KERNEL2_DIR)/version) -modules $(INITRD_MODULES) -o $(INITRD2)

# A slot tree's own image from its own modules (docs/boot.md, Kernels), run
# on the tree before upgrade-publish: make slot-initrd SLOT=path/to/tree
slot-initrd:
	@test -n "$(SLOT)" || { echo "usage: make slot-initrd SLOT=path/to/tree" >&2; exit 2; }
	@mkdir -p $(BUILD)/initrd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BUILD)/initrd/init ./cmd/init
	$(GO) run ./initrd/cmd/mkinitrd -slot $(SLOT) -init $(BUILD)/initrd/init -modules $(INITRD_MODULES)

VM_ENV = UPGRADE_VM=1 UPGRADE_VM_KERNEL=$(KERNEL_DIR)/vmlinuz UPGRADE_VM_INITRD=$(INITRD) \
	UPGRADE_VM_KERNEL_DIR=$(KERNEL_DIR) UPGRADE_VM_KERNEL2_DIR=$(KERNEL2_DIR) UPGRADE_VM_INITRD2=$(INITRD2)

initrd: $(KERNEL_DIR)/.done
	@mkdir -p $(BUILD)/initrd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BUILD)/initrd/init ./cmd/init
	$(GO) run ./initrd/cmd/mkinitrd -init $(BUILD)/initrd/init -kmod $(INITRD_KMOD) -modules $(INITRD_MODULES) -o $(INITRD)

# Boots the image under qemu (TCG) against a real ext4 disk: normal boot,
# override, boot counting and fallback, corrupt pointer, missing root; and
# the kernel switch: slot b's newer kernel by kexec, a panicking one's
# fallback, a rollback to the old kernel.
vmtest: deps initrd initrd2
	$(VM_ENV) $(GO) test -count=1 -timeout 15m -run 'TestVM' -v ./initrd/ 2>&1 | grep -v '^=== ' ; exit $${PIPESTATUS[0]}

# Boot cost (docs/boot.md): median of 5 qemu boots (TCG) and of 5 native
# runs of the host-safe steps in a private mount+PID namespace; and against
# Debian's initramfs-tools and a floor image (the least a Go /init can do)
# on the same kernel and disk, 5 boots each.
bench-initrd: initrd initrd2 $(DEBIAN_INITRD)
	@$(BENCH_TEE) { $(VM_ENV) UPGRADE_VM_BENCH=1 UPGRADE_INIT_BIN=$(BUILD)/initrd/init UPGRADE_VM_DEBIAN_INITRD=$(DEBIAN_INITRD) \
		UPGRADE_VM_INITRD_MODULES=$(abspath $(INITRD_MODULES)) \
		$(GO) test -count=1 -timeout 40m -run '^(TestVMBench|TestVMKernelBench|TestNativeBench|TestVMCompareBench)$$' -v ./initrd/ | grep '^BENCH' && \
	echo "BENCH initrd_kib $$(( ($$(stat -c %s $(INITRD)) + 1023) / 1024 )) KiB"; } | tee $(BENCH_LOG)/initrd.txt

TEST_EXTRA += vmtest
BENCH_TARGETS += bench-initrd
