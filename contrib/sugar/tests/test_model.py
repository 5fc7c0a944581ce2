# The section's model against the real daemon on the private test bus.
# Each test starts from a fresh root at version 1 (control('/reset')); the
# repository also has version 2, whose download the fixture can hold
# part-way (control('/hold')) for as long as a test needs.

import gettext
import json
import os
import subprocess
import sys
import unittest

import dbus.bus

import harness
from harness import control, wait_until

harness.setup_sugar()

from cpsection.systemupdate import model  # noqa: E402
from cpsection import systemupdate  # noqa: E402

ERR = model.ERROR_PREFIX


class Recorder(object):
    """Keeps what the model announced, for assertions after the fact."""

    def __init__(self, m):
        self.model = m
        self.finished = []
        self.checks = []
        self.seen = []  # (state, progress, bytes done) at each 'changed'
        m.connect('finished', self._finished)
        m.connect('check-finished', self._check)
        m.connect('changed', self._changed)

    def _finished(self, m, job, success, error):
        self.finished.append((job, success, error))

    def _check(self, m, result):
        self.checks.append(result)

    def _changed(self, m):
        self.seen.append((m.get_state(), m.get_progress(), m.get_bytes()[0]))


class ModelTest(unittest.TestCase):

    def setUp(self):
        control('/reset')
        self.model = self.new_model()
        self.rec = Recorder(self.model)
        wait_until(lambda: self.model.get_phase() == model.PHASE_IDLE,
                   'the model to read the daemon')

    def new_model(self):
        bus = harness.StrictBus()
        self.addCleanup(bus.close)
        self.addCleanup(lambda: self.assertEqual(bus.blocking, []))
        m = model.SystemUpdateModel(bus=bus)
        self.addCleanup(m.close)
        return m

    def check(self):
        n = len(self.rec.checks)
        self.model.check()
        wait_until(lambda: len(self.rec.checks) > n, 'Check to answer')
        return self.rec.checks[-1]

    def start_held_upgrade(self):
        """Start an upgrade whose download the fixture holds part-way."""
        after = control('/hold')['after']
        self.addCleanup(control, '/release')
        self.model.upgrade()
        wait_until(lambda: (self.model.get_state() == 'downloading' and
                            self.model.get_bytes()[0] >= after),
                   'the download to reach the held point')

    def test_initial_state(self):
        m = self.model
        got = (m.get_service_running(), m.get_current_version(),
               m.get_available_version(), m.get_next_boot_version(),
               m.get_booted_slot(), m.can_check(), m.can_upgrade(),
               m.can_cancel(), m.can_restart(), m.get_error())
        self.assertEqual(got, (True, '1', '', '1', 'a', True, False, False,
                               False, None))

    def test_check(self):
        m = self.model
        m.check()
        # Until the daemon answers, nothing else may start.
        self.assertEqual((m.get_phase(), m.can_check(), m.can_upgrade()),
                         (model.PHASE_CHECKING, False, False))
        wait_until(lambda: self.rec.checks, 'Check to answer')
        result = self.rec.checks[0]
        self.assertIsNotNone(result, m.get_error())
        self.assertEqual((result['up_to_date'], result['available_version'],
                          result['current_version']), (False, '2', '1'))
        self.assertGreater(result['download_bytes'], 0)
        self.assertEqual((m.get_phase(), m.get_available_version(),
                          m.can_check(), m.can_upgrade(), m.get_error()),
                         (model.PHASE_IDLE, '2', True, True, None))
        wait_until(lambda: m.get_last_check() > 0, 'LastCheck to be set')

    def test_upgrade_to_ready_and_restart(self):
        m = self.model
        self.check()
        self.start_held_upgrade()
        self.assertEqual((m.get_phase(), m.can_check(), m.can_upgrade(),
                          m.can_cancel(), m.can_restart()),
                         (model.PHASE_WORKING, False, False, True, False))
        job = m.get_job()
        self.assertGreater(job, 0)
        done, total = m.get_bytes()
        self.assertTrue(0 < done < total, (done, total))
        control('/release')
        wait_until(lambda: self.rec.finished, 'Finished')
        self.assertEqual(self.rec.finished, [(job, True, None)])
        wait_until(lambda: m.get_phase() == model.PHASE_READY,
                   'ready-to-reboot')
        self.assertEqual((m.get_current_version(), m.get_next_boot_version(),
                          m.get_next_boot_slot(), m.get_progress(),
                          m.get_error(), m.can_restart(), m.can_check()),
                         ('1', '2', 'b', 1.0, None, True, True))
        partial = [p for state, p, _ in self.rec.seen
                   if state == 'downloading' and 0 < p < 1]
        self.assertTrue(partial, 'no progress between 0 and 1 was seen: %r'
                        % self.rec.seen)

        m.restart()
        self.assertFalse(m.can_restart())
        wait_until(lambda: control('/reboots', method='GET') == [True],
                   'logind to be asked for an interactive reboot')

    def test_restart_through_the_session_manager(self):
        """In a Sugar session the restart goes through the shell's session
        manager, which lets activities save first; logind is not called
        behind its back."""
        from jarabe.model import session

        class Manager(object):
            reboots = 0

            def reboot(self):
                Manager.reboots += 1

        old = session._session_manager
        session._session_manager = Manager()
        self.addCleanup(setattr, session, '_session_manager', old)
        self.model.restart()
        self.assertEqual(Manager.reboots, 1)
        self.assertFalse(self.model.can_restart())
        self.assertEqual(control('/reboots', method='GET'), [])

    def test_cancel(self):
        m = self.model
        self.start_held_upgrade()
        job = m.get_job()
        self.assertTrue(m.can_cancel())
        m.cancel()
        self.assertFalse(m.can_cancel(), 'Cancel is in flight')
        wait_until(lambda: self.rec.finished, 'Finished after Cancel')
        (fjob, success, error), = self.rec.finished
        self.assertEqual((fjob, success, error.name), (job, False,
                                                       ERR + 'Cancelled'))
        self.assertEqual(error.sentence,
                         model.error_sentence(ERR + 'Cancelled'))
        wait_until(lambda: m.get_phase() == model.PHASE_IDLE, 'idle')
        self.assertEqual((m.get_next_boot_version(), m.get_error().name,
                          m.can_check()), ('1', ERR + 'Cancelled', True))

    def test_mirror_unreachable(self):
        m = self.model
        control('/mirror', down='1')
        self.assertIsNone(self.check())
        err = m.get_error()
        self.assertEqual((err.name, err.sentence, m.get_phase(),
                          m.can_check()),
                         (ERR + 'Network',
                          model.error_sentence(ERR + 'Network'),
                          model.PHASE_IDLE, True))
        self.assertIn('503', err.detail)
        # The daemon keeps the error too: a model opened later shows it.
        control('/mirror', down='0')
        later = self.new_model()
        wait_until(lambda: later.get_phase() == model.PHASE_IDLE,
                   'a second model to load')
        self.assertEqual(later.get_error().name, ERR + 'Network')

    def test_not_authorized(self):
        # Reading is open to everyone; checking needs polkit, which does
        # not run on the test bus, so nobody is refused.
        script = os.path.join(os.path.dirname(__file__), 'as_nobody.py')
        env = dict(os.environ, SUGARTEST_EXT=harness.setup_sugar())
        out = subprocess.run(
            ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
             sys.executable, script], env=env, cwd='/', timeout=harness.WAIT,
            stdout=subprocess.PIPE, check=True).stdout
        got = json.loads(out)
        self.assertEqual(got, {
            'current_version': '1',
            'error': ERR + 'NotAuthorized',
            'sentence': model.error_sentence(ERR + 'NotAuthorized'),
        })

    def test_job_started_elsewhere(self):
        # A timer or upgradectl may start the job; the section follows it.
        m = self.model
        control('/hold')
        self.addCleanup(control, '/release')
        other = dbus.bus.BusConnection(
            os.environ['DBUS_SYSTEM_BUS_ADDRESS'])
        self.addCleanup(other.close)
        job = other.call_blocking(model.BUS_NAME, model.OBJECT_PATH,
                                  model.INTERFACE, 'Upgrade', 'sa{sv}',
                                  ('', {}))
        wait_until(lambda: m.get_phase() == model.PHASE_WORKING,
                   'the model to see the job')
        self.assertEqual((m.get_job(), m.can_check(), m.can_upgrade()),
                         (job, False, False))
        wait_until(m.can_cancel, 'Cancel to be possible')
        control('/release')
        wait_until(lambda: self.rec.finished, 'Finished')
        self.assertEqual(self.rec.finished, [(job, True, None)])

    def test_daemon_restart_during_a_watch(self):
        m = self.model
        self.start_held_upgrade()
        job = m.get_job()
        control('/daemon/kill')
        wait_until(lambda: m.get_phase() == model.PHASE_UNAVAILABLE,
                   'the model to notice the daemon is gone')
        self.assertEqual((m.can_check(), m.can_cancel(), m.can_upgrade()),
                         (False, False, False))
        control('/daemon/start')
        wait_until(lambda: m.get_service_running() and m.get_loaded(),
                   'the model to find the daemon again')
        # The daemon resumes the job cut off by the kill; the download is
        # still held, so the model must see it running again.
        wait_until(lambda: m.get_phase() == model.PHASE_WORKING,
                   'the resumed job')
        control('/release')
        wait_until(lambda: self.rec.finished, 'Finished of the resumed job')
        self.assertEqual(self.rec.finished, [(job, True, None)])
        wait_until(lambda: m.get_phase() == model.PHASE_READY,
                   'ready-to-reboot')
        self.assertEqual(m.get_next_boot_version(), '2')


