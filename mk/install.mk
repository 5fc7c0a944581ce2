# make install DESTDIR=… PREFIX=…: binaries, units, D-Bus activation and
# policy files, polkit actions, tmpfiles.d. Paths of systemd and D-Bus data
# follow PREFIX (/usr on Debian); @BINDIR@ in the units becomes $(PREFIX)/bin.
PREFIX ?= /usr
DESTDIR ?=
BINDIR := $(PREFIX)/bin
UNITDIR := $(PREFIX)/lib/systemd/system
DBUSDIR := $(PREFIX)/share/dbus-1
POLKITDIR := $(PREFIX)/share/polkit-1/actions
TMPFILESDIR := $(PREFIX)/lib/tmpfiles.d
DOCDIR := $(PREFIX)/share/doc/laptop-upgrade
INSTALL_BINS := upgraded securityd upgradectl upgrade-publish

.PHONY: install
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DBUSDIR)/system.d \
		$(DESTDIR)$(DBUSDIR)/system-services $(DESTDIR)$(POLKITDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)
	for b in $(INSTALL_BINS); do install -m 0755 $(BIN)/$$b $(DESTDIR)$(BINDIR)/$$b; done
	for f in systemd/units/*; do \
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
	install -m 0644 systemd/polkit/*.policy $(DESTDIR)$(POLKITDIR)/
	install -m 0644 systemd/tmpfiles.d/*.conf $(DESTDIR)$(TMPFILESDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/
