package unixid

import (
	"os/user"
	"testing"
)

func TestWho(t *testing.T) {
	if u, err := user.LookupId("0"); err == nil {
		if got, want := Who(0), u.Username+" (uid 0)"; got != want {
			t.Errorf("Who(0) = %q, want %q", got, want)
		}
	}
	// An id no user database here holds.
	if got := Who(2147483000); got != "uid 2147483000" {
		t.Errorf("Who(2147483000) = %q", got)
	}
}
