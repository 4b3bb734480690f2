package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// TestStartHelpNamesItsStarters: qmail-start -h names what starts it, and
// each of those does: the rc script, the systemd unit and make run
// (scripts/run.sh) run qmail-start with control/defaultdelivery. It said
// "Usually run by qmailctl", which has no start command (unknown command,
// exit 100).
func TestStartHelpNamesItsStarters(t *testing.T) {
	start := harness.RequireBin(t, "qmail-start")
	out, err := exec.Command(start, "-h").Output()
	if err != nil {
		t.Fatalf("qmail-start -h: %v", err)
	}
	help := strings.Join(strings.Fields(string(out)), " ")
	mod, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ named, file string }{
		{"scripts/rc/qmail", "scripts/rc/qmail"},
		{"qmail.service", "scripts/systemd/qmail.service"},
		{"make run", "scripts/run.sh"},
	} {
		if !strings.Contains(help, s.named) {
			t.Errorf("qmail-start -h does not name %s:\n%s", s.named, out)
		}
		b, err := os.ReadFile(filepath.Join(mod, s.file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "qmail-start") || !strings.Contains(string(b), "control/defaultdelivery") {
			t.Errorf("%s runs no qmail-start with control/defaultdelivery", s.file)
		}
	}
	// qmailctl may be named only as what does not start it.
	if strings.Contains(help, "qmailctl") && !strings.Contains(help, "qmailctl does not start it") {
		t.Errorf("qmail-start -h has qmailctl start it:\n%s", out)
	}
	tr := harness.Install(t)
	if _, code := tr.Run(t, nil, "qmailctl", "start"); code != 100 {
		t.Errorf("qmailctl start: exit %d, want 100 (no such command)", code)
	}
}
