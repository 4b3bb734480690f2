package test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// TestRunScriptPortInUseHint: when make run's qmail-smtpd finds its port
// taken, scripts/run.sh suggests another port with a command that names
// the same tree: RUNROOT=DIR in the make run hint when one was given
// (without it, the suggested make run would start a second tree in ./run).
// The script runs from a copy of the checkout (scripts/run.sh and bin/),
// as an ordinary user (nobody when the tests run as root: run.sh as root
// would create qmail's users).
func TestRunScriptPortInUseHint(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	bin := harness.Build(t)
	for _, p := range []string{"qmail-install", "qmail-start", "qmail-smtpd", "qmail-send"} {
		harness.RequireBin(t, p)
	}
	mod, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(mod, "scripts", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody to run scripts/run.sh as: ", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	listen := ln.Addr().String()

	for _, tc := range []struct {
		name    string
		runroot bool
	}{{"RUNROOT", true}, {"default root", false}} {
		t.Run(tc.name, func(t *testing.T) {
			top := harness.TempRoot(t)
			for _, d := range []string{"scripts", "runroot"} {
				if err := os.Mkdir(filepath.Join(top, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(top, "scripts", "run.sh"), script, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(bin, filepath.Join(top, "bin")); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{top, filepath.Join(top, "scripts"), filepath.Join(top, "scripts", "run.sh"), filepath.Join(top, "runroot")} {
				if err := os.Lchown(p, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			env := []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LISTEN=" + listen}
			root := filepath.Join(top, "run")
			if tc.runroot {
				root = filepath.Join(top, "runroot", "tree")
				env = append(env, "RUNROOT="+root)
			}
			runScript := func(arg string) (string, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				args := []string{"sh", filepath.Join(top, "scripts", "run.sh"), arg}
				if os.Getuid() == 0 {
					args = append([]string{"setpriv", "--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid), "--clear-groups"}, args...)
				}
				cmd := exec.CommandContext(ctx, args[0], args[1:]...)
				cmd.Env = env
				cmd.Dir = top
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				return out.String(), err
			}
			t.Cleanup(func() {
				if out, err := runScript("stop"); err != nil {
					t.Errorf("run.sh stop: %v\n%s", err, out)
				}
				// Whatever stop left running (it waits 10 s for qmail-send):
				// each daemon leads its own process group (setsid).
				for _, f := range []string{"start.pid", "smtpd.pid"} {
					b, err := os.ReadFile(filepath.Join(root, "var", f))
					if errors.Is(err, os.ErrNotExist) {
						continue
					}
					if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
						syscall.Kill(-pid, syscall.SIGKILL)
					}
				}
			})

			out, err := runScript("start")
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("run.sh start with %s taken: %v, want exit 1\n%s", listen, err, out)
			}
			rr := ""
			if tc.runroot {
				rr = " RUNROOT=" + root
			}
			want := "(another listener there? try: make run" + rr + " LISTEN=127.0.0.1:2526; make stop" + rr + " to stop the rest)\n"
			if !strings.Contains(out, "address already in use") || !strings.HasSuffix(out, want) {
				t.Errorf("run.sh start with %s taken:\n%s\nwant it to end with\n%s", listen, out, want)
			}
		})
	}
}
