package daemon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
)

// testActivatedOtherVersion: the security service answers Activate with
// the version it verified in the slot; when that is not the version the
// job built, the job fails and the slot is withdrawn, so what boots next
// is never a version nobody asked for.
func testActivatedOtherVersion(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	f.sec.answer = 3 // the job builds 2
	d := f.start(t)
	defer d.Close()
	if _, err := d.Upgrade(2, daemon.JobOpts{}); err != nil {
		t.Fatal(err)
	}
	d.Wait()
	got := f.finished()
	if len(got) != 1 || got[0].Success || !strings.Contains(got[0].Message, "activated slot b as version 3, but the job built 2") {
		t.Errorf("Finished = %+v, want one failure naming both versions", got)
	}
	if diff := cmp.Diff([]string{"Invalidate b", "Activate b", "Invalidate b"}, f.sec.callLog()); diff != "" {
		t.Errorf("security calls (-want +got):\n%s", diff)
	}
	if p, _ := f.sec.Pointer(context.Background()); p.Next != layout.SlotA {
		t.Errorf("pointer after activating another version: %+v, want slot a next", p)
	}
}
