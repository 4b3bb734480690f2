package privsep

import (
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name string
		c    *Cred
		want []uint32 // groups; nil with no credential
		none bool
	}{
		{"nil leaves caller", nil, nil, true},
		{"exactly", Exactly(7001, 7002), []uint32{7002}, false},
		{"no groups", &Cred{UID: 1, GID: 2}, []uint32{}, false},
		{"several", &Cred{UID: 1, GID: 2, Groups: []int{2, 3, 4}}, []uint32{2, 3, 4}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/bin/true")
			Apply(cmd, tc.c)
			if tc.none {
				if cmd.SysProcAttr != nil {
					t.Fatalf("SysProcAttr set for nil cred")
				}
				return
			}
			cr := cmd.SysProcAttr.Credential
			if cr == nil || int(cr.Uid) != tc.c.UID || int(cr.Gid) != tc.c.GID {
				t.Fatalf("credential %+v", cr)
			}
			// An empty list must drop all groups, not keep the caller's.
			if cr.NoSetGroups || !reflect.DeepEqual(cr.Groups, tc.want) {
				t.Errorf("groups %v (NoSetGroups %v), want %v", cr.Groups, cr.NoSetGroups, tc.want)
			}
		})
	}
}

func TestApplyNonRoot(t *testing.T) {
	if err := ApplyNonRoot(exec.Command("/bin/true"), Exactly(0, 5)); err != ErrRoot {
		t.Errorf("uid 0: %v", err)
	}
	if err := ApplyNonRoot(exec.Command("/bin/true"), Exactly(5, 5)); err != nil {
		t.Errorf("uid 5: %v", err)
	}
	if err := ApplyNonRoot(exec.Command("/bin/true"), nil); err != nil {
		t.Errorf("nil: %v", err)
	}
}

func TestWithGroup(t *testing.T) {
	tests := []struct {
		g    int
		in   []int
		want []int
	}{
		{5, nil, []int{5}},
		{5, []int{1, 5, 2, 1}, []int{5, 1, 2}},
		{5, []int{5}, []int{5}},
	}
	for _, tc := range tests {
		if got := WithGroup(tc.g, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("WithGroup(%d, %v) = %v, want %v", tc.g, tc.in, got, tc.want)
		}
	}
}

func TestCanSwitch(t *testing.T) {
	if CanSwitch(true) {
		t.Error("shared tree: CanSwitch true")
	}
	if got := CanSwitch(false); got != (os.Geteuid() == 0) {
		t.Errorf("CanSwitch(false) = %v as euid %d", got, os.Geteuid())
	}
}

// TestRunAs starts id(1) under a credential and checks what it reports.
func TestRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child under another uid")
	}
	cmd := exec.Command("/bin/sh", "-c", "grep -E '^(Uid|Gid|Groups):' /proc/self/status")
	Apply(cmd, &Cred{UID: 64501, GID: 64502, Groups: []int{64502, 64503}})
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(strings.Fields(string(out)), " ")
	want := "Uid: 64501 64501 64501 64501 Gid: 64502 64502 64502 64502 Groups: 64502 64503"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
