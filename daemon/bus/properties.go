package bus

import (
	"slices"

	"laptop.org/upgrade/daemon"
)

// property is one property of org.laptop.Upgrade1: its value in a status,
// and whether two statuses differ in it (typed, field by field).
type property struct {
	name  string
	value func(*daemon.Status) any
	same  func(a, b *daemon.Status) bool
}

// field is a property whose Go value is comparable.
func field[T comparable](name string, get func(*daemon.Status) T) property {
	return property{name, func(s *daemon.Status) any { return get(s) }, func(a, b *daemon.Status) bool { return get(a) == get(b) }}
}

// properties is the property table: names and D-Bus types are those of
// org.laptop.Upgrade1.xml (TestPropertiesMatchIntrospection).
var properties = []property{
	field("State", func(s *daemon.Status) string { return string(s.State) }),
	field("Job", func(s *daemon.Status) uint32 { return s.Job }),
	field("Progress", func(s *daemon.Status) uint32 { return s.Progress }),
	field("BytesDone", func(s *daemon.Status) uint64 { return s.BytesDone }),
	field("BytesTotal", func(s *daemon.Status) uint64 { return s.BytesTotal }),
	field("CurrentVersion", func(s *daemon.Status) string { return s.CurrentVersion }),
	field("AvailableVersion", func(s *daemon.Status) string { return s.AvailableVersion }),
	field("TargetVersion", func(s *daemon.Status) string { return s.TargetVersion }),
	field("BootedSlot", func(s *daemon.Status) string { return s.BootedSlot }),
	field("NextBootSlot", func(s *daemon.Status) string { return s.NextBootSlot }),
	field("NextBootVersion", func(s *daemon.Status) string { return s.NextBootVersion }),
	field("LastCheck", func(s *daemon.Status) uint64 { return s.LastCheck }),
	field("LastError", func(s *daemon.Status) string { return s.LastError }),
	field("LastErrorMessage", func(s *daemon.Status) string { return s.LastErrorMessage }),
	field("BootFailure", func(s *daemon.Status) string { return s.BootFailure }),
	{"Drift", func(s *daemon.Status) any {
		if s.Drift == nil {
			return []string{} // "as" even when empty
		}
		return s.Drift
	}, func(a, b *daemon.Status) bool { return slices.Equal(a.Drift, b.Drift) }},
	field("AvailableName", func(s *daemon.Status) string { return s.AvailableName }),
	field("ReleaseNotes", func(s *daemon.Status) string { return s.ReleaseNotes }),
	field("DownloadBytes", func(s *daemon.Status) uint64 { return s.DownloadBytes }),
	field("Channel", func(s *daemon.Status) string { return s.Channel }),
}

// lookup finds a property by name.
func lookup(name string) (property, bool) {
	i := slices.IndexFunc(properties, func(p property) bool { return p.name == name })
	if i < 0 {
		return property{}, false
	}
	return properties[i], true
}

// values is every property of s (GetAll).
func values(s daemon.Status) map[string]any {
	out := make(map[string]any, len(properties))
	for _, p := range properties {
		out[p.name] = p.value(&s)
	}
	return out
}

// changed is the properties whose values differ between old and cur.
func changed(old, cur daemon.Status) map[string]any {
	out := map[string]any{}
	for _, p := range properties {
		if !p.same(&old, &cur) {
			out[p.name] = p.value(&cur)
		}
	}
	return out
}
