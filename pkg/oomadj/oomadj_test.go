package oomadj

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
)

// at points path at p for one test.
func at(t *testing.T, p string) {
	t.Helper()
	old := path
	path = p
	t.Cleanup(func() { path = old })
}

// value is the number at the start of the file (a raise writes at offset
// 0 over what was there, as the kernel's file takes it).
func value(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func TestVolunteer(t *testing.T) {
	score := strconv.Itoa(Score)
	for _, c := range []struct {
		name, before, after string
	}{
		{"default raised", "0\n", score},
		{"negative raised", "-1000\n", score},
		{"just below raised", strconv.Itoa(Score-1) + "\n", score},
		{"equal left alone", score + "\n", score},
		{"higher left alone", "800\n", "800"},
		{"maximum left alone", "1000\n", "1000"},
		{"unparsable left alone", "x\n", "x"},
		{"empty left alone", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "oom_score_adj")
			if err := os.WriteFile(p, []byte(c.before), 0o644); err != nil {
				t.Fatal(err)
			}
			at(t, p)
			Volunteer()
			if got := value(t, p); got != c.after {
				t.Errorf("%q became %q, want %q", c.before, got, c.after)
			}
		})
	}
}

// TestVolunteerMissing: no file (no /proc) is ignored and none is made.
func TestVolunteerMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none", "oom_score_adj")
	at(t, p)
	Volunteer()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("Volunteer made %s (%v)", p, err)
	}
}

// TestVolunteerUnwritable: a file this process may read but not write is
// ignored (the open for writing fails) and left as it was.
func TestVolunteerUnwritable(t *testing.T) {
	t.Run("mode 0444", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes a file of mode 0444; see the sysctl case")
		}
		p := filepath.Join(t.TempDir(), "oom_score_adj")
		if err := os.WriteFile(p, []byte("0\n"), 0o444); err != nil {
			t.Fatal(err)
		}
		at(t, p)
		Volunteer()
		if got := value(t, p); got != "0" {
			t.Errorf("read-only file became %q", got)
		}
	})
	t.Run("read-only sysctl", func(t *testing.T) {
		// A sysctl of mode 0444 refuses an open for writing even to root,
		// and holds a number below Score.
		const p = "/proc/sys/kernel/cap_last_cap"
		before, err := os.ReadFile(p)
		if err != nil {
			t.Skipf("no %s: %v", p, err)
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(before))); err != nil || n >= Score {
			t.Skipf("%s holds %q", p, before)
		}
		at(t, p)
		Volunteer()
		if after, _ := os.ReadFile(p); string(after) != string(before) {
			t.Errorf("%s changed from %q to %q", p, before, after)
		}
	})
}

// TestVolunteerNonDumpable: a non-dumpable process (an execute-only
// binary run by a user who cannot read it) raises its own value through
// the dumpable window and is non-dumpable again afterwards. It runs in a
// child (this test binary again), whose value it may raise for good.
func TestVolunteerNonDumpable(t *testing.T) {
	if os.Getenv("OOMADJ_TEST_CHILD") == "1" {
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			fmt.Println("prctl:", err)
			os.Exit(1)
		}
		Volunteer()
		b, _ := os.ReadFile(path)
		d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		fmt.Printf("adj=%s dumpable=%d\n", strings.TrimSpace(string(b)), d)
		os.Exit(0)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n >= Score {
		t.Skipf("this process has oom_score_adj %q already", b)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestVolunteerNonDumpable$")
	if os.Geteuid() == 0 {
		// Root opens every /proc file: the child runs as nobody, from
		// a copy of the test binary nobody can reach.
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		os.Chmod(filepath.Dir(dir), 0o755)
		prog := filepath.Join(dir, "oomadj.test")
		testutil.CopyTestBinary(t, prog)
		cmd = exec.Command(prog, "-test.run=^TestVolunteerNonDumpable$")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}}
	}
	cmd.Env = append(os.Environ(), "OOMADJ_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("adj=%d dumpable=0\n", Score); string(out) != want {
		t.Errorf("child says %q, want %q", out, want)
	}
}