class SentenceTest(unittest.TestCase):
    """Error names become sentences people can act on, translated."""

    NAMES = ['NotAuthorized', 'NoSpace', 'Network', 'BadSignature', 'Busy',
             'Cancelled', 'UpToDate', 'NotFound']

    def test_each_error_has_its_own_sentence(self):
        sentences = [model.error_sentence(ERR + n) for n in self.NAMES]
        self.assertEqual(len(set(sentences)), len(self.NAMES), sentences)
        generic = model.error_sentence(ERR + 'SomethingNew')
        self.assertNotIn(generic, sentences)
        self.assertEqual(model.error_sentence(ERR + 'Verification'),
                         model.error_sentence(ERR + 'BadSignature'))
        self.assertEqual(
            model.error_sentence('org.freedesktop.DBus.Error.ServiceUnknown'),
            model.error_sentence('org.freedesktop.DBus.Error.NameHasNoOwner'))

    def test_translated(self):
        catalog = gettext.translation(
            systemupdate.DOMAIN,
            os.path.join(harness.DESTDIR, 'usr/share/locale'),
            languages=['es'])
        english = model.error_sentence(ERR + 'Network')
        old = os.environ.get('LANGUAGE')
        os.environ['LANGUAGE'] = 'es'
        try:
            spanish = model.error_sentence(ERR + 'Network')
            title = systemupdate._('System update')
        finally:
            os.environ['LANGUAGE'] = old or ''
        self.assertNotEqual(spanish, english)
        self.assertEqual(spanish, catalog.gettext(english))
        self.assertEqual(title, 'Actualización del sistema')

    def test_no_module_level_getters(self):
        # Sugar's ModelWrapper calls every module-level get_*() when the
        # section opens; this model keeps its state on an instance.
        self.assertEqual([n for n in dir(model) if n.startswith('get_')], [])


if __name__ == '__main__':
    unittest.main()
