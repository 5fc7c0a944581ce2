# View of the System update section, in the look of Sugar's own sections
# (updater, aboutcomputer): a big headline, the versions as label/value
# rows, one line saying what happens now, a progress bar while a job runs,
# and only the buttons that make sense at that moment.
#
# The view draws everything from the model in one place (_refresh), on
# every 'changed' signal, so what is shown never depends on which signals
# arrived in which order. Closing the section does not cancel a running
# update: the daemon owns the job, and reopening the section shows it
# again.

import locale

from gi.repository import GLib
from gi.repository import Gtk

from sugar3.graphics import style
from sugar3.graphics.icon import Icon

from jarabe.controlpanel.sectionview import SectionView

from . import _

_PULSE_MS = 200


def format_size(size):
    """A download size as people read it, in the decimal units upgradectl
    uses ('250 kB', '2.3 MB')."""
    if size < 1000:
        # TRANS: a size of less than one kilobyte (1000 bytes)
        return _('less than 1 kB')
    if size < 1000 * 1000:
        # TRANS: a size in kilobytes, e.g. '250 kB'
        return locale.format_string(_('%.0f kB'), size / 1000.0)
    # TRANS: a size in megabytes, e.g. '2.3 MB'
    return locale.format_string(_('%.1f MB'), size / 1000.0 / 1000)


def _version(v):
    # TRANS: a system version, e.g. 'version 42'
    return _('version %s') % v if v else _('unknown')


