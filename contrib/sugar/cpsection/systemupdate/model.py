# Model of the System update section: the upgrade daemon as seen over the
# system bus.
#
# The daemon (org.laptop.Upgrade1; dbusapi/org.laptop.Upgrade1.xml) does
# the work; this model only mirrors its properties, starts and cancels its
# jobs, and turns its error names into sentences a child or a teacher can
# act on. It never blocks the GTK main loop: every call to the daemon and
# to logind is asynchronous (reply_handler/error_handler), and even the
# match rules are sent without waiting. The one synchronous exchange is
# connecting to the bus itself, as in every Sugar model.
#
# The daemon may restart at any time (an update, a crash, systemd's
# watchdog). The model follows the owner of the bus name: when it goes
# away the section says so, when it comes back the model reads every
# property again, and the daemon sends Finished for a job that the restart
# cut off, so the view sees the end of the job it started.
#
# Sugar's ModelWrapper calls every module-level get_*() when the section
# opens (to undo changes later); this module defines none, and the getters
# of SystemUpdateModel only read what the model already holds. The
# sentences for the daemon's errors are in errors.py.

import logging

import dbus
import dbus.connection
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GObject

from .errors import ERROR_PREFIX, Error, error_sentence  # noqa: F401
from . import _

BUS_NAME = 'org.laptop.Upgrade1'
OBJECT_PATH = '/org/laptop/Upgrade1'
INTERFACE = 'org.laptop.Upgrade1'
PROPERTIES = 'org.freedesktop.DBus.Properties'
DBUS_NAME = 'org.freedesktop.DBus'
DBUS_PATH = '/org/freedesktop/DBus'
LOGIN1_NAME = 'org.freedesktop.login1'
LOGIN1_PATH = '/org/freedesktop/login1'
LOGIN1_MANAGER = 'org.freedesktop.login1.Manager'

# Check asks the mirrors; the daemon answers within 20 s (Network if the
# mirrors are too slow), so D-Bus's default would do; a margin for a busy bus.
CHECK_TIMEOUT = 30
CALL_TIMEOUT = 30

# Daemon states (property State) in which a job is running.
JOB_STATES = ('cloning', 'downloading', 'applying', 'verifying',
              'activating')
READY = 'ready-to-reboot'

# What the view shows, derived from the daemon's state and the calls in
# flight (see SystemUpdateModel.get_phase).
PHASE_CONNECTING = 'connecting'    # asking the bus who owns the name
PHASE_UNAVAILABLE = 'unavailable'  # the daemon is not on the bus
PHASE_IDLE = 'idle'
PHASE_CHECKING = 'checking'        # a Check is in flight
PHASE_WORKING = 'working'          # a job runs (or is being started)
PHASE_READY = 'ready'              # the next boot runs the new version
PHASE_ROLLING_BACK = 'rolling-back'

_logger = logging.getLogger('ControlPanel - SystemUpdate')


