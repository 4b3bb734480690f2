// Package netns creates network namespaces and veth pairs for integration
// tests (root only) and runs code or programs inside them.
//
// Everything a test creates is removed in t.Cleanup: the namespaces with
// `ip netns del` (which also destroys the veth ends inside them). Code runs
// in a namespace on a locked OS thread that is switched with setns(2) and
// switched back afterwards; sockets opened there stay in that namespace, and
// programs started there (fork happens on the calling thread) live in it.
package netns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace (/run/netns/NAME).
type NS struct {
	Name string
}

var seq atomic.Int64

// Available reports why namespaces cannot be used here ("" if they can):
// not root, no ip(8), or `ip netns add` refused (a container without
// CAP_SYS_ADMIN, say).
func Available() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no ip(8) in PATH"
	}
	name := fmt.Sprintf("hqprobe%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add: %v: %s", err, bytes.TrimSpace(out))
	}
	exec.Command("ip", "netns", "del", name).Run()
	return ""
}

// Name returns a short name unique among the test processes running now
// (pid and a per-process counter), with a suffix; also usable as an
// interface name (at most 15 bytes) when suffix is at most 3 bytes.
func Name(suffix string) string {
	return fmt.Sprintf("hq%d-%03d%s", os.Getpid()%1000000, seq.Add(1)%1000, suffix)
}

// New creates a namespace with its loopback up, deleted in t.Cleanup.
func New(t testing.TB, name string) *NS {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("netns: ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("netns: ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NAME args...` and fails the test on error.
func (ns *NS) IP(t testing.TB, args ...string) {
	t.Helper()
	if _, err := ns.TryIP(args...); err != nil {
		t.Fatalf("netns: %v", err)
	}
}

// TryIP runs `ip -n NAME args...` and returns its output and error.
func (ns *NS) TryIP(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Veth creates a veth pair with end aName in a and bName in b (both left
// down). It disappears with the namespaces.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	a.IP(t, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
}

// Command returns a command that runs name inside the namespace through
// `ip netns exec`.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs fn on the calling goroutine with its OS thread switched into the
// namespace, and switches back afterwards (also when fn calls t.Fatal). A
// thread that cannot be switched back stays locked, so the runtime discards
// it when the goroutine ends.
func (ns *NS) Do(t testing.TB, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns: %v", err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns.Name)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns: %v", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns: setns %s: %v", ns.Name, err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked to this goroutine: nothing else
			// runs in the wrong namespace, and the test is failed.
			t.Errorf("netns: setns back from %s: %v", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// Sysctl sets a sysctl (dotted name) inside the namespace.
func (ns *NS) Sysctl(t testing.TB, name, value string) {
	t.Helper()
	var err error
	ns.Do(t, func() {
		// /proc/sys/net belongs to the network namespace of the thread
		// that opens it.
		p := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
		err = os.WriteFile(p, []byte(value+"\n"), 0o644)
	})
	if err != nil {
		t.Fatalf("netns: sysctl %s=%s in %s: %v", name, value, ns.Name, err)
	}
}

// TxPackets returns the count of packets iface has sent.
func (ns *NS) TxPackets(t testing.TB, iface string) uint64 {
	t.Helper()
	out, err := ns.TryIP("-s", "-j", "link", "show", "dev", iface)
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	var links []struct {
		Stats64 struct {
			Tx struct {
				Packets uint64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("netns: ip -s -j link show %s: %v: %q", iface, err, out)
	}
	return links[0].Stats64.Tx.Packets
}
