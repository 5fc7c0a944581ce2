# Helpers shared by the Python suites. They run under the Go fixture in
# contrib/sugar/sugartest (`make sugartest`), which provides, through the
# environment:
#   DBUS_SYSTEM_BUS_ADDRESS  the private system bus with both daemons
#   SUGARTEST_CONTROL        its control server (reset, hold, kill, ...)
#   SUGARTEST_DESTDIR        where `make sugar-install` put the section
#   SUGARTEST_OUT            where logs and screenshots go

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import gi
gi.require_version('Gdk', '3.0')  # as Sugar's main.py does
gi.require_version('Gtk', '3.0')
from gi.repository import GLib  # noqa: E402

import dbus.bus  # noqa: E402
from dbus.mainloop.glib import DBusGMainLoop  # noqa: E402

CONTROL = os.environ.get('SUGARTEST_CONTROL', '')
DESTDIR = os.environ.get('SUGARTEST_DESTDIR', '')
OUT = os.environ.get('SUGARTEST_OUT', tempfile.gettempdir())

STOCK_EXTENSIONS = '/usr/share/sugar/extensions'
SECTION = 'systemupdate'

# How long to wait for any one thing the daemon does. Everything here
# takes seconds; the bound is for a loaded two-core machine, and is not a
# speed assertion.
WAIT = 240


def control(path, method='POST', **params):
    """Call the Go fixture's control server; returns its JSON answer."""
    if not CONTROL:
        raise RuntimeError('SUGARTEST_CONTROL is not set: run '
                           '`make sugartest`')
    data = urllib.parse.urlencode(params).encode() if method == 'POST' \
        else None
    req = urllib.request.Request(CONTROL + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=WAIT) as resp:
        body = resp.read()
    return json.loads(body) if body else None


_ext_dir = None


def setup_sugar():
    """Make the installed section loadable the way Sugar loads sections.

    Sugar imports 'cpsection.<name>' from jarabe.config.ext_path, which
    main.py appends to sys.path. A second 'cpsection' package on the path
    would hide the stock one, so the section gets an extensions folder of
    its own: symlinks to the stock sections plus ours, as installed by
    `make sugar-install`. Call before importing the section or the panel.
    """
    global _ext_dir
    if _ext_dir is not None:
        return _ext_dir
    installed = os.path.join(DESTDIR, 'usr/share/sugar/extensions/cpsection',
                             SECTION)
    if not os.path.isfile(os.path.join(installed, '__init__.py')):
        raise RuntimeError('section not installed in %r: run `make '
                           'sugartest`' % DESTDIR)
    ext = tempfile.mkdtemp(prefix='sugartest-ext-')
    atexit.register(shutil.rmtree, ext, True)
    os.chmod(ext, 0o755)  # the NotAuthorized test imports it as nobody
    cpsection = os.path.join(ext, 'cpsection')
    os.mkdir(cpsection)
    stock = os.path.join(STOCK_EXTENSIONS, 'cpsection')
    for name in os.listdir(stock):
        if name != SECTION and name != '__pycache__':
            os.symlink(os.path.join(stock, name),
                       os.path.join(cpsection, name))
    os.symlink(installed, os.path.join(cpsection, SECTION))

    from jarabe import config
    config.ext_path = ext
    config.locale_path = os.path.join(DESTDIR, 'usr/share/locale')
    sys.path.append(ext)
    _ext_dir = ext
    return ext


def setup_theme():
    """Theme settings as Sugar's main.py sets them (else no icons)."""
    from gi.repository import Gtk
    from jarabe import config
    settings = Gtk.Settings.get_default()
    settings.set_property('gtk-theme-name', 'sugar-72')
    settings.set_property('gtk-icon-theme-name', 'sugar')
    settings.set_property('gtk-button-images', True)
    theme = Gtk.IconTheme.get_default()
    theme.append_search_path(os.path.join(config.data_path, 'icons'))
    theme.append_search_path(os.path.join(DESTDIR,
                                          'usr/share/sugar/data/icons'))


def wait_until(predicate, what, timeout=WAIT):
    """Run the GLib main loop until predicate() is true.

    This is how the section lives in Sugar: every reply and signal arrives
    through the main loop. A periodic source wakes the loop so that the
    deadline is noticed even when nothing arrives.
    """
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    tick = GLib.timeout_add(100, lambda: True)
    try:
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError('gave up after %d s waiting for %s'
                                     % (timeout, what))
            ctx.iteration(True)
    finally:
        GLib.source_remove(tick)


def drain():
    """Handle everything the main loop has pending."""
    ctx = GLib.MainContext.default()
    while ctx.pending():
        ctx.iteration(False)


class StrictBus(dbus.bus.BusConnection):
    """A private system bus connection on which a blocking call is a bug.

    Every synchronous call dbus-python makes (a proxy call without
    reply_handler, add_match_string, get_name_owner, ...) goes through
    call_blocking; the section must never make one on the GTK main loop.
    Violations are kept (a callback's exception would be swallowed) and
    raised.
    """

    def __new__(cls):
        bus = super().__new__(cls, os.environ['DBUS_SYSTEM_BUS_ADDRESS'],
                              mainloop=DBusGMainLoop())
        bus.blocking = []
        return bus

    def call_blocking(self, bus_name, object_path, interface, method,
                      *args, **kwargs):
        call = '%s.%s on %s' % (interface, method, bus_name)
        self.blocking.append(call)
        raise AssertionError('blocking D-Bus call: ' + call)