def _py(value):
    """Plain Python values from dbus-python's types."""
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _py(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    return value


def _running_session_manager():
    """The Sugar shell's session manager if the shell made one; never
    creates one (that would start a second XSMP session)."""
    try:
        from jarabe.model import session
    except ImportError:
        return None
    return getattr(session, '_session_manager', None)


class SystemUpdateModel(GObject.GObject):
    """The upgrade daemon, followed over the system bus.

    Signals: 'changed' whenever anything a view shows may have changed;
    'check-finished' (result dict, or None after an error); 'finished'
    (job, success, Error or None) when a job ends.
    """

    __gsignals__ = {
        'changed': (GObject.SignalFlags.RUN_FIRST, None, ()),
        'check-finished': (GObject.SignalFlags.RUN_FIRST, None, (object,)),
        'finished': (GObject.SignalFlags.RUN_FIRST, None,
                     (int, bool, object)),
    }

    def __init__(self, bus=None):
        GObject.GObject.__init__(self)
        if bus is None:
            # Sugar's shell sets the GLib main loop as dbus-python's
            # default already; a test or another host may not have.
            DBusGMainLoop(set_as_default=True)
            bus = dbus.SystemBus()
        self._bus = bus
        self._owner = None       # None: not known yet, '': no daemon
        self._generation = 0     # bumped per owner: drops stale replies
        self._props = {}
        self._loaded = False
        self._pending = None     # 'check', 'upgrade', 'cancel' in flight
        self._job = 0            # the job this model started or saw run
        self._job_running = False
        self._check_result = None
        self._error = None       # an Error from a call or a job
        self._state_before_check = None
        self._rebooting = False
        self._closed = False

        self._daemon = bus.get_object(BUS_NAME, OBJECT_PATH,
                                      introspect=False,
                                      follow_name_owner_changes=True)
        # Subscribe first, then ask: signals sent between the snapshot and
        # the subscription would otherwise be lost. The bus handles the
        # AddMatch calls before the GetNameOwner that follows them.
        self._matches = [
            self._listen(self.__owner_changed_cb, 'NameOwnerChanged',
                         DBUS_NAME, DBUS_NAME, DBUS_PATH, arg0=BUS_NAME),
            self._listen(self.__properties_changed_cb, 'PropertiesChanged',
                         PROPERTIES, BUS_NAME, OBJECT_PATH),
            self._listen(self.__finished_cb, 'Finished', INTERFACE,
                         BUS_NAME, OBJECT_PATH),
        ]
        bus.call_async(DBUS_NAME, DBUS_PATH, DBUS_NAME, 'GetNameOwner', 's',
                       (BUS_NAME,), self.__get_name_owner_cb,
                       self.__get_name_owner_error_cb)

    def _listen(self, handler, member, interface, sender, path, **match):
        # dbus.bus.BusConnection.add_signal_receiver would send AddMatch
        # and wait for the reply; register the match locally and send the
        # rule without waiting instead.
        m = dbus.connection.Connection.add_signal_receiver(
            self._bus, handler, member, interface, sender, path, **match)
        self._bus.add_match_string_non_blocking(str(m))
        return m

    def close(self):
        """Stop following the daemon (the view is gone). A running job
        goes on: it belongs to the daemon, not to this window."""
        if self._closed:
            return
        self._closed = True
        self._generation += 1
        for m in self._matches:
            m.remove()
        self._matches = []

    # -- cheap getters: no D-Bus, no side effects --

    def get_service_running(self):
        """True, False, or None while the bus has not answered yet."""
        if self._owner is None:
            return None
        return self._owner != ''

    def get_loaded(self):
        return self._loaded

    def get_state(self):
        return self._props.get('State', '')

    def get_current_version(self):
        return self._props.get('CurrentVersion', '')

    def get_available_version(self):
        return self._props.get('AvailableVersion', '')

    def get_target_version(self):
        return (self._props.get('TargetVersion', '') or
                self.get_available_version())

    def get_next_boot_version(self):
        return self._props.get('NextBootVersion', '')

    def get_next_boot_slot(self):
        return self._props.get('NextBootSlot', '')

    def get_booted_slot(self):
        return self._props.get('BootedSlot', '')

    def get_last_check(self):
        return self._props.get('LastCheck', 0)

    def get_boot_failure(self):
        """The daemon's note that a new version did not finish booting
        and the computer fell back ('' if none)."""
        return self._props.get('BootFailure', '')

    def get_progress(self):
        """The job's progress as a fraction from 0 to 1."""
        return min(max(self._props.get('Progress', 0), 0), 100) / 100.0

    def get_bytes(self):
        return (self._props.get('BytesDone', 0),
                self._props.get('BytesTotal', 0))

    def get_job(self):
        return self._job

    def get_check_result(self):
        return self._check_result

    def get_error(self):
        """The Error to show, or None.

        An error from a call made here (refused, unreachable daemon) comes
        first; otherwise the daemon's LastError, which survives restarts
        and also reports jobs started elsewhere (a timer, upgradectl).
        """
        if self._error is not None:
            return self._error
        name = self._props.get('LastError', '')
        if name and self.get_phase() == PHASE_IDLE:
            return Error(name, self._props.get('LastErrorMessage', ''))
        return None

    def get_phase(self):
        if self._owner is None or (self._owner and not self._loaded):
            return PHASE_CONNECTING
        if self._owner == '':
            return PHASE_UNAVAILABLE
        state = self.get_state()
        if self._pending == 'upgrade' or self._job_running or \
                state in JOB_STATES:
            return PHASE_WORKING
        if self._pending == 'check' or state == 'checking':
            return PHASE_CHECKING
        if state == READY:
            return PHASE_READY
        if state == 'rolling-back':
            return PHASE_ROLLING_BACK
        return PHASE_IDLE

    def can_check(self):
        return self.get_phase() in (PHASE_IDLE, PHASE_READY)

    def can_upgrade(self):
        return (self.get_phase() == PHASE_IDLE and
                self.get_available_version() != '')

    def can_cancel(self):
        return (self.get_phase() == PHASE_WORKING and
                self._pending is None)

    def can_restart(self):
        return self.get_phase() == PHASE_READY and not self._rebooting

    # -- actions: all asynchronous --

    def check(self):
        """Ask the daemon to look for a new version ('check-finished')."""
        self._state_before_check = self.get_state()
        self._start('check')
        self._daemon.Check(dbus_interface=INTERFACE, timeout=CHECK_TIMEOUT,
                           reply_handler=self._guard(self.__check_cb),
                           error_handler=self._guard(self.__check_error_cb))

    def upgrade(self, version=''):
        """Start an upgrade to version ('' = the newest)."""
        self._start('upgrade')
        self._daemon.Upgrade(version, dbus.Dictionary({}, signature='sv'),
                             dbus_interface=INTERFACE, timeout=CALL_TIMEOUT,
                             reply_handler=self._guard(self.__upgrade_cb),
                             error_handler=self._guard(self.__call_error_cb))

    def cancel(self):
        """Stop the running job; it ends with Finished(Cancelled)."""
        self._start('cancel')
        self._daemon.Cancel(dbus_interface=INTERFACE, timeout=CALL_TIMEOUT,
                            reply_handler=self._guard(self.__cancel_cb),
                            error_handler=self._guard(self.__call_error_cb))

    def restart(self):
        """Restart the computer through Sugar's session manager, which asks
        every activity to save and close first and then has logind reboot
        (interactively: polkit may ask the user to authenticate). Outside a
        Sugar session (no session manager running) logind is asked
        directly."""
        self._rebooting = True
        self.emit('changed')
        manager = _running_session_manager()
        if manager is not None:
            _logger.info('restart through the session manager')
            manager.reboot()
            return
        login1 = self._bus.get_object(LOGIN1_NAME, LOGIN1_PATH,
                                      introspect=False,
                                      follow_name_owner_changes=True)
        login1.Reboot(True, dbus_interface=LOGIN1_MANAGER,
                      timeout=CALL_TIMEOUT,
                      reply_handler=self.__reboot_cb,
                      error_handler=self.__reboot_error_cb)

    def _start(self, what):
        self._pending = what
        self._error = None
        self.emit('changed')

    def _guard(self, callback):
        """Drop a reply that arrives after close() or after the daemon it
        came from went away."""
        generation = self._generation

        def cb(*args):
            if generation == self._generation and not self._closed:
                callback(*args)
        return cb

    # -- replies --

    def _check_done(self):
        # The daemon puts State back as it was before the check, but says
        # so in a PropertiesChanged that can come after this reply; do the
        # same here so the buttons do not wait for it.
        self._pending = None
        if self.get_state() == 'checking' and self._state_before_check:
            self._props['State'] = self._state_before_check

    def __check_cb(self, result):
        result = _py(result)
        self._check_done()
        self._check_result = result
        # The reply can overtake the PropertiesChanged that carries the
        # same news (the daemon throttles those).
        # A version already built and waiting for the restart is not
        # "available" any more: the ready state offers the restart instead.
        if result.get('up_to_date') or result.get('ready_to_reboot'):
            self._props['AvailableVersion'] = ''
        elif result.get('available_version'):
            self._props['AvailableVersion'] = result['available_version']
        self.emit('check-finished', result)
        self.emit('changed')

    def __check_error_cb(self, error):
        self._check_done()
        self._set_call_error(error, 'check')
        self.emit('check-finished', None)
        self.emit('changed')

    def __upgrade_cb(self, job):
        self._pending = None
        self._job = int(job)
        self._job_running = True
        self.emit('changed')

    def __cancel_cb(self):
        self._pending = None
        self.emit('changed')

    def __call_error_cb(self, error):
        self._pending = None
        self._set_call_error(error, 'job')
        self.emit('changed')

    def _set_call_error(self, error, during=''):
        name = error.get_dbus_name() or ''
        _logger.warning('%s: %s', name, error.get_dbus_message())
        self._error = Error(name, error.get_dbus_message() or '', during)

    def __reboot_cb(self, *args):
        _logger.info('logind accepted the reboot')

    def __reboot_error_cb(self, error):
        self._rebooting = False
        _logger.warning('reboot: %s', error)
        err = Error(error.get_dbus_name() or '', error.get_dbus_message(),
                    'restart')
        err.sentence = _('The computer could not restart by itself. Save '
                         'your work, then restart it from the XO icon in '
                         'the Home view.')
        self._error = err
        self.emit('changed')

    # -- the daemon's name, properties and signals --

    def __get_name_owner_cb(self, owner):
        if self._owner is None:
            self._set_owner(str(owner))

    def __get_name_owner_error_cb(self, error):
        # NameHasNoOwner: the daemon is not running (yet).
        if self._owner is None:
            self._set_owner('')

    def __owner_changed_cb(self, name, old_owner, new_owner):
        if name == BUS_NAME:
            self._set_owner(str(new_owner))

    def _set_owner(self, owner):
        if owner == self._owner or self._closed:
            return
        self._owner = owner
        self._generation += 1
        self._loaded = False
        self._pending = None
        for m in self._matches[1:]:
            m.set_sender_name_owner(owner)
        if owner:
            _logger.debug('%s is %s', BUS_NAME, owner)
            self._daemon.GetAll(INTERFACE, dbus_interface=PROPERTIES,
                                timeout=CALL_TIMEOUT,
                                reply_handler=self._guard(self.__get_all_cb),
                                error_handler=self._guard(
                                    self.__get_all_error_cb))
        else:
            _logger.info('%s left the bus', BUS_NAME)
        self.emit('changed')

    def __get_all_cb(self, props):
        self._props = _py(props)
        self._loaded = True
        state = self._props.get('State')
        if state in JOB_STATES:
            # A job started elsewhere, or ours before a restart.
            self._job = self._props.get('Job', self._job)
            self._job_running = True
        elif state != 'checking':
            # No job runs (a job's first state is 'checking' too, so that
            # one tells nothing); its Finished went out while the model
            # was not listening.
            self._job_running = False
        self.emit('changed')

    def __get_all_error_cb(self, error):
        self._loaded = True
        self._set_call_error(error)
        self.emit('changed')

    def __properties_changed_cb(self, interface, changed, invalidated):
        if interface != INTERFACE or self._closed:
            return
        changed = _py(changed)
        job = changed.get('Job', 0)
        if job and job != self._props.get('Job'):
            # A new job: ours, or one started elsewhere (a timer,
            # upgradectl) that this section shows all the same.
            self._job = job
            self._job_running = True
        self._props.update(changed)
        if self._props.get('State') in JOB_STATES:
            self._job_running = True
        self.emit('changed')

    def __finished_cb(self, job, success, error_name, message):
        if self._closed:
            return
        job = int(job)
        self._job_running = False
        self._job = job
        err = None
        if not success:
            err = Error(str(error_name), str(message), 'job')
        self._error = err
        self.emit('finished', job, bool(success), err)
        self.emit('changed')
