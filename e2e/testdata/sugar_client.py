#!/usr/bin/python3
"""Drive org.laptop.Upgrade1 the way Sugar's control panel does.

dbus-python on a GLib main loop: subscribe to PropertiesChanged and
Finished first, then call Upgrade asynchronously (a blocking call would
freeze the UI), collect the progress as it comes, and quit on Finished.
Prints one JSON object on stdout; exits 0 if Finished said success.

usage: sugar_client.py [VERSION]
"""
import json
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

NAME = 'org.laptop.Upgrade1'
PATH = '/org/laptop/Upgrade1'
IFACE = 'org.laptop.Upgrade1'
TIMEOUT_S = 120

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
loop = GLib.MainLoop()
out = {'job': None, 'finished': [], 'states': [], 'progress': [],
       'changes': 0, 'error': None}


def on_changed(iface, changed, invalidated):
    if iface != IFACE:
        return
    out['changes'] += 1
    if 'State' in changed:
        state = str(changed['State'])
        if not out['states'] or out['states'][-1] != state:
            out['states'].append(state)
    if 'Progress' in changed:
        out['progress'].append(int(changed['Progress']))


def on_finished(job, success, error_name, message):
    out['finished'].append({'job': int(job), 'success': bool(success),
                            'error_name': str(error_name),
                            'message': str(message)})
    maybe_quit()


def maybe_quit():
    if any(f['job'] == out['job'] for f in out['finished']):
        loop.quit()


def on_reply(job):
    out['job'] = int(job)
    maybe_quit()  # Finished may already be here


def on_error(err):
    out['error'] = err.get_dbus_name() + ': ' + err.get_dbus_message()
    loop.quit()


def on_timeout():
    out['error'] = 'timeout waiting for Finished'
    loop.quit()
    return False


bus.add_signal_receiver(on_changed, signal_name='PropertiesChanged',
                        dbus_interface='org.freedesktop.DBus.Properties',
                        bus_name=NAME, path=PATH)
bus.add_signal_receiver(on_finished, signal_name='Finished',
                        dbus_interface=IFACE, bus_name=NAME, path=PATH)
proxy = bus.get_object(NAME, PATH)
props = dbus.Interface(proxy, 'org.freedesktop.DBus.Properties')
out['before'] = {str(k): str(v) for k, v in props.GetAll(IFACE).items()}
upgrade = dbus.Interface(proxy, IFACE)
version = sys.argv[1] if len(sys.argv) > 1 else ''
upgrade.Upgrade(version, dbus.Dictionary({}, signature='sv'),
                reply_handler=on_reply, error_handler=on_error)
GLib.timeout_add_seconds(TIMEOUT_S, on_timeout)
loop.run()
out['after'] = {str(k): str(v) for k, v in props.GetAll(IFACE).items()}
print(json.dumps(out))
ok = out['error'] is None and any(
    f['job'] == out['job'] and f['success'] for f in out['finished'])
sys.exit(0 if ok else 1)
