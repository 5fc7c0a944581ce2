# The system-test OS (issue 14): make image builds build/image/ with
# image/build.sh: Debian 12 (debootstrap, cached in build/image/base) with
# the project installed by `make install`, versions 1-3 published to
# build/image/repo (build/image/repo-v2 stops at 2; repo-kpanic has a
# version 3 whose kernel panics), root disks provisioned at v1 and v2, and
# what each disk's firmware loads (boot-vN/). v1 carries the kernel of
# build/kernel, v2 the newer one of build/kernel2 (issue 17), each with
# its own initrd. Rebuilt when the project's sources change.
IMAGE_DIR ?= $(BUILD)/image
IMAGE_MIRROR ?= http://deb.debian.org/debian
IMAGE_SECURITY_MIRROR ?= http://deb.debian.org/debian-security
# The port the guest's upgraded.conf names; systemtest serves the repository there.
IMAGE_PORT ?= 47613
IMAGE_INPUTS := $(shell git ls-files '*.go' ':!:*_test.go' ':!:systemtest/*' 'image/*' 'systemd/*' scripts/initrd/modules.txt mk/install.mk 2>/dev/null)

.PHONY: image
image: $(IMAGE_DIR)/.done

$(IMAGE_DIR)/.done: $(IMAGE_INPUTS) mk/image.mk | deps build kernel kernel2 initrd
	OUT=$(IMAGE_DIR) BIN=$(BIN) KERNEL_DIR=$(KERNEL_DIR) KERNEL2_DIR=$(KERNEL2_DIR) INIT=$(BUILD)/initrd/init \
		MODULES=$(INITRD_MODULES) MIRROR=$(IMAGE_MIRROR) SECURITY_MIRROR=$(IMAGE_SECURITY_MIRROR) \
		PORT=$(IMAGE_PORT) image/build.sh
	touch $@
