# System update: a Sugar control panel section for the dual-slot upgrade
# daemon (org.laptop.Upgrade1).
#
# Sugar's control panel (jarabe/controlpanel/gui.py) imports this package
# to list the section: CLASS names the view class in view.py, ICON an icon
# in Sugar's icon theme, TITLE and KEYWORDS what the search box matches.
#
# Strings are translated in their own gettext domain: this section ships
# outside Sugar, so Sugar's 'sugar' catalog does not know them. The catalog
# lives where Sugar keeps its own (jarabe.config.locale_path).

import gettext

from jarabe import config

DOMAIN = 'sugar-systemupdate'
gettext.bindtextdomain(DOMAIN, config.locale_path)


def _(message):
    return gettext.dgettext(DOMAIN, message)


CLASS = 'SystemUpdate'
ICON = 'module-system-update'
TITLE = _('System update')
KEYWORDS = ['system', 'update', 'upgrade', 'version', 'restart',
            _('system'), _('update'), _('version'), _('restart')]
