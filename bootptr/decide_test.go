package bootptr

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

func slots(have ...layout.Slot) func(layout.Slot) bool {
	return func(s layout.Slot) bool {
		for _, h := range have {
			if h == s {
				return true
			}
		}
		return false
	}
}

var (
	both  = slots("a", "b")
	onlyA = slots("a")
	onlyB = slots("b")
	none  = slots()
)

func TestDecide(t *testing.T) {
	normalA := Pointer{Next: "a", Good: "a", Seq: 5}
	normalB := Pointer{Next: "b", Good: "b", Seq: 5}
	trialB3 := Pointer{Next: "b", Good: "a", Trial: true, Tries: 3, Seq: 5}
	trialB1 := Pointer{Next: "b", Good: "a", Trial: true, Tries: 1, Seq: 5}
	trialB0 := Pointer{Next: "b", Good: "a", Trial: true, Tries: 0, Seq: 5}
	trialA0 := Pointer{Next: "a", Good: "b", Trial: true, Tries: 0, Seq: 5}
	corrupt := fmt.Errorf("bad crc: %w", errdefs.ErrCorrupt)
	missing := fmt.Errorf("read: %w", os.ErrNotExist)

	for _, tc := range []struct {
		name     string
		p        Pointer
		readErr  error
		override layout.Slot
		current  layout.Slot // what R/current names
		exists   func(layout.Slot) bool
		want     Decision
		reason   string // substring of Reason
	}{
		// Not on trial: boot Next, write nothing.
		{name: "normal a", p: normalA, exists: both, want: Decision{Boot: "a"}, reason: "normal a"},
		{name: "normal b", p: normalB, exists: both, want: Decision{Boot: "b"}},
		{name: "normal a missing falls to b", p: normalA, exists: onlyB, want: Decision{Boot: "b"}, reason: "slot a missing"},
		{name: "normal b missing falls to a", p: normalB, exists: onlyA, want: Decision{Boot: "a"}},
		{name: "normal, no slots", p: normalA, exists: none, want: Decision{}, reason: "neither slot"},
		{name: "rolled back with failure report", p: Pointer{Next: "a", Good: "a", Failed: "b", Seq: 6}, exists: both, want: Decision{Boot: "a"}},

		// Trial with tries left: boot Next, consume one try before switching.
		{name: "trial 3 tries", p: trialB3, exists: both, want: Decision{Boot: "b", Write: true,
			New: Pointer{Next: "b", Good: "a", Trial: true, Tries: 2, Seq: 6}}, reason: "trial b: 2 tries left"},
		{name: "trial last try", p: trialB1, exists: both, want: Decision{Boot: "b", Write: true,
			New: Pointer{Next: "b", Good: "a", Trial: true, Tries: 0, Seq: 6}}, reason: "0 tries left"},
		{name: "trial slot missing falls back", p: trialB3, exists: onlyA, want: Decision{Boot: "a", Write: true,
			New: Pointer{Next: "a", Good: "a", Failed: "b", Seq: 6}}, reason: "slot missing"},
		// Trial out of tries: back to Good, report the abandoned slot.
		{name: "trial exhausted", p: trialB0, exists: both, want: Decision{Boot: "a", Write: true,
			New: Pointer{Next: "a", Good: "a", Failed: "b", Seq: 6}}, reason: "trial b failed (no tries left): falling back to good a"},
		{name: "trial a exhausted", p: trialA0, exists: both, want: Decision{Boot: "b", Write: true,
			New: Pointer{Next: "b", Good: "b", Failed: "a", Seq: 6}}},
		{name: "trial exhausted, good missing: boot trial slot, keep pointer", p: trialB0, exists: onlyB,
			want: Decision{Boot: "b"}, reason: "slot a missing"},
		{name: "trial, no slots", p: trialB3, exists: none, want: Decision{}},
		{name: "trial exhausted, no slots", p: trialB0, exists: none, want: Decision{}},

		// Override: this boot only, never a write, even over a trial or a bad pointer.
		{name: "override b over normal a", p: normalA, override: "b", exists: both, want: Decision{Boot: "b"}, reason: "override upgrade.slot=b"},
		{name: "override a over normal a", p: normalA, override: "a", exists: both, want: Decision{Boot: "a"}},
		{name: "override a over trial b keeps tries", p: trialB3, override: "a", exists: both, want: Decision{Boot: "a"}},
		{name: "override over exhausted trial writes nothing", p: trialB0, override: "b", exists: both, want: Decision{Boot: "b"}},
		{name: "override over corrupt pointer writes nothing", readErr: corrupt, override: "b", exists: both, want: Decision{Boot: "b"}},
		{name: "override to missing slot ignored", p: normalA, override: "b", exists: onlyA, want: Decision{Boot: "a"}, reason: "upgrade.slot=b ignored"},
		{name: "override to missing slot ignored on trial", p: trialB3, override: "a", exists: onlyB, want: Decision{Boot: "b", Write: true,
			New: Pointer{Next: "b", Good: "a", Trial: true, Tries: 2, Seq: 6}}, reason: "ignored"},
		{name: "invalid override ignored", p: normalA, override: "c", exists: both, want: Decision{Boot: "a"}, reason: "upgrade.slot=c ignored"},

		// Missing or corrupt pointer: boot what current names, good, and write a
		// fresh pointer; any other choice (a first) boots on trial.
		{name: "missing pointer, current b", readErr: missing, current: "b", exists: both,
			want: Decision{Boot: "b", Write: true, New: Pointer{Next: "b", Good: "b", Seq: 1}}, reason: "which current names"},
		{name: "corrupt pointer, current b", readErr: corrupt, current: "b", exists: both,
			want: Decision{Boot: "b", Write: true, New: Pointer{Next: "b", Good: "b", Seq: 1}}},
		{name: "corrupt pointer, current a", readErr: corrupt, current: "a", exists: both,
			want: Decision{Boot: "a", Write: true, New: Pointer{Next: "a", Good: "a", Seq: 1}}},
		{name: "missing pointer, no current: a on trial", readErr: missing, exists: both,
			want: Decision{Boot: "a", Write: true, New: Pointer{Next: "a", Good: "b", Trial: true, Tries: LostPointerTries - 1, Seq: 1}}, reason: "trial a"},
		{name: "corrupt pointer, current names a missing slot: b on trial", readErr: corrupt, current: "a", exists: onlyB,
			want: Decision{Boot: "b", Write: true, New: Pointer{Next: "b", Good: "b", Seq: 1}}, reason: "the only slot"},
		{name: "corrupt pointer, only b", readErr: corrupt, exists: onlyB, want: Decision{Boot: "b", Write: true, New: Pointer{Next: "b", Good: "b", Seq: 1}}},
		{name: "corrupt pointer, no slots", readErr: corrupt, current: "a", exists: none, want: Decision{}, reason: "neither slot"},
		{name: "corrupt pointer, override missing", readErr: corrupt, override: "b", current: "a", exists: onlyA,
			want: Decision{Boot: "a", Write: true, New: Pointer{Next: "a", Good: "a", Seq: 1}}, reason: "ignored"},
		{name: "invalid pointer without error", p: Pointer{Next: "x", Good: "a"}, current: "b", exists: both,
			want: Decision{Boot: "b", Write: true, New: Pointer{Next: "b", Good: "b", Seq: 1}}, reason: "unusable"},
		{name: "invalid pointer, no current", p: Pointer{Next: "x", Good: "a"}, exists: both,
			want: Decision{Boot: "a", Write: true, New: Pointer{Next: "a", Good: "b", Trial: true, Tries: LostPointerTries - 1, Seq: 1}}, reason: "unusable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.p, tc.readErr, tc.override, tc.current, tc.exists)
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(Decision{}, "Reason")); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
			if !strings.Contains(got.Reason, tc.reason) || strings.Contains(got.Reason, "\n") || got.Reason == "" {
				t.Errorf("Reason %q: want one line containing %q", got.Reason, tc.reason)
			}
		})
	}
}

