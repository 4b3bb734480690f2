// Package harness is the shared helper of the integration tests under
// test/: it builds every program once per test binary, installs a fresh
// qmail tree into a temporary root with the real qmail-install, and offers
// bounded waits and small inspection helpers.
//
// Typical use:
//
//	func TestX(t *testing.T) {
//		tr := harness.Install(t)
//		tr.Control("holdremote", "")
//		if err := tr.Queue(t, "a@example.com", []string{"b@example.com"}, msg); err != nil { ... }
//		harness.WaitFor(t, 10*time.Second, func() bool { ... })
//	}
//
// Process start/stop helpers (qmail-start, signals to qmail-send) belong in
// system.go of this package; the scheduler side of the project adds them.
//
// Environment:
//   - HQMAIL_BINDIR: use the programs already built in that directory
//     instead of building ./cmd/... (e.g. `make` output, bin/).
//   - HQMAIL_KEEP=1: keep every temporary root, not only failed ones.
package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qhome"
)

var (
	buildOnce sync.Once
	binDir    string
	ownBinDir bool // binDir was made by doBuild (not HQMAIL_BINDIR)
	buildErr  error
	// buildFailed maps a program name to its build error output when the
	// whole ./cmd/... build failed and programs were built one by one.
	buildFailed map[string]string
)

// Main is TestMain for packages that use the harness: it runs the tests
// and then removes what Build made (about 100 MB of programs), whatever
// the result. cleanups are run too, after the tests.
func Main(m *testing.M, cleanups ...func()) int {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	if ownBinDir {
		os.RemoveAll(binDir)
	}
	return code
}

// ModuleRoot returns the directory holding go.mod, found with `go env GOMOD`
// from the current directory (a test runs in its package directory).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module (go env GOMOD is %q)", mod)
	}
	return filepath.Dir(mod), nil
}

// Build builds every program under ./cmd/ once per test binary
// (CGO_ENABLED=0) and returns the directory holding the binaries. If the
// combined build fails (another part of the tree may be mid-change), each
// program is built on its own; the ones that fail are recorded and a later
// Bin/Install that needs them reports their error. Build fails the test only
// when nothing could be built.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(doBuild)
	if buildErr != nil {
		t.Fatalf("harness: build: %v", buildErr)
	}
	return binDir
}

func doBuild() {
	if d := os.Getenv("HQMAIL_BINDIR"); d != "" {
		binDir, buildErr = filepath.Abs(d)
		return
	}
	root, err := ModuleRoot()
	if err != nil {
		buildErr = err
		return
	}
	dir, err := os.MkdirTemp("", "hqmail-bin-")
	if err != nil {
		buildErr = err
		return
	}
	// Programs are run by other users when the tests run as root.
	os.Chmod(dir, 0o755)
	binDir, ownBinDir = dir, true
	env := append(os.Environ(), "CGO_ENABLED=0")
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
	cmd.Dir = root
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	// Fall back to one program at a time.
	progs, _ := filepath.Glob(filepath.Join(root, "cmd", "*"))
	buildFailed = map[string]string{}
	built := 0
	for _, p := range progs {
		name := filepath.Base(p)
		c := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		c.Dir = root
		c.Env = env
		if o, err := c.CombinedOutput(); err != nil {
			buildFailed[name] = strings.TrimSpace(string(o))
			continue
		}
		built++
	}
	if built == 0 {
		buildErr = fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
	}
}

// BuildError returns the build error of one program, or "" if it built.
func BuildError(name string) string { return buildFailed[name] }

// RequireBin fails the test if program name did not build.
func RequireBin(t testing.TB, name string) string {
	t.Helper()
	dir := Build(t)
	if e := buildFailed[name]; e != "" {
		t.Fatalf("harness: %s did not build:\n%s", name, e)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("harness: no program %s in %s", name, dir)
	}
	return p
}

// Tree is an installed qmail tree in a temporary root.
type Tree struct {
	Root string // the install root (DIR of DIR/bin)
	t    testing.TB
}

// InstallOpt adjusts how Install runs qmail-install.
type InstallOpt func(*installConfig)

type installConfig struct {
	args     []string
	realIDs  bool
	me       string
	noAssign bool
}

// WithMe sets control/me (qmail-install -me NAME). Default: "testhost.example".
func WithMe(name string) InstallOpt { return func(c *installConfig) { c.me = name } }

// WithArgs passes extra arguments to qmail-install.
func WithArgs(args ...string) InstallOpt {
	return func(c *installConfig) { c.args = append(c.args, args...) }
}

// WithRealUsers (root only) installs with qmail's named users and groups,
// creating them with useradd/groupadd if missing, instead of the numeric
// test ids (TestUIDBase) used by default as root.
func WithRealUsers() InstallOpt { return func(c *installConfig) { c.realIDs = true } }

