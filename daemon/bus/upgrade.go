// Package bus serves org.laptop.Upgrade1: the daemon's D-Bus server and
// its polkit authorization, beside the daemon it exports. The contract
// (names, introspection, errors) is package dbusapi.
package bus

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
)

// UpgradeServer exports a daemon.Daemon as org.laptop.Upgrade1.
type UpgradeServer struct {
	conn  *dbus.Conn
	d     *daemon.Daemon
	authz *Authorizer
}

// NewUpgradeServer prepares the server; wire Notify and Finished into the
// daemon config before creating the daemon (see cmd/upgraded).
func NewUpgradeServer(conn *dbus.Conn) *UpgradeServer {
	return &UpgradeServer{conn: conn, authz: NewAuthorizer(conn)}
}

// Notify emits one PropertiesChanged with every property that differs
// between old and cur (daemon.Config.Notify).
func (s *UpgradeServer) Notify(old, cur daemon.Status) {
	diff := changed(old, cur)
	if len(diff) == 0 {
		return
	}
	m := make(map[string]dbus.Variant, len(diff))
	for k, v := range diff {
		m[k] = dbus.MakeVariant(v)
	}
	s.conn.Emit(dbusapi.UpgradePath, "org.freedesktop.DBus.Properties.PropertiesChanged", dbusapi.UpgradeInterface, m, []string{})
}

// Finished emits the Finished signal.
func (s *UpgradeServer) Finished(job uint32, ok bool, name, msg string) {
	s.conn.Emit(dbusapi.UpgradePath, dbusapi.UpgradeInterface+".Finished", job, ok, name, msg)
}

// Export exports the object, its properties and introspection, then claims
// the name. The daemon must exist before (methods call into it).
func (s *UpgradeServer) Export(d *daemon.Daemon) error {
	s.d = d
	methods := map[string]any{
		"Check":      s.check,
		"Preflight":  s.preflight,
		"Upgrade":    s.upgrade,
		"UpgradeTo":  s.upgradeTo,
		"Cancel":     s.cancelJob,
		"Rollback":   s.rollback,
		"History":    s.history,
		"Apply":      s.apply,
		"SetChannel": s.setChannel,
	}
	if err := s.conn.ExportMethodTable(methods, dbusapi.UpgradePath, dbusapi.UpgradeInterface); err != nil {
		return err
	}
	props := map[string]any{
		"Get":    s.get,
		"GetAll": s.getAll,
		"Set":    s.set,
	}
	if err := s.conn.ExportMethodTable(props, dbusapi.UpgradePath, "org.freedesktop.DBus.Properties"); err != nil {
		return err
	}
	intro, err := dbusapi.Introspectable(dbusapi.UpgradeXML, true)
	if err != nil {
		return err
	}
	if err := s.conn.Export(intro, dbusapi.UpgradePath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return err
	}
	return dbusapi.RequestName(s.conn, dbusapi.UpgradeName)
}

// MethodNames lists the methods exported on org.laptop.Upgrade1 (the test
// compares it with the checked-in introspection).
func MethodNames() []string {
	n := []string{"Check", "Preflight", "Upgrade", "UpgradeTo", "Cancel", "Rollback", "History", "Apply", "SetChannel"}
	sort.Strings(n)
	return n
}

// unknownInterface answers Get and GetAll for any interface but ours (""
// means ours, as the specification allows).
func unknownInterface(iface string) *dbus.Error {
	if iface == dbusapi.UpgradeInterface || iface == "" {
		return nil
	}
	return dbus.NewError("org.freedesktop.DBus.Error.UnknownInterface", []any{fmt.Sprintf("no interface %s here; properties are on %s", errdefs.Quote(iface, 64), dbusapi.UpgradeInterface)})
}

func (s *UpgradeServer) get(iface, name string) (dbus.Variant, *dbus.Error) {
	if err := unknownInterface(iface); err != nil {
		return dbus.Variant{}, err
	}
	p, ok := lookup(name)
	if !ok {
		return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{fmt.Sprintf("no property %s on %s", errdefs.Quote(name, 64), dbusapi.UpgradeInterface)})
	}
	st := s.d.Status()
	return dbus.MakeVariant(p.value(&st)), nil
}

