package nofile

import (
	"syscall"
	"testing"
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
