package testbus

import (
	"encoding/xml"
	"os"
	"strings"
	"testing"
)

// TestRewriteSystemConf checks the rewrite of the real system.conf: what
// ties a bus to the machine is gone, the system bus policy stays, and ours
// is appended.
func TestRewriteSystemConf(t *testing.T) {
	src, err := os.ReadFile(systemConf)
	if err != nil {
		t.Fatalf("%v (is dbus-system-bus-common installed?)", err)
	}
	out, err := rewriteSystemConf(src, busConfig{socket: "/tmp/x/bus", serviceDir: "/tmp/x/services", policyDir: "/tmp/x/system.d"})
	if err != nil {
		t.Fatal(err)
	}
	conf := string(out)
	if err := xml.Unmarshal(out, new(struct{})); err != nil {
		t.Fatalf("rewritten config is not XML: %v\n%s", err, conf)
	}
	for _, want := range []string{
		"<type>system</type>",
		"<auth>EXTERNAL</auth>",
		`<allow user="*">`,
		`<deny own="*">`,
		"<listen>unix:path=/tmp/x/bus</listen>",
		"<servicedir>/tmp/x/services</servicedir>",
		"<includedir>/tmp/x/system.d</includedir>",
		`<include ignore_missing="yes">` + polkitConf + "</include>",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("rewritten config lacks %s", want)
		}
	}
	for _, gone := range []string{"<user>", "<fork", "<pidfile>", "<syslog", "<servicehelper>", "<standard_system_servicedirs",
		"/run/dbus", "/etc/dbus-1", "<includedir>system.d</includedir>", "dbus_contexts"} {
		if strings.Contains(conf, gone) {
			t.Errorf("rewritten config still has %s:\n%s", gone, conf)
		}
	}
	if !strings.HasSuffix(conf, "</busconfig>\n") {
		t.Errorf("rewritten config does not end with </busconfig>")
	}
}

// TestRewriteRefusesWeakConfig: if Debian's file stops granting everyone
// access, the test bus must fail loudly rather than let only root connect
// (every "nobody" test would then pass for the wrong reason).
func TestRewriteRefusesWeakConfig(t *testing.T) {
	src := `<busconfig><type>system</type><auth>EXTERNAL</auth><policy context="default"><deny own="*"/></policy></busconfig>`
	if _, err := rewriteSystemConf([]byte(src), busConfig{}); err == nil {
		t.Fatal("rewrite accepted a config without <allow user=\"*\"/>")
	}
}
