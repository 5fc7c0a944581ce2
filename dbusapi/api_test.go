package dbusapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
)

func TestParseOptions(t *testing.T) {
	v := dbus.MakeVariant
	for _, tc := range []struct {
		name string
		in   map[string]dbus.Variant
		want UpgradeOptions
		err  string
	}{
		{"none", nil, UpgradeOptions{}, ""},
		{"all", map[string]dbus.Variant{"force": v(true), "background": v(true), "tries": v(uint32(5))}, UpgradeOptions{Force: true, Background: true, Tries: 5}, ""},
		{"unknown key", map[string]dbus.Variant{"forse": v(true)}, UpgradeOptions{}, `unknown option "forse" (known: ` + strings.Join(optionNames, ", ") + `): invalid argument`},
		{"force as string", map[string]dbus.Variant{"force": v("true")}, UpgradeOptions{}, `option "force" must be a boolean (b), got s: invalid argument`},
		{"tries as int32", map[string]dbus.Variant{"tries": v(int32(5))}, UpgradeOptions{}, `option "tries" must be a uint32 (u) from 1 to 99: invalid argument`},
		{"tries zero", map[string]dbus.Variant{"tries": v(uint32(0))}, UpgradeOptions{}, `option "tries" must be a uint32 (u) from 1 to 99: invalid argument`},
		{"tries 100", map[string]dbus.Variant{"tries": v(uint32(100))}, UpgradeOptions{}, `option "tries" must be a uint32 (u) from 1 to 99: invalid argument`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOptions(tc.in)
			msg := ""
			if err != nil {
				msg = err.Error()
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("%v is not InvalidArgument", err)
				}
			}
			if diff := cmp.Diff(tc.err, msg); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if tc.err == "" {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestErrorNames: each class maps to its documented name, survives a trip
// over the bus (FromDBus), and an unclassified error is Failed.
func TestErrorNames(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("job 3: %w", errdefs.ErrBusy), ErrBusy},
		{fmt.Errorf("x: %w", errdefs.ErrNotAuthorized), ErrNotAuthorized},
		{fmt.Errorf("x: %w", errdefs.ErrUpToDate), ErrUpToDate},
		{fmt.Errorf("x: %w", errdefs.ErrNetwork), ErrNetwork},
		{fmt.Errorf("x: %w", errdefs.ErrBadSignature), ErrBadSignature},
		{fmt.Errorf("x: %w", errdefs.ErrVerification), ErrVerification},
		{fmt.Errorf("x: %w", errdefs.ErrNoSpace), ErrNoSpace},
		{fmt.Errorf("x: %w", errdefs.ErrCancelled), ErrCancelled},
		{fmt.Errorf("x: %w", context.Canceled), ErrCancelled},
		{fmt.Errorf("x: %w", errdefs.ErrInvalidArgument), ErrInvalidArgs},
		{fmt.Errorf("x: %w", errdefs.ErrFailedPrecondition), ErrPrecondition},
		{fmt.Errorf("job 4: %w", errdefs.ErrWorkerCrashed), ErrWorkerCrashed},
		{errors.New("something else"), ErrFailed},
	} {
		got := ErrorName(tc.err)
		if got != tc.want {
			t.Errorf("ErrorName(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if tc.err == nil || got == ErrFailed {
			continue
		}
		back := FromDBus(*ToDBus(tc.err))
		if ErrorName(back) != tc.want || back.Error() != tc.err.Error() {
			t.Errorf("over the bus %v became %q %q", tc.err, ErrorName(back), back)
		}
	}
}

// TestSecurityUnavailable tells "nobody answered" from the security
// service's own refusals, so the daemon can say which happened.
func TestSecurityUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{dbus.Error{Name: "org.freedesktop.DBus.Error.NoReply"}, true},
		{dbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown"}, true},
		{&dbus.Error{Name: "org.freedesktop.DBus.Error.NameHasNoOwner"}, true},
		{errors.New("dbus: connection closed by user"), true},
		{dbus.Error{Name: ErrVerification}, false},
		{dbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied"}, false},
	} {
		if got := securityUnavailable(tc.err); got != tc.want {
			t.Errorf("securityUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
