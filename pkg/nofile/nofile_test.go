package nofile

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		limit             int
		per, reserve, cur int64
		want              int
	}{
		{120, 8, 224, 0, 120},    // unknown: kept
		{120, 8, 224, -1, 120},   // unknown: kept
		{500, 8, 224, 4224, 500}, // exactly enough
		{500, 8, 224, 4223, 499},
		{500, 8, 224, 1024, 100},
		{40, 10, 16, 64, 4},
		{40, 10, 16, 10, 1}, // not even the reserve: still one
		{40, 10, 16, 1 << 31, 40},
	} {
		if got := Fit(tc.limit, tc.per, tc.reserve, tc.cur); got != tc.want {
			t.Errorf("Fit(%d, %d, %d, %d) = %d, want %d", tc.limit, tc.per, tc.reserve, tc.cur, got, tc.want)
		}
	}
}

// Raise never lowers the soft limit, raises it toward need within the
// hard limit, and reports the limits in force.
func TestRaise(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Skip("no RLIMIT_NOFILE:", err)
	}
	soft, hard := Raise(0)
	if uint64(soft) != min(before.Cur, 1<<31) || uint64(hard) != min(before.Max, 1<<31) {
		t.Errorf("Raise(0) = %d, %d; limits were %d, %d", soft, hard, before.Cur, before.Max)
	}
	need := int64(min(before.Max, 1<<20))
	soft, _ = Raise(need)
	if soft < need {
		t.Errorf("Raise(%d): soft %d, hard %d", need, soft, before.Max)
	}
	var after syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after)
	if int64(min(after.Cur, 1<<31)) != soft {
		t.Errorf("Raise reported %d, the soft limit is %d", soft, after.Cur)
	}
}

// raiseHardEnv makes the test binary TestRaiseHard's child.
const raiseHardEnv = "HQMAIL_NOFILE_RAISE_HARD"

func TestMain(m *testing.M) {
	if os.Getenv(raiseHardEnv) != "" {
		os.Exit(raiseHardChild())
	}
	if os.Getenv(freeEnv) != "" {
		os.Exit(freeChild())
	}
	os.Exit(m.Run())
}

// raiseHardChild lowers its hard limit to 1024, then has RaiseHard take it
// to 5000 and leave the soft limit alone.
func raiseHardChild() int {
	low := syscall.Rlimit{Cur: 512, Max: 1024}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		fmt.Println("lowering:", err)
		return 2
	}
	if !RaiseHard(5000) {
		fmt.Println("RaiseHard(5000) reported failure")
		return 1
	}
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	if rl.Max < 5000 || rl.Cur != 512 {
		fmt.Printf("limits %d/%d after RaiseHard(5000), want 512/5000 or more\n", rl.Cur, rl.Max)
		return 1
	}
	if !RaiseHard(100) {
		fmt.Println("RaiseHard(100) under a higher limit reported failure")
		return 1
	}
	return 0
}

// RaiseHard raises a hard limit below need (as root), and leaves the soft
// limit as it was.
func TestRaiseHard(t *testing.T) {
	if !hasCap(24) { // CAP_SYS_RESOURCE
		t.Skip("raising a hard limit needs CAP_SYS_RESOURCE, which this process lacks")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), raiseHardEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// hasCap reports whether capability bit is in this process's effective set.
func hasCap(bit uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<bit) != 0
		}
	}
	return false
}

// freeEnv makes the test binary TestFree's child.
const freeEnv = "HQMAIL_NOFILE_FREE"

// freeChild lowers its limit so that exactly 3 descriptors are free below
// it (whatever it inherited or the runtime holds), then asks Free for
// fewer, as many and more, twice: what Free opens it closes again.
func freeChild() int {
	limit, free := 0, 0
	for ; ; limit++ {
		if _, err := unix.FcntlInt(uintptr(limit), unix.F_GETFD, 0); err != nil {
			if free == 3 {
				break
			}
			free++
		}
	}
	rl := syscall.Rlimit{Cur: uint64(limit), Max: uint64(limit)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Println("lowering:", err)
		return 2
	}
	for try := 0; try < 2; try++ {
		for n, want := range []int{0, 1, 2, 3, 3, 3} {
			if got := Free(n); got != want {
				fmt.Printf("limit %d, try %d: Free(%d) = %d, want %d\n", limit, try, n, got, want)
				return 1
			}
		}
	}
	return 0
}

// TestFree: Free counts the descriptors that can still be opened under
// the limit, and gives back what it took.
func TestFree(t *testing.T) {
	if got := Free(20); got != 20 {
		t.Errorf("Free(20) = %d under limits far above", got)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), freeEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}