class SystemUpdate(SectionView):

    def __init__(self, model, alerts=None):
        SectionView.__init__(self)
        self._model = model.SystemUpdateModel()
        self._pulse_id = None
        self._note = None        # a sentence about the last thing done

        self.set_spacing(style.DEFAULT_SPACING)
        self.set_border_width(style.DEFAULT_SPACING * 2)

        self.headline = self._label()
        self.pack_start(self.headline, False, True, 0)
        self._separator()

        self._group = Gtk.SizeGroup(mode=Gtk.SizeGroupMode.HORIZONTAL)
        self.current_value = self._info_row(_('This computer:'))
        self.available_value = self._info_row(_('Newest version:'))
        self.next_boot_value = self._info_row(_('After a restart:'))
        self._separator()

        self.message = self._label()
        self.pack_start(self.message, False, True, 0)
        self.detail = self._label()
        self.detail.modify_fg(Gtk.StateType.NORMAL,
                              style.COLOR_BUTTON_GREY.get_gdk_color())
        self.pack_start(self.detail, False, True, 0)

        self.progress = Gtk.ProgressBar()
        self.progress.set_show_text(True)
        self.pack_start(self.progress, False, True, 0)

        buttons = Gtk.HBox(spacing=style.DEFAULT_SPACING)
        self.pack_start(buttons, False, True, 0)
        buttons.show()
        self.check_button = self._button(buttons, _('Check for updates'),
                                         'view-refresh', self.__check_cb)
        self.install_button = self._button(buttons, _('Install update'),
                                           'emblem-downloads',
                                           self.__install_cb)
        self.cancel_button = self._button(buttons, _('Stop update'),
                                          'dialog-cancel', self.__cancel_cb)
        self.restart_button = self._button(buttons, _('Restart now'),
                                           'system-restart',
                                           self.__restart_cb)

        about = self._label()
        about.set_markup(GLib.markup_escape_text(
            _('System updates fix problems and bring new features. You can '
              'keep working while an update downloads; the new version '
              'starts the next time the computer starts, and the current '
              'one stays available if the new one fails to start.')))
        self.pack_end(about, False, True, 0)

        self._ids = [
            self._model.connect('changed', self.__changed_cb),
            self._model.connect('check-finished', self.__check_finished_cb),
            self._model.connect('finished', self.__finished_cb),
        ]
        self.connect('destroy', self.__destroy_cb)
        self._refresh()

    def _label(self):
        label = Gtk.Label()
        label.set_line_wrap(True)
        label.set_justify(Gtk.Justification.LEFT)
        label.props.xalign = 0
        label.show()
        return label

    def _separator(self):
        separator = Gtk.HSeparator()
        self.pack_start(separator, False, True, 0)
        separator.show()

    def _info_row(self, title):
        box = Gtk.HBox(spacing=style.DEFAULT_SPACING)
        label = Gtk.Label(label=title)
        label.set_alignment(1, 0)
        label.modify_fg(Gtk.StateType.NORMAL,
                        style.COLOR_SELECTION_GREY.get_gdk_color())
        self._group.add_widget(label)
        box.pack_start(label, False, True, 0)
        label.show()
        value = Gtk.Label()
        value.set_alignment(0, 0)
        box.pack_start(value, False, True, 0)
        value.show()
        self.pack_start(box, False, True, 0)
        box.show()
        return value

    def _button(self, box, text, icon_name, callback):
        button = Gtk.Button(label=text)
        button.props.image = Icon(icon_name=icon_name,
                                  pixel_size=style.SMALL_ICON_SIZE)
        button.connect('clicked', callback)
        box.pack_start(button, False, True, 0)
        return button

    # -- drawing --

    def _refresh(self):
        m = self._model
        phase = m.get_phase()
        current = m.get_current_version()
        available = m.get_available_version()
        target = m.get_target_version()

        error = m.get_error()
        check_failed = error is not None and error.during == 'check'
        headline, message = self._texts(phase, available, target, error)
        self.headline.set_markup('<big>%s</big>' %
                                 GLib.markup_escape_text(headline))

        self.current_value.set_text(_version(current))
        if available:
            text = _version(available)
            result = m.get_check_result() or {}
            if result.get('available_version') == available and \
                    result.get('download_bytes'):
                text = _('%(version)s, %(size)s to download') % {
                    'version': text,
                    'size': format_size(result['download_bytes'])}
            self.available_value.set_text(text)
        elif phase == 'ready':
            self.available_value.set_text(
                _version(m.get_next_boot_version()))
        elif check_failed:
            self.available_value.set_text(_('unknown'))
        elif m.get_last_check():
            self.available_value.set_text(_version(current))
        else:
            self.available_value.set_text(_('not checked yet'))
        self.next_boot_value.set_text(_version(m.get_next_boot_version()))

        detail = ''
        if error is not None:
            message, detail = error.sentence, error.detail
            if error.name.endswith('.Cancelled'):
                detail = ''  # whoever stopped it knows why
        elif self._note and phase == 'idle':
            message = self._note
        elif m.get_boot_failure() and phase == 'idle':
            message = _('The new version did not start correctly, so the '
                        'computer went back to the one it had before. Tell '
                        'your teacher.')
            detail = m.get_boot_failure()
        self.message.set_text(message)
        self.message.set_visible(bool(message))
        self.detail.set_text(detail)
        self.detail.set_visible(bool(detail))

        self._show_progress(phase)

        working = phase == 'working'
        self.check_button.set_visible(not working and phase != 'ready')
        self.check_button.set_sensitive(m.can_check())
        self.install_button.set_visible(phase in ('idle', 'checking') and
                                        bool(available))
        self.install_button.set_sensitive(m.can_upgrade())
        self.cancel_button.set_visible(working)
        self.cancel_button.set_sensitive(m.can_cancel())
        self.restart_button.set_visible(phase == 'ready')
        self.restart_button.set_sensitive(m.can_restart())

    def _texts(self, phase, available, target, error):
        """The headline and the status line for a phase."""
        m = self._model
        if phase == 'connecting':
            return _('Connecting to the update service...'), ''
        if phase == 'unavailable':
            return (_('The update service is not running'),
                    _('Updates cannot be checked or installed right now. '
                      'Restart the computer and try again.'))
        if phase == 'checking':
            return _('Looking for a new version...'), ''
        if phase == 'working':
            headline = _('Updating...')
            if target:
                headline = _('Updating to version %s...') % target
            return headline, self._job_message(m.get_state())
        if phase == 'ready':
            return (_('Version %s is ready') % m.get_next_boot_version(),
                    _('Save your work, then restart the computer to start '
                      'using it.'))
        if phase == 'rolling-back':
            return _('Going back to the previous version...'), ''
        if error is not None and error.during == 'check':
            return _('Could not look for a new version'), ''
        if error is not None and error.during == 'job' and \
                not error.name.endswith('.Cancelled'):
            return _('The update was not installed'), ''
        if available:
            return (_('Version %s is available') % available,
                    _('Install it now; you can keep working meanwhile.'))
        if m.get_last_check() and error is None:
            return _('This computer is up to date'), ''
        return _('Check for a new version of the system'), ''

    def _job_message(self, state):
        if state == 'downloading':
            done, total = self._model.get_bytes()
            if total:
                return _('Downloading: %(done)s of %(total)s') % {
                    'done': format_size(done), 'total': format_size(total)}
            return _('Downloading...')
        if state == 'applying':
            return _('Installing...')
        if state == 'verifying':
            return _('Checking the new version...')
        if state == 'activating':
            return _('Almost done...')
        return _('Preparing...')

    def _show_progress(self, phase):
        if phase == 'checking':
            self.progress.set_text('')
            self.progress.show()
            if self._pulse_id is None:
                self._pulse_id = GLib.timeout_add(_PULSE_MS, self.__pulse_cb)
            return
        self._stop_pulse()
        if phase == 'working':
            fraction = self._model.get_progress()
            self.progress.set_fraction(fraction)
            # TRANS: progress of an update, e.g. '42 %'
            self.progress.set_text(_('%d %%') % round(fraction * 100))
            self.progress.show()
        else:
            self.progress.hide()

    def _stop_pulse(self):
        if self._pulse_id is not None:
            GLib.source_remove(self._pulse_id)
            self._pulse_id = None

    def __pulse_cb(self):
        self.progress.pulse()
        return True

    # -- model signals --

    def __changed_cb(self, model):
        self._refresh()

    def __check_finished_cb(self, model, result):
        if result is not None and result.get('up_to_date'):
            self._note = _('This computer already has the newest version.')
        else:
            self._note = None
        self._refresh()

    def __finished_cb(self, model, job, success, error):
        self._note = None
        self._refresh()

    # -- buttons --

    def __check_cb(self, button):
        self._note = None
        self._model.check()

    def __install_cb(self, button):
        self._note = None
        self._model.upgrade(self._model.get_available_version())

    def __cancel_cb(self, button):
        self._model.cancel()

    def __restart_cb(self, button):
        self._model.restart()

    def __destroy_cb(self, widget):
        self._stop_pulse()
        for i in self._ids:
            self._model.disconnect(i)
        self._model.close()

    def undo(self):
        # Nothing to undo: leaving the section must not stop an update.
        pass
