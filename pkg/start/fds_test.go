package start

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestInheritedDescriptorClosed: a descriptor above 2 that qmail-start
// inherits (a debconf postinst's fd 3, a make jobserver's pipe) is closed
// at its start, not held for as long as qmail runs: the pipe's reader sees
// end of file while qmail-send still runs (QA: "rc start 3>&1 | cat"
// never ended).
func TestInheritedDescriptorClosed(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"qmail-send":   "trap 'exit 0' TERM\n: > \"$0.up\"\nwhile :; do sleep 0.1; done\n",
	})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), mainEnv+"="+root, argsEnv+"=./Maildir/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.ExtraFiles = []*os.File{w} // its fd 3
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	ended := make(chan struct{})
	go func() { cmd.Wait(); close(ended) }()
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL); <-ended })
	w.Close()

	eof := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		eof <- err
	}()
	select {
	case err := <-eof:
		if err != nil {
			t.Fatalf("reading the pipe: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pipe qmail-start inherited as fd 3 is still open 30s after its start")
	}
	// The end of file came from the close, not from qmail-start's exit:
	// qmail-send comes up and qmail-start is still there.
	up := filepath.Join(root, "bin", "qmail-send.up")
	for i := 0; i < 1500 && !fileExistsT(up); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !fileExistsT(up) {
		t.Fatal("qmail-send did not start within 30s")
	}
	select {
	case <-ended:
		t.Fatal("qmail-start has exited; the end of file says nothing")
	default:
	}
}
