# The section's view for real: Sugar's own ControlPanel window under Xvfb
# lists the installed section and opens it; the test then clicks through a
# check, an upgrade held part-way, the ready state and "Restart now",
# asserting on widget state and saving a screenshot of each state to
# SUGARTEST_OUT (make sugar-screenshots copies them to docs/img).

import os
import unittest

import harness
from harness import control, drain, wait_until

harness.setup_sugar()
harness.setup_theme()

from gi.repository import Gdk  # noqa: E402
from gi.repository import Gtk  # noqa: E402

from jarabe.controlpanel.gui import ControlPanel  # noqa: E402
from cpsection.systemupdate import model  # noqa: E402


def screenshot(window, name):
    """Save the window's pixels as OUT/name.png once all is drawn.

    GTK paints on its frame clock, not when the main loop runs dry: wait
    for a paint that began after the last change, then for the X server
    to have the pixels.
    """
    drain()
    painted = []
    clock = window.get_frame_clock()
    handler = clock.connect('after-paint', lambda clock: painted.append(1))
    try:
        window.queue_draw()
        wait_until(lambda: painted, 'the window to be painted')
    finally:
        clock.disconnect(handler)
    Gdk.Display.get_default().sync()
    win = window.get_window()
    pixbuf = Gdk.pixbuf_get_from_window(win, 0, 0, win.get_width(),
                                        win.get_height())
    path = os.path.join(harness.OUT, name + '.png')
    pixbuf.savev(path, 'png', [], [])
    return path


def shown(widget):
    return widget.get_visible() and widget.get_sensitive()


class ViewTest(unittest.TestCase):

    def setUp(self):
        control('/reset')
        self.panel = ControlPanel()
        self.addCleanup(self.panel.destroy)
        self.panel.show()
        drain()

    def open_section(self):
        self.assertIn(harness.SECTION, self.panel._options)
        option = self.panel._options[harness.SECTION]
        self.assertEqual((option['view'], option['icon'], option['title']),
                         ('SystemUpdate', 'module-system-update',
                          'System update'))
        self.panel.show_section_view(harness.SECTION)
        view = self.panel._section_view
        self.assertEqual(type(view).__name__, 'SystemUpdate')
        return view

    def test_section_is_listed(self):
        # The main grid with every section; the screenshot shows the icon.
        wait_until(lambda: self.panel.get_window() is not None, 'mapping')
        screenshot(self.panel, 'panel')
        keywords = self.panel._options[harness.SECTION]['keywords']
        self.assertIn('update', keywords)
        self.assertIn('system update', keywords)

    def test_check_upgrade_restart(self):
        view = self.open_section()
        m = view._model
        wait_until(lambda: m.get_phase() == model.PHASE_IDLE,
                   'the view to read the daemon')
        drain()
        self.assertEqual(
            (view.headline.get_text(), view.current_value.get_text(),
             view.available_value.get_text(), shown(view.check_button),
             view.install_button.get_visible(),
             view.cancel_button.get_visible(),
             view.restart_button.get_visible(), view.progress.get_visible()),
            ('Check for a new version of the system', 'version 1',
             'not checked yet', True, False, False, False, False))

        view.check_button.clicked()
        self.assertFalse(view.check_button.get_sensitive(),
                         'no second check while one runs')
        self.assertTrue(view.progress.get_visible(), 'checking pulses')
        wait_until(lambda: shown(view.install_button),
                   'the check to offer version 2')
        self.assertEqual(view.headline.get_text(), 'Version 2 is available')
        self.assertRegex(view.available_value.get_text(),
                         r'^version 2, [0-9.]+ MB to download$')
        self.assertTrue(shown(view.check_button))
        self.assertFalse(view.progress.get_visible())
        screenshot(self.panel, 'idle')

        after = control('/hold')['after']
        self.addCleanup(control, '/release')
        view.install_button.clicked()
        wait_until(lambda: (m.get_state() == 'downloading' and
                            m.get_bytes()[0] >= after),
                   'the download to reach the held point')
        drain()
        self.assertEqual(view.progress.get_fraction(), m.get_progress())
        self.assertTrue(0 < view.progress.get_fraction() < 1)
        self.assertEqual(view.headline.get_text(), 'Updating to version 2...')
        self.assertRegex(view.message.get_text(),
                         r'^Downloading: [0-9.]+ MB of [0-9.]+ MB$')
        self.assertEqual(
            (shown(view.cancel_button), view.check_button.get_visible(),
             view.install_button.get_visible(),
             view.restart_button.get_visible()),
            (True, False, False, False))
        screenshot(self.panel, 'progress')

        control('/release')
        wait_until(lambda: shown(view.restart_button), 'Restart now')
        self.assertEqual(
            (view.headline.get_text(), view.next_boot_value.get_text(),
             view.current_value.get_text(), view.cancel_button.get_visible(),
             view.install_button.get_visible(), view.progress.get_visible()),
            ('Version 2 is ready', 'version 2', 'version 1', False, False,
             False))
        screenshot(self.panel, 'ready')

        view.restart_button.clicked()
        self.assertFalse(view.restart_button.get_sensitive(), 'asked once')
        wait_until(lambda: control('/reboots', method='GET') == [True],
                   'logind to be asked for an interactive reboot')

    def test_error_is_a_sentence(self):
        view = self.open_section()
        m = view._model
        wait_until(lambda: m.get_phase() == model.PHASE_IDLE, 'idle')
        control('/mirror', down='1')
        view.check_button.clicked()
        wait_until(lambda: m.get_error() is not None, 'the check to fail')
        drain()
        self.assertEqual(
            (view.headline.get_text(), view.message.get_text(),
             view.available_value.get_text()),
            ('Could not look for a new version',
             model.error_sentence(model.ERROR_PREFIX + 'Network'),
             'unknown'))
        self.assertIn('503', view.detail.get_text())
        self.assertTrue(view.detail.get_visible())
        self.assertTrue(shown(view.check_button), 'the child can try again')
        screenshot(self.panel, 'error')


if __name__ == '__main__':
    Gtk.init([])
    unittest.main()