func (s *UpgradeServer) getAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if err := unknownInterface(iface); err != nil {
		return nil, err
	}
	out := map[string]dbus.Variant{}
	for k, v := range values(s.d.Status()) {
		out[k] = dbus.MakeVariant(v)
	}
	return out, nil
}

func (s *UpgradeServer) set(iface, name string, v dbus.Variant) *dbus.Error {
	return dbus.NewError("org.freedesktop.DBus.Error.PropertyReadOnly", []any{fmt.Sprintf("property %s is read-only", errdefs.Quote(name, 64))})
}

func resultMap(res *report.Result, upToDate bool, current string) map[string]dbus.Variant {
	m := map[string]dbus.Variant{
		"up_to_date":      dbus.MakeVariant(upToDate),
		"current_version": dbus.MakeVariant(current),
	}
	if res == nil {
		return m
	}
	if !upToDate {
		m["available_version"] = dbus.MakeVariant(res.Version.String())
		m["download_bytes"] = dbus.MakeVariant(uint64(res.DownloadBytes))
		m["need_bytes"] = dbus.MakeVariant(uint64(res.NeedBytes))
		m["free_bytes"] = dbus.MakeVariant(uint64(res.FreeBytes))
		m["need_inodes"] = dbus.MakeVariant(uint64(res.NeedInodes))
		m["free_inodes"] = dbus.MakeVariant(uint64(res.FreeInodes))
		m["drift"] = dbus.MakeVariant(uint32(len(res.Drift)))
		m["slot"] = dbus.MakeVariant(string(res.Slot))
		m["already_ready"] = dbus.MakeVariant(res.AlreadyReady)
		if res.Name != "" {
			m["available_name"] = dbus.MakeVariant(res.Name)
		}
		if res.Notes != "" {
			m["release_notes"] = dbus.MakeVariant(res.Notes)
		}
	}
	return m
}

// CheckTimeout bounds the work of Check and Preflight (network included),
// below the 25 s that D-Bus clients wait for a reply by default (libdbus,
// GDBus, busctl, dbus-python): a slow mirror ends as Network, never as a
// client's NoReply followed by Busy. Authorization (a person typing a
// password) is not counted.
const CheckTimeout = 20 * time.Second

func (s *UpgradeServer) check(msg dbus.Message) (map[string]dbus.Variant, *dbus.Error) {
	return s.preflight(msg, "")
}

func (s *UpgradeServer) preflight(msg dbus.Message, version string) (map[string]dbus.Variant, *dbus.Error) {
	if err := s.authorize(msg, dbusapi.ActionCheck); err != nil {
		return nil, dbusapi.ToDBus(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), CheckTimeout)
	defer cancel()
	v, err := layout.ParseVersion(version)
	if err != nil {
		return nil, dbusapi.ToDBus(err)
	}
	res, upToDate, err := s.d.Check(ctx, v)
	if err != nil {
		return nil, dbusapi.ToDBus(err)
	}
	st := s.d.Status()
	m := resultMap(res, upToDate, st.CurrentVersion)
	// Up to date is about the running slot; ready_to_reboot says that the
	// newer version is already built and boots next, so there is nothing
	// left to do but restart.
	m["ready_to_reboot"] = dbus.MakeVariant(res != nil && !upToDate && res.AlreadyReady && st.NextBootSlot == string(res.Slot))
	return m, nil
}

// authorize asks polkit whether the caller of msg may perform action,
// interactively if the message allows it.
func (s *UpgradeServer) authorize(msg dbus.Message, action string) error {
	return s.authz.Check(context.Background(), senderOf(msg), action, Interactive(msg))
}

