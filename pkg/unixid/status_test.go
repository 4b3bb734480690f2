package unixid

import "testing"

func TestStatusUIDs(t *testing.T) {
	high := uint32(4294967294) // past 2^31: a negative int where int has 32 bits
	for _, tc := range []struct {
		status     string
		ruid, euid int
		ok         bool
	}{
		{"Name:\tqmail-send\nUid:\t1001\t1002\t1003\t1004\nGid:\t5\t5\t5\t5\n", 1001, 1002, true},
		{"Uid:\t4294967294\t0\t0\t0\n", int(high), 0, true},
		{"Name:\tx\nGid:\t5\t5\t5\t5\n", 0, 0, false},
		{"Uid:\t1001\n", 0, 0, false},
		{"Uid:\tx\t1\t1\t1\n", 0, 0, false},
	} {
		r, e, ok := StatusUIDs([]byte(tc.status))
		if ok != tc.ok || ok && (r != tc.ruid || e != tc.euid) {
			t.Errorf("%q: %d %d %v, want %d %d %v", tc.status, r, e, ok, tc.ruid, tc.euid, tc.ok)
		}
	}
}
