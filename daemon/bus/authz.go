// Authorization of callers of org.laptop.Upgrade1.
//
// The bus policy (systemd/dbus/org.laptop.Upgrade1.conf) lets everyone call
// the daemon, because reading is open; whether a caller may check, upgrade,
// cancel or roll back is decided here, per call, by polkit — which knows
// about sessions, admin authentication and site rules. Root is allowed
// without asking, so that the system works before polkit is up; without
// polkit nobody else is (fail closed).

package bus

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/errdefs"
)

const (
	authzPolkitName      = "org.freedesktop.PolicyKit1"
	authzPolkitPath      = "/org/freedesktop/PolicyKit1/Authority"
	authzPolkitCheck     = "org.freedesktop.PolicyKit1.Authority.CheckAuthorization"
	authzAllowInteract   = uint32(1) // CheckAuthorizationFlags.AllowUserInteraction
	authzErrNoService    = "org.freedesktop.DBus.Error.ServiceUnknown"
	authzErrNameNotOwned = "org.freedesktop.DBus.Error.NameHasNoOwner"
)

// Authorizer decides whether a caller (its unique bus name) may perform a
// polkit action. It is safe for concurrent use: exported methods run on
// their own goroutines, and it keeps no state beyond the connection.
type Authorizer struct {
	conn *dbus.Conn
}

// NewAuthorizer returns an Authorizer asking over conn, the connection the
// daemon serves on (so polkit sees the same bus as the caller).
func NewAuthorizer(conn *dbus.Conn) *Authorizer {
	return &Authorizer{conn: conn}
}

// authzSubject is polkit's (sa{sv}) subject. A "system-bus-name" subject
// lets polkit look up the caller's process, user and session from the bus
// itself; a pid or uid passed by us could be raced or reused.
type authzSubject struct {
	Kind    string
	Details map[string]dbus.Variant
}

// authzResult is polkit's (bba{ss}) AuthorizationResult.
type authzResult struct {
	IsAuthorized bool
	IsChallenge  bool
	Details      map[string]string
}

// Check returns nil if sender may perform action, and otherwise an error
// wrapping errdefs.ErrNotAuthorized that says why. Root is always allowed.
// interactive (the caller's message carried ALLOW_INTERACTIVE_AUTHORIZATION,
// as upgradectl's and systemctl's do) lets polkit wait for the user to
// authenticate through an agent, so ctx should allow for a person typing
// a password; without it a password prompt is never shown, as the D-Bus
// specification asks.
func (a *Authorizer) Check(ctx context.Context, sender dbus.Sender, action string, interactive bool) error {
	uid, err := dbusapi.SenderUID(ctx, a.conn, sender)
	if err != nil {
		return fmt.Errorf("action %s: cannot identify the caller: %v: %w", action, err, errdefs.ErrNotAuthorized)
	}
	if uid == 0 {
		return nil
	}
	subject := authzSubject{
		Kind:    "system-bus-name",
		Details: map[string]dbus.Variant{"name": dbus.MakeVariant(string(sender))},
	}
	var flags uint32
	if interactive {
		flags = authzAllowInteract
	}
	var res authzResult
	err = a.conn.Object(authzPolkitName, authzPolkitPath).CallWithContext(ctx, authzPolkitCheck, 0,
		subject, action, map[string]string{}, flags, "").Store(&res)
	switch name := dbusapi.ReplyName(err); {
	case err == nil:
	case name == authzErrNoService || name == authzErrNameNotOwned:
		return fmt.Errorf("action %s: polkit is not running; only root may perform it (caller uid %d): %w",
			action, uid, errdefs.ErrNotAuthorized)
	default:
		// Fail closed: a polkit that cannot answer grants nothing.
		return fmt.Errorf("action %s: asking polkit for uid %d: %v: %w", action, uid, err, errdefs.ErrNotAuthorized)
	}
	switch {
	case res.IsAuthorized:
		return nil
	case res.IsChallenge && !interactive:
		return fmt.Errorf("action %s: uid %d must authenticate first; call with interactive authorization allowed (upgradectl does) and an authentication agent running: %w",
			action, uid, errdefs.ErrNotAuthorized)
	case res.IsChallenge:
		return fmt.Errorf("action %s: uid %d must authenticate first (no authentication agent answered): %w",
			action, uid, errdefs.ErrNotAuthorized)
	default:
		return fmt.Errorf("action %s: polkit denied uid %d: %w", action, uid, errdefs.ErrNotAuthorized)
	}
}

// CallerUID returns the unix uid of sender as the bus daemon knows it.
func (a *Authorizer) CallerUID(sender dbus.Sender) (uint32, error) {
	return dbusapi.SenderUID(context.Background(), a.conn, sender)
}

// Interactive reports whether a method call allows interactive
// authorization (the ALLOW_INTERACTIVE_AUTHORIZATION header flag).
func Interactive(msg dbus.Message) bool {
	return msg.Flags&dbus.FlagAllowInteractiveAuthorization != 0
}

// senderOf is the unique bus name a method call came from.
func senderOf(msg dbus.Message) dbus.Sender {
	s, _ := msg.Headers[dbus.FieldSender].Value().(string)
	return dbus.Sender(s)
}