func (s *UpgradeServer) upgrade(msg dbus.Message, version string, opts map[string]dbus.Variant) (uint32, *dbus.Error) {
	v, err := layout.ParseVersion(version)
	if err != nil {
		return 0, dbusapi.ToDBus(err)
	}
	action, newestOnly := s.upgradeAction(v)
	if err := s.authorize(msg, action); err != nil {
		return 0, dbusapi.ToDBus(err)
	}
	o, err := dbusapi.ParseOptions(opts)
	if err != nil {
		return 0, dbusapi.ToDBus(err)
	}
	job, err := s.d.Upgrade(v, daemon.JobOpts{
		Force: o.Force, Background: o.Background, Tries: o.Tries, DownloadOnly: o.DownloadOnly,
		NewestOnly: newestOnly,
	})
	return job, dbusapi.ToDBus(err)
}

// upgradeAction is the polkit action an upgrade to v needs, and whether the
// job must then refuse anything but the newest version. The newest ("", or
// the version the last check found newest) needs dbusapi.ActionUpgrade; the job
// checks again against the index it fetches, so a stale check cannot
// smuggle an older build through. Any other version needs
// dbusapi.ActionUpgradeOther.
func (s *UpgradeServer) upgradeAction(v layout.Version) (string, bool) {
	switch {
	case v == 0:
		return dbusapi.ActionUpgrade, false
	case s.d.Status().AvailableVersion == v.String():
		return dbusapi.ActionUpgrade, true
	}
	return dbusapi.ActionUpgradeOther, false
}

// upgradeTo is Upgrade with default options, for clients that cannot write
// an a{sv} at all (dbus-send has no variant type).
func (s *UpgradeServer) upgradeTo(msg dbus.Message, version string) (uint32, *dbus.Error) {
	return s.upgrade(msg, version, nil)
}

// apply activates a version staged by Upgrade with download_only; the
// same action as Upgrade (it finishes what an Upgrade started).
func (s *UpgradeServer) apply(msg dbus.Message, version string) (uint32, *dbus.Error) {
	if err := s.authorize(msg, dbusapi.ActionUpgrade); err != nil {
		return 0, dbusapi.ToDBus(err)
	}
	v, err := layout.ParseVersion(version)
	if err != nil {
		return 0, dbusapi.ToDBus(err)
	}
	job, err := s.d.Apply(v, daemon.JobOpts{})
	return job, dbusapi.ToDBus(err)
}

// setChannel switches channels: an administrator's decision, like a
// rollback (which version line the machine follows).
func (s *UpgradeServer) setChannel(msg dbus.Message, channel string) *dbus.Error {
	if err := s.authorize(msg, dbusapi.ActionRollback); err != nil {
		return dbusapi.ToDBus(err)
	}
	return dbusapi.ToDBus(s.d.SetChannel(channel))
}

func (s *UpgradeServer) cancelJob(msg dbus.Message) *dbus.Error {
	if err := s.authorize(msg, dbusapi.ActionUpgrade); err != nil {
		return dbusapi.ToDBus(err)
	}
	s.d.Cancel()
	return nil
}

func (s *UpgradeServer) rollback(msg dbus.Message) (string, string, *dbus.Error) {
	if err := s.authorize(msg, dbusapi.ActionRollback); err != nil {
		return "", "", dbusapi.ToDBus(err)
	}
	slot, v, err := s.d.Rollback(context.Background())
	if err != nil {
		return "", "", dbusapi.ToDBus(err)
	}
	return string(slot), v.String(), nil
}

func (s *UpgradeServer) history() ([]map[string]dbus.Variant, *dbus.Error) {
	out := []map[string]dbus.Variant{}
	for _, h := range s.d.History() {
		out = append(out, map[string]dbus.Variant{
			"job":        dbus.MakeVariant(h.Job),
			"version":    dbus.MakeVariant(h.Version),
			"success":    dbus.MakeVariant(h.Success),
			"error_name": dbus.MakeVariant(h.Error),
			"message":    dbus.MakeVariant(h.Message),
			"started":    dbus.MakeVariant(uint64(h.Started.Unix())),
			"finished":   dbus.MakeVariant(uint64(h.Finished.Unix())),
			"fetched":    dbus.MakeVariant(uint64(h.Fetched)),
			"resumed":    dbus.MakeVariant(h.Resumed),
		})
	}
	return out, nil
}
