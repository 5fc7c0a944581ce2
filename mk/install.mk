# make install DESTDIR=… PREFIX=…: binaries, units, D-Bus activation and
# policy files, introspection XML, polkit actions, tmpfiles.d, the docs;
# the build server's resign units and their example. Binaries and units
# follow PREFIX (systemd also reads /usr/local/lib/systemd/system);
# @BINDIR@ in the units becomes $(PREFIX)/bin. D-Bus and polkit files do
# not: dbus-daemon reads policies only from /usr/share/dbus-1/system.d and
# /etc/dbus-1/system.d, and polkitd actions only from
# /usr/share/polkit-1/actions, whatever the prefix.
PREFIX ?= /usr
DESTDIR ?=
BINDIR := $(PREFIX)/bin
# upgraded finds its job worker at ../libexec/upgrade/upgrade-worker from
# its own binary (cmd/upgraded: runner).
LIBEXECDIR := $(PREFIX)/libexec/upgrade
UNITDIR := $(PREFIX)/lib/systemd/system
DBUSDIR ?= /usr/share/dbus-1
POLKITDIR ?= /usr/share/polkit-1/actions
TMPFILESDIR := $(PREFIX)/lib/tmpfiles.d
DOCDIR := $(PREFIX)/share/doc/laptop-upgrade
INSTALL_BINS := upgraded securityd upgradectl upgrade-publish

.PHONY: install installtest-local
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DBUSDIR)/system.d \
		$(DESTDIR)$(DBUSDIR)/system-services $(DESTDIR)$(DBUSDIR)/interfaces $(DESTDIR)$(POLKITDIR) \
		$(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)/img $(DESTDIR)$(DOCDIR)/examples
	for b in $(INSTALL_BINS); do install -m 0755 $(BIN)/$$b $(DESTDIR)$(BINDIR)/$$b; done
	install -m 0755 $(BIN)/upgrade-worker $(DESTDIR)$(LIBEXECDIR)/upgrade-worker
	for f in systemd/units/* systemd/publisher/*@.*; do \
		sed 's|@BINDIR@|$(BINDIR)|g' $$f > $(DESTDIR)$(UNITDIR)/$$(basename $$f); \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$f); done
	for f in systemd/dbus-services/*.service; do \
		sed 's|@BINDIR@|$(BINDIR)|g' $$f > $(DESTDIR)$(DBUSDIR)/system-services/$$(basename $$f); \
		chmod 0644 $(DESTDIR)$(DBUSDIR)/system-services/$$(basename $$f); done
	# The units' Alias= lines only become links on `systemctl enable`;
	# D-Bus activation needs dbus-org.*.service to exist before that.
	ln -sf upgraded.service $(DESTDIR)$(UNITDIR)/dbus-org.laptop.Upgrade1.service
	ln -sf securityd.service $(DESTDIR)$(UNITDIR)/dbus-org.laptop.Security1.service
	install -m 0644 systemd/dbus/*.conf $(DESTDIR)$(DBUSDIR)/system.d/
	install -m 0644 dbusapi/*.xml $(DESTDIR)$(DBUSDIR)/interfaces/
	install -m 0644 systemd/polkit/*.policy $(DESTDIR)$(POLKITDIR)/
	install -m 0644 systemd/tmpfiles.d/*.conf $(DESTDIR)$(TMPFILESDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/img/* $(DESTDIR)$(DOCDIR)/img/
	install -m 0644 systemd/publisher/stable.conf.example $(DESTDIR)$(DOCDIR)/examples/upgrade-publish-stable.conf

# PREFIX=/usr/local: binaries and units under it, D-Bus and polkit files
# where dbus-daemon and polkitd read them, the docs' images beside them.
installtest-local: build
	@d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
	$(MAKE) --no-print-directory install DESTDIR=$$d PREFIX=/usr/local >/dev/null && \
	for f in usr/local/bin/upgraded usr/local/libexec/upgrade/upgrade-worker usr/local/lib/systemd/system/upgraded.service \
		usr/local/lib/systemd/system/upgrade-publish-resign@.timer \
		usr/share/dbus-1/system.d/org.laptop.Upgrade1.conf usr/share/dbus-1/system.d/org.laptop.Security1.conf \
		usr/share/dbus-1/system-services/org.laptop.Upgrade1.service \
		usr/share/dbus-1/interfaces/org.laptop.Upgrade1.xml usr/share/dbus-1/interfaces/org.laptop.Security1.xml \
		usr/share/polkit-1/actions/org.laptop.upgrade.policy \
		usr/local/share/doc/laptop-upgrade/img/sugar-idle.png; do \
		test -e $$d/$$f || { echo "installtest-local: missing $$f"; exit 1; }; done && \
	test ! -e $$d/usr/local/share/dbus-1 && test ! -e $$d/usr/local/share/polkit-1 && \
	grep -q '^Exec=/usr/local/bin/upgraded$$' $$d/usr/share/dbus-1/system-services/org.laptop.Upgrade1.service && \
	for f in $$(grep -ho '(img/[^)]*)' docs/*.md | tr -d '()' | sort -u); do \
		test -e $$d/usr/local/share/doc/laptop-upgrade/$$f || { echo "installtest-local: docs link $$f missing"; exit 1; }; done && \
	echo "installtest-local: ok"

TEST_EXTRA += installtest-local