// TestDecideInvariants runs every combination of pointer state, read error,
// override and existing slots through Decide and checks the rules that must
// hold whatever the case: the booted slot exists, a write is a valid pointer
// that names the booted slot as next unless a trial continues, and an
// override or a normal boot never writes.
func TestDecideInvariants(t *testing.T) {
	all := []layout.Slot{"a", "b"}
	var ptrs []Pointer
	for _, next := range all {
		for _, good := range all {
			for _, failed := range []layout.Slot{"", "a", "b"} {
				ptrs = append(ptrs, Pointer{Next: next, Good: good, Failed: failed, Seq: 9})
				for _, tries := range []int{0, 1, 2, 99} {
					ptrs = append(ptrs, Pointer{Next: next, Good: good, Trial: true, Tries: tries, Failed: failed, Seq: 9})
				}
			}
		}
	}
	exists := map[string]func(layout.Slot) bool{"both": both, "a": onlyA, "b": onlyB, "none": none}
	n := 0
	for _, readErr := range []error{nil, errdefs.ErrCorrupt, os.ErrNotExist} {
		for _, p := range ptrs {
			for _, ov := range []layout.Slot{"", "a", "b", "z"} {
				for en, ex := range exists {
					for _, cur := range []layout.Slot{"", "a", "b"} {
						n++
						d := Decide(p, readErr, ov, cur, ex)
						name := fmt.Sprintf("%+v err=%v ov=%q current=%q exists=%s -> %+v", p, readErr, ov, cur, en, d)
						if readErr != nil && !(ov.Valid() && ex(ov)) && d.Boot != "" {
							// A lost pointer: what current names boots as good;
							// anything else is on trial when there is a fallback.
							if onCurrent := cur != "" && ex(cur); onCurrent != (d.Boot == cur) || onCurrent == d.New.Trial && ex(d.Boot.Other()) {
								t.Errorf("%s: lost pointer: current must boot good, any other slot on trial", name)
							}
						}
						switch {
						case d.Boot == "" && (ex("a") || ex("b")):
							t.Errorf("%s: booted nothing though a slot exists", name)
						case d.Boot != "" && !ex(d.Boot):
							t.Errorf("%s: boots a missing slot", name)
						case d.Reason == "":
							t.Errorf("%s: no reason", name)
						}
						if ov.Valid() && ex(ov) && (d.Boot != ov || d.Write) {
							t.Errorf("%s: override must boot %s and write nothing", name, ov)
						}
						if readErr == nil && !p.Trial && d.Write {
							t.Errorf("%s: a normal boot wrote", name)
						}
						if !d.Write {
							if d.New != (Pointer{}) {
								t.Errorf("%s: New set without Write", name)
							}
							continue
						}
						if err := d.New.Validate(); err != nil {
							t.Errorf("%s: writes invalid pointer: %v", name, err)
						}
						if d.New.Next != d.Boot {
							t.Errorf("%s: written pointer does not name the booted slot", name)
						}
						if readErr == nil && d.New.Seq != p.Seq+1 {
							t.Errorf("%s: seq %d, want %d", name, d.New.Seq, p.Seq+1)
						}
						if readErr == nil && d.New.Trial && d.New.Tries >= p.Tries {
							t.Errorf("%s: a trial boot did not consume a try", name)
						}
					}
				}
			}
		}
	}
	if n < 1000 {
		t.Fatalf("only %d combinations", n)
	}
}
