# Debian packages (issue 19): make deb builds laptop-upgrade,
# laptop-upgrade-publisher and sugar-cpsection-systemupdate with
# dpkg-buildpackage -us -uc -b from a copy of the tree under build/deb/src
# and fails on a lintian error; make debtest then installs them into a
# clean Debian 12 root (debootstrap minbase, cached in build/deb/base with
# the dependencies in build/deb/deps-*), checks that systemd, dbus-daemon,
# polkitd and Sugar find their files, purges them and checks that nothing
# is left behind (scripts/deb/test.sh). Measured on 2 shared cores: the
# first run ~8.5 min (debootstrap 3, the dependencies with Sugar's ~250
# packages 4, the build 1.5), later runs ~1.3 min (the build, then 20 s).
DEB_OUT := $(BUILD)/deb

.PHONY: deb debtest

deb: deps
	scripts/deb/build.sh $(DEB_OUT)

debtest: deb
	scripts/deb/test.sh $(DEB_OUT)

# Not in make test: on a fresh machine it takes ~8.5 min, which would push
# make test past its 45 minutes; .ci/run runs it after make test.
