# The daemon's errors as sentences a child or a teacher can act on.
#
# The daemon answers with org.laptop.Upgrade1.Error.<Name> (a refused call,
# Finished, LastError); the bus itself with org.freedesktop.DBus.Error.*
# when the daemon is gone or silent. A child cannot act on "BadSignature",
# but can erase old Journal entries, check the network, wait, or ask the
# teacher; each sentence says which. The daemon's own message stays beside
# it (Error.detail) for whoever looks after the laptops.

from . import _

ERROR_PREFIX = 'org.laptop.Upgrade1.Error.'

# Errors that mean "what was downloaded cannot be trusted"; the child
# cannot fix these and the running system is unchanged.
_UNTRUSTED = ('BadSignature', 'Verification', 'Corrupt', 'UnsafePath',
              'TooLarge', 'Policy')


def error_sentence(name):
    """Return the sentence shown for a D-Bus error name.

    `name` is a full error name (org.laptop.Upgrade1.Error.NoSpace,
    org.freedesktop.DBus.Error.ServiceUnknown, ...). Unknown names get a
    general sentence; the view shows the daemon's own message beside it as
    a detail for whoever looks after the laptops.
    """
    short = name[len(ERROR_PREFIX):] if name.startswith(ERROR_PREFIX) else ''
    if short == 'NotAuthorized':
        return _('You are not allowed to update this computer. Ask your '
                 'teacher or whoever looks after the laptops.')
    if short == 'NoSpace':
        return _('There is not enough free space for the update. Erase '
                 'some old entries from the Journal, then try again.')
    if short == 'Network':
        return _('The update server could not be reached. Check that the '
                 'computer is connected to a network, then try again.')
    if short in _UNTRUSTED:
        return _('The update did not pass its safety check, so it was not '
                 'installed. Nothing on this computer was changed. Try '
                 'again later; if this happens again, tell your teacher.')
    if short == 'Busy':
        return _('The computer is already busy with an update. Wait until '
                 'it has finished.')
    if short == 'Cancelled':
        return _('The update was stopped. Nothing on this computer was '
                 'changed; you can start it again at any time.')
    if short == 'UpToDate':
        return _('This computer already has the newest version.')
    if short == 'NotFound':
        return _('That version is no longer on the update server. Check '
                 'for updates again.')
    if name in ('org.freedesktop.DBus.Error.ServiceUnknown',
                'org.freedesktop.DBus.Error.NameHasNoOwner',
                'org.freedesktop.DBus.Error.Disconnected'):
        return _('The update service is not running. Restart the computer '
                 'and try again.')
    if name in ('org.freedesktop.DBus.Error.NoReply',
                'org.freedesktop.DBus.Error.Timeout'):
        return _('The update service did not answer. Try again in a few '
                 'minutes.')
    if name == 'org.freedesktop.DBus.Error.AccessDenied':
        return _('You are not allowed to update this computer. Ask your '
                 'teacher or whoever looks after the laptops.')
    return _('The update could not be finished. Try again later; if this '
             'happens again, tell your teacher.')


class Error(object):
    """An error to show: its D-Bus name, the sentence, the raw message,
    and what failed: 'check', 'job', 'restart', or '' when unknown (the
    daemon's LastError, read when the section opens)."""

    def __init__(self, name, detail='', during=''):
        self.name = name
        self.sentence = error_sentence(name)
        self.detail = detail
        self.during = during

    def __repr__(self):
        return 'Error(%r, %r)' % (self.name, self.detail)