// TestUIDBase is the first uid/gid qmail-install -uid-base gets when the
// tests run as root: alias=base, qmaild=base+1, ... qmails=base+6; group
// qmail=base, nofiles=base+1. These ids have no passwd entries.
const TestUIDBase = 64010

// Install builds the programs (once) and runs qmail-install -root on a new
// temporary directory. The directory is removed when the test ends, unless
// the test failed (its path is logged then) or HQMAIL_KEEP=1.
func Install(t testing.TB, opts ...InstallOpt) *Tree {
	t.Helper()
	inst := RequireBin(t, "qmail-install")
	cfg := &installConfig{me: "testhost.example"}
	for _, o := range opts {
		o(cfg)
	}
	root := TempRoot(t)
	args := []string{"-root", root, "-me", cfg.me}
	if os.Geteuid() == 0 && !cfg.realIDs {
		args = append(args, "-uid-base", fmt.Sprint(TestUIDBase))
	}
	args = append(args, cfg.args...)
	cmd := exec.Command(inst, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("harness: qmail-install %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return &Tree{Root: root, t: t}
}

// TempRoot makes an empty directory (mode 0755, so qmail's users can reach
// it when running as root) that is removed at the end of the test unless
// the test failed or HQMAIL_KEEP=1.
func TempRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hqmail-root-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killUnder(dir)
		if t.Failed() || os.Getenv("HQMAIL_KEEP") == "1" {
			t.Logf("harness: keeping %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// killUnder kills (SIGKILL) every process whose executable or working
// directory is in dir: what a test started in its tree and left running
// when it ends, such as a delivery's program (qmail-lspawn starts each
// delivery in a session of its own, which no kill of qmail-start's
// process group reaches). Two passes, for a child forked during the
// first; processes of other users that this one may not look at are
// left alone.
func killUnder(dir string) {
	self := os.Getpid()
	for range 2 {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			for _, l := range []string{"exe", "cwd"} {
				p, err := os.Readlink("/proc/" + e.Name() + "/" + l)
				if err == nil && (p == dir || strings.HasPrefix(p, dir+"/")) {
					syscall.Kill(pid, syscall.SIGKILL)
					break
				}
			}
		}
	}
}

// Path joins elements onto the root.
func (tr *Tree) Path(elem ...string) string {
	return filepath.Join(append([]string{tr.Root}, elem...)...)
}

// Bin returns the path of an installed program, ROOT/bin/NAME.
func (tr *Tree) Bin(name string) string { return filepath.Join(tr.Root, "bin", name) }

// Control writes ROOT/control/NAME (mode 0644). A content without a final
// newline is written as given.
func (tr *Tree) Control(name, content string) {
	tr.t.Helper()
	if err := os.WriteFile(tr.Path("control", name), []byte(content), 0o644); err != nil {
		tr.t.Fatalf("harness: control/%s: %v", name, err)
	}
}

// RemoveControl removes ROOT/control/NAME (missing is fine).
func (tr *Tree) RemoveControl(name string) {
	tr.t.Helper()
	if err := os.Remove(tr.Path("control", name)); err != nil && !os.IsNotExist(err) {
		tr.t.Fatalf("harness: remove control/%s: %v", name, err)
	}
}

// Command returns a command for ROOT/bin/NAME with its working directory
// at the root.
func (tr *Tree) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(tr.Bin(name), args...)
	cmd.Dir = tr.Root
	return cmd
}

// Run runs ROOT/bin/NAME with stdin and returns its combined output and
// exit code (-1 if it did not exit normally). It fails the test only if the
// program could not be started.
func (tr *Tree) Run(t testing.TB, stdin []byte, name string, args ...string) (string, int) {
	t.Helper()
	cmd := tr.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("harness: run %s: %v", name, err)
	}
	return string(out), 0
}

// Glob returns the sorted matches of pattern relative to the root.
func (tr *Tree) Glob(pattern string) []string {
	m, _ := filepath.Glob(filepath.Join(tr.Root, pattern))
	sort.Strings(m)
	return m
}

// QueueFiles returns the IDs present in queue/todo, queue/mess/*, and so on:
// the names of the regular files under queue/<dir> (split dirs walked).
func (tr *Tree) QueueFiles(dir string) []string {
	var out []string
	base := tr.Path("queue", dir)
	filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			out = append(out, filepath.Base(p))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// IDs returns the users and groups recorded in ROOT/etc/ids.
func (tr *Tree) IDs() *qhome.IDs {
	tr.t.Helper()
	ids, err := qhome.LoadIDs(tr.Root)
	if err != nil {
		tr.t.Fatalf("harness: %v", err)
	}
	return ids
}
