package main

import (
	"errors"
	"testing"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/dbusapi"
)

// TestExitCodes: scripts tell outcomes apart by exit code (documented in
// docs/dbus-api.md), whichever way the error reached upgradectl.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{dbus.Error{Name: dbusapi.ErrUpToDate}, exitUpToDate},
		{dbus.Error{Name: dbusapi.ErrNotAuthorized}, exitNotAuthorized},
		{&dbus.Error{Name: dbusapi.ErrNotAuthorized}, exitNotAuthorized},
		{dbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied"}, exitNotAuthorized},
		{dbus.Error{Name: dbusapi.ErrBusy}, exitBusy},
		{dbus.Error{Name: dbusapi.ErrInvalidArgs}, exitUsage},
		{dbus.Error{Name: dbusapi.ErrCancelled}, exitFailed},
		{dbus.Error{Name: dbusapi.ErrNetwork}, exitFailed},
		{dbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown"}, exitFailed},
		{errors.New("system bus: no such file"), exitFailed},
	} {
		if got := codeFor(tc.err); got != tc.want {
			t.Errorf("codeFor(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
