# The Sugar control panel section "System update" (issue 8).
#   make sugar-install [DESTDIR=…]  install the section, its icon and catalogs
#   make sugartest                  lint, then the model and view suites against
#                                   the real daemon (contrib/sugar/sugartest)
#   make sugar-pot                  refresh the translation template
#   make sugar-screenshots          copy the last sugartest screenshots to docs/img
SUGAR_SRC := contrib/sugar
SUGAR_SECTION := $(SUGAR_SRC)/cpsection/systemupdate
SUGAR_DOMAIN := sugar-systemupdate
SUGAR_LANGS := $(basename $(notdir $(wildcard $(SUGAR_SRC)/po/*.po)))
SUGAR_TEST_ROOT := $(BUILD)/sugar-root
SUGAR_TEST_OUT := $(BUILD)/sugartest
# Debian's interpreter (python3-dbus, python3-gi, jarabe); the first python3
# on PATH may be another.
SUGAR_PYTHON := /usr/bin/python3
SUGAR_XGETTEXT := xgettext --language=Python --keyword=_ --add-comments=TRANS: \
	--package-name=$(SUGAR_DOMAIN) --from-code=UTF-8

.PHONY: sugar-install sugartest sugar-lint sugar-pot sugar-screenshots

sugar-install:
	install -d $(DESTDIR)/usr/share/sugar/extensions/cpsection/systemupdate
	install -m 0644 $(SUGAR_SECTION)/*.py $(DESTDIR)/usr/share/sugar/extensions/cpsection/systemupdate/
	install -D -m 0644 $(SUGAR_SRC)/icons/module-system-update.svg \
		$(DESTDIR)/usr/share/sugar/data/icons/module-system-update.svg
	@for l in $(SUGAR_LANGS); do \
		install -d $(DESTDIR)/usr/share/locale/$$l/LC_MESSAGES && \
		msgfmt --check -o $(DESTDIR)/usr/share/locale/$$l/LC_MESSAGES/$(SUGAR_DOMAIN).mo $(SUGAR_SRC)/po/$$l.po \
		|| exit 1; \
	done

# flake8 as Sugar uses it; the template must hold every string of the
# sources, and every catalog must translate all of the template.
sugar-lint:
	$(SUGAR_PYTHON) -m flake8 $(SUGAR_SRC)
	@mkdir -p $(BUILD)
	@$(SUGAR_XGETTEXT) -o $(BUILD)/$(SUGAR_DOMAIN).pot $(SUGAR_SECTION)/*.py
	msgcmp --use-untranslated $(SUGAR_SRC)/po/$(SUGAR_DOMAIN).pot $(BUILD)/$(SUGAR_DOMAIN).pot
	@for l in $(SUGAR_LANGS); do msgcmp $(SUGAR_SRC)/po/$$l.po $(SUGAR_SRC)/po/$(SUGAR_DOMAIN).pot || exit 1; done

sugartest: deps build sugar-lint
	rm -rf $(SUGAR_TEST_ROOT)
	$(MAKE) --no-print-directory sugar-install DESTDIR=$(SUGAR_TEST_ROOT)
	UPGRADE_SUGAR=1 UPGRADE_BIN=$(BIN) UPGRADE_SUGAR_DESTDIR=$(SUGAR_TEST_ROOT) UPGRADE_SUGAR_OUT=$(SUGAR_TEST_OUT) \
		$(GO) test -count=1 -timeout 30m -v ./contrib/sugar/sugartest/ 2>&1 | grep -v '^=== ' ; exit $${PIPESTATUS[0]}

sugar-pot:
	$(SUGAR_XGETTEXT) -o $(SUGAR_SRC)/po/$(SUGAR_DOMAIN).pot $(SUGAR_SECTION)/*.py
	sed -i 's/charset=CHARSET/charset=UTF-8/' $(SUGAR_SRC)/po/$(SUGAR_DOMAIN).pot
	@for l in $(SUGAR_LANGS); do msgmerge --quiet --update --backup=none $(SUGAR_SRC)/po/$$l.po $(SUGAR_SRC)/po/$(SUGAR_DOMAIN).pot; done

# The docs show one screenshot per state, shrunk to keep the repository small.
sugar-screenshots:
	@mkdir -p docs/img
	@for s in idle progress ready error; do \
		convert $(SUGAR_TEST_OUT)/TestView/$$s.png -resize 800x -colors 64 -strip docs/img/sugar-$$s.png || exit 1; \
	done

TEST_EXTRA += sugartest
