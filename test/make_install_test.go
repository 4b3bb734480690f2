package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// makeCheckout is a copy of the parts of the checkout `make install` reads
// (the Makefile and docs/man), with bin/ a link to the test build, so that
// the target runs without building into the real checkout.
func makeCheckout(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make: ", err)
	}
	bin := harness.Build(t)
	harness.RequireBin(t, "qmail-install")
	mod, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	copyFile := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(mod, "Makefile"), filepath.Join(top, "Makefile"))
	if err := os.MkdirAll(filepath.Join(top, "docs", "man"), 0o755); err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(mod, "docs", "man", "*.[1-9]"))
	if len(pages) == 0 {
		t.Fatal("no man pages in docs/man")
	}
	for _, p := range pages {
		copyFile(p, filepath.Join(top, "docs", "man", filepath.Base(p)))
	}
	if err := os.Symlink(bin, filepath.Join(top, "bin")); err != nil {
		t.Fatal(err)
	}
	return top
}

// runMakeInstall runs `make install ROOT=root` in top, bounded; GO=true
// makes its build step a no-op (bin/ is the test build already).
func runMakeInstall(t *testing.T, top, root string) string {
	t.Helper()
	out, err := runMake(t, top, "install", "ROOT="+root, "ME=")
	if err != nil {
		t.Fatalf("make install ROOT=%s: %v\n%s", root, err, out)
	}
	return out
}

// TestMakeInstallManPages: make install puts every page of docs/man into
// ROOT/man/manN (pages 0644, directories 0755, owned by root when run as
// root), where man -M ROOT/man finds them, and so does man with the
// MANDATORY_MANPATH line it advises; a re-install replaces a changed page
// and a link put in a page's place (never writing through it), and gives
// a directory its mode back.
func TestMakeInstallManPages(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	top := makeCheckout(t)
	// An existing tree (as root, with the harness's test ids, so that
	// qmail-install creates no system users): make install repairs it.
	tr := harness.Install(t)
	out := runMakeInstall(t, top, tr.Root)

	src, _ := filepath.Glob(filepath.Join(top, "docs", "man", "*.[1-9]"))
	if !strings.Contains(out, "man pages installed in "+tr.Path("man")) {
		t.Errorf("make install does not say where the man pages went:\n%s", out)
	}
	uid := os.Geteuid()
	if uid == 0 && !strings.Contains(out, "MANDATORY_MANPATH "+tr.Path("man")) {
		t.Errorf("make install as root does not give the manpath.config line:\n%s", out)
	}
	checkMode := func(p string, want os.FileMode, dir bool) {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Error(err)
			return
		}
		if fi.IsDir() != dir || (!dir && !fi.Mode().IsRegular()) {
			t.Errorf("%s: %v, want a %s", p, fi.Mode(), map[bool]string{true: "directory", false: "regular file"}[dir])
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || (uid == 0 && st.Gid != 0) {
			t.Errorf("%s: owner %d:%d, want the installer's (%d)", p, st.Uid, st.Gid, uid)
		}
	}
	checkMode(tr.Path("man"), 0o755, true)
	for _, p := range src {
		name := filepath.Base(p)
		sec := name[strings.LastIndexByte(name, '.')+1:]
		dst := tr.Path("man", "man"+sec, name)
		checkMode(filepath.Dir(dst), 0o755, true)
		checkMode(dst, 0o644, false)
		want, _ := os.ReadFile(p)
		if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not a copy of docs/man/%s (%v)", dst, name, err)
		}
	}
	page := tr.Path("man", "man8", "qmail-send.8")
	if _, err := os.Stat(page); err != nil {
		t.Fatalf("qmail-send(8) not installed: %v", err)
	}

	// A re-install replaces the pages.
	if err := os.WriteFile(page, []byte(".TH OLD 8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("not a page\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	linked := tr.Path("man", "man5", "qmail-control.5")
	os.Remove(linked)
	if err := os.Symlink(outside, linked); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tr.Path("man", "man1"), 0o700); err != nil {
		t.Fatal(err)
	}
	runMakeInstall(t, top, tr.Root)
	want, _ := os.ReadFile(filepath.Join(top, "docs", "man", "qmail-send.8"))
	if got, _ := os.ReadFile(page); !bytes.Equal(got, want) {
		t.Errorf("re-install left the old qmail-send.8: %q", got)
	}
	checkMode(page, 0o644, false)
	checkMode(linked, 0o644, false)
	if b, _ := os.ReadFile(outside); string(b) != "not a page\n" {
		t.Errorf("re-install wrote through a link in the page's place: %.60q", b)
	}
	checkMode(tr.Path("man", "man1"), 0o755, true)

	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("no man to look the page up with (apt-get install man-db): ", err)
	}
	man := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "man", args...)
		for _, e := range os.Environ() {
			if k, _, _ := strings.Cut(e, "="); k != "MANPATH" {
				cmd.Env = append(cmd.Env, e)
			}
		}
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("man %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return strings.TrimSpace(string(b))
	}
	if got := man("-M", tr.Path("man"), "-w", "qmail-send"); got != page {
		t.Errorf("man -M %s -w qmail-send: %q, want %q", tr.Path("man"), got, page)
	}
	// The line make install advises for /etc/manpath.config, in a
	// configuration file of the test's own.
	cfg := filepath.Join(t.TempDir(), "manpath.config")
	if err := os.WriteFile(cfg, []byte("MANDATORY_MANPATH "+tr.Path("man")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := man("-C", cfg, "-w", "qmailctl"); got != tr.Path("man", "man8", "qmailctl.8") {
		t.Errorf("man -C (MANDATORY_MANPATH %s) -w qmailctl: %q", tr.Path("man"), got)
	}
}

// runMake runs make with args in top, bounded, without an outer make's
// flags (nor DESTDIR or PREFIX from the environment); GO=true makes its
// build step a no-op (bin/ is the test build already). It returns the
// output and the error.
func runMake(t *testing.T, top string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append(args, "GO=true")...)
	cmd.Dir = top
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" && k != "DESTDIR" && k != "PREFIX" {
			cmd.Env = append(cmd.Env, e)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMakeInstallRootForms: a relative ROOT is taken from the checkout,
// so that the links install-links makes in /usr/sbin and /usr/bin name
// the tree from anywhere (they were relative: dangling, the host's
// sendmail gone); DESTDIR or PREFIX on the command line, which this
// Makefile does not take, make install refuse before anything is done
// (it went to /var/qmail).
func TestMakeInstallRootForms(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	top := makeCheckout(t)
	out, err := runMake(t, top, "-n", "install-links", "ROOT=rel/tree")
	if err != nil {
		t.Fatalf("make -n install-links: %v\n%s", err, out)
	}
	if want := `ln -sf "` + filepath.Join(top, "rel", "tree") + `/bin/sendmail" /usr/sbin/sendmail`; !strings.Contains(out, want) {
		t.Errorf("make -n install-links ROOT=rel/tree does not run %s:\n%s", want, out)
	}
	root := filepath.Join(t.TempDir(), "tree")
	for _, v := range []string{"DESTDIR", "PREFIX"} {
		out, err := runMake(t, top, "install", "ROOT="+root, v+"=/tmp/elsewhere")
		if err == nil || !strings.Contains(out, "make install: "+v+" is not used here") {
			t.Errorf("make install %s=...: %v\n%s", v, err, out)
		}
		if _, err := os.Stat(root); !os.IsNotExist(err) {
			t.Errorf("make install %s=... made %s: %v", v, root, err)
		}
	}
}
