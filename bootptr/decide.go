package bootptr

import (
	"fmt"

	"laptop.org/upgrade/layout"
)

// Decision is what the initrd does with the pointer at one boot.
type Decision struct {
	Boot   layout.Slot // slot to boot; "" when neither slot exists
	Write  bool        // pointer must be rewritten before switching (a normal boot writes nothing)
	New    Pointer     // pointer to write when Write
	Reason string      // one line for the console, e.g. "trial b: 2 tries left"
}

// LostPointerTries is the trial a slot gets when the pointer is lost and
// the slot is not the one `current` names: nothing vouches for it.
const LostPointerTries = 3

// Decide is the whole boot-counting policy, pure so that every case is a
// table row. The initrd calls it with the pointer Read returned (and Read's
// error), the upgrade.slot= override from the kernel command line ("" when
// absent), the slot R/current names ("" when it names none: the slot the
// last boot chose), and a test for whether a slot's tree exists on the
// mounted root.
//
// The rules, in order:
//  1. An override naming an existing slot boots it for this boot only and
//     writes nothing, so firmware can rescue a machine without changing what
//     the next boot does. An override naming a missing slot is ignored.
//  2. A missing or corrupt pointer boots the slot `current` names if it
//     exists, and writes a fresh pointer naming it good: it is what ran
//     last. Any other choice (a, else b) boots on trial with the other slot
//     as the fallback, since it may be half rebuilt: a pointer naming it
//     good would keep it even if it never booted. With no other slot to
//     fall back to there is nothing to try, and it is named good.
//  3. A trial with tries left boots Next and writes Tries-1 before the switch:
//     a boot that hangs or crashes has already paid for its try.
//  4. A trial with no tries left (or whose slot is gone) boots Good and writes
//     Next=Good, Trial off, Failed=the abandoned slot, for the daemon to report.
//  5. Otherwise Next boots and nothing is written.
//
// If the slot chosen by 4 or 5 does not exist, the other boots if it exists,
// and the pointer is left alone: the initrd never promotes a slot the security
// service has not verified. Neither slot existing gives Boot "".
func Decide(p Pointer, readErr error, override, current layout.Slot, exists func(layout.Slot) bool) Decision {
	var ignored string
	if override != "" {
		if override.Valid() && exists(override) {
			return Decision{Boot: override, Reason: fmt.Sprintf("override upgrade.slot=%s (this boot only)", override)}
		}
		ignored = fmt.Sprintf("; override upgrade.slot=%s ignored: no such slot", override)
	}
	if readErr == nil {
		if err := p.Validate(); err != nil {
			readErr = err
		}
	}
	if readErr != nil {
		return lostPointer(readErr, current, exists, ignored)
	}

	if p.Trial && p.Tries > 0 && exists(p.Next) {
		n := p
		n.Tries--
		n.Seq++
		return Decision{Boot: p.Next, Write: true, New: n, Reason: fmt.Sprintf("trial %s: %d tries left%s", p.Next, n.Tries, ignored)}
	}

	var d Decision
	switch {
	case p.Trial:
		why := "no tries left"
		if !exists(p.Next) {
			why = "slot missing"
		}
		d = Decision{
			Boot:   p.Good,
			Write:  true,
			New:    Pointer{Next: p.Good, Good: p.Good, Failed: p.Next, Seq: p.Seq + 1},
			Reason: fmt.Sprintf("trial %s failed (%s): falling back to good %s", p.Next, why, p.Good),
		}
	default:
		d = Decision{Boot: p.Next, Reason: fmt.Sprintf("normal %s", p.Next)}
	}
	if !exists(d.Boot) {
		other := d.Boot.Other()
		if !exists(other) {
			return Decision{Reason: fmt.Sprintf("%s; neither slot a nor b exists%s", d.Reason, ignored)}
		}
		d = Decision{Boot: other, Reason: fmt.Sprintf("%s; slot %s missing, booting %s, pointer unchanged", d.Reason, d.Boot, other)}
	}
	d.Reason += ignored
	return d
}

// lostPointer is rule 2.
func lostPointer(readErr error, current layout.Slot, exists func(layout.Slot) bool, ignored string) Decision {
	if current.Valid() && exists(current) {
		return Decision{
			Boot:   current,
			Write:  true,
			New:    Pointer{Next: current, Good: current, Seq: 1},
			Reason: fmt.Sprintf("boot pointer unusable (%v): booting %s, which current names, writing a fresh pointer%s", readErr, current, ignored),
		}
	}
	for _, s := range []layout.Slot{layout.SlotA, layout.SlotB} {
		if !exists(s) {
			continue
		}
		if !exists(s.Other()) {
			return Decision{
				Boot:   s,
				Write:  true,
				New:    Pointer{Next: s, Good: s, Seq: 1},
				Reason: fmt.Sprintf("boot pointer unusable (%v), current names no slot: booting %s, the only slot%s", readErr, s, ignored),
			}
		}
		return Decision{
			Boot:   s,
			Write:  true,
			New:    Pointer{Next: s, Good: s.Other(), Trial: true, Tries: LostPointerTries - 1, Seq: 1},
			Reason: fmt.Sprintf("boot pointer unusable (%v), current names no slot: trial %s, %d tries left, falling back to %s%s", readErr, s, LostPointerTries-1, s.Other(), ignored),
		}
	}
	return Decision{Reason: fmt.Sprintf("boot pointer unusable (%v) and neither slot a nor b exists%s", readErr, ignored)}
}

// WithTrial returns the pointer after the security service has verified slot
// s: the next boot tries s, and after tries boots without a MarkGood the
// initrd falls back to Good. tries is clamped to 1..MaxTries, since a trial
// with no tries would never boot s at all. A previous failure report is
// cleared: it described an attempt this one replaces.
func (p Pointer) WithTrial(s layout.Slot, tries int) Pointer {
	p.Next, p.Trial, p.Tries, p.Failed = s, true, min(max(tries, 1), MaxTries), ""
	p.Seq++
	return p
}

// MarkGood returns the pointer after boot-complete on the booted slot: booted
// becomes Good, and if it was the slot on trial (or next anyway) the trial
// ends. If another slot is next — a trial or rollback queued during this boot,
// or a boot forced by the override — that choice stands; marking the running
// slot good must not cancel it. A failure report about booted is cleared.
func (p Pointer) MarkGood(booted layout.Slot) Pointer {
	p.Good = booted
	if p.Next == booted {
		p.Trial, p.Tries = false, 0
	}
	if p.Failed == booted {
		p.Failed = ""
	}
	p.Seq++
	return p
}

// Rollback returns the pointer that boots `to` next with no trial: `to` must
// be a slot the security service holds verified (it booted good before).
// Any trial in progress is cancelled; a failure report is kept.
func (p Pointer) Rollback(to layout.Slot) Pointer {
	p.Next, p.Good, p.Trial, p.Tries = to, to, false, 0
	p.Seq++
	return p
}
