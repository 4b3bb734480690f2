package unixid

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeProc(t *testing.T, uidMap, gidMap, setgroups string) {
	t.Helper()
	d := t.TempDir()
	for name, text := range map[string]string{"uid_map": uidMap, "gid_map": gidMap, "setgroups": setgroups} {
		if text == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(d, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := procSelf
	procSelf = d
	t.Cleanup(func() { procSelf = old })
}

func TestUnmapped(t *testing.T) {
	const full = "         0          0 4294967295\n"
	for _, tc := range []struct {
		name                     string
		uidMap, gidMap, setgroup string
		uid, gid                 int
		groups                   []int
		setgroups                bool
		want                     []string // each in the answer; none: ""
	}{
		{"initial namespace", full, full, "allow\n", 64110, 64111, []int{64111}, true, nil},
		{"no /proc", "", "", "", 64110, 64111, nil, true, nil},
		{"one uid mapped", "0 1000 1\n", "0 1000 1\n", "deny\n", 991, 995, []int{995}, true,
			[]string{"uid 991 is not mapped (uid_map: 0 1000 1)", "gid 995", "setgroups is denied", "docs/containers.md"}},
		{"setgroups not asked", "0 1000 1\n", "0 1000 1\n", "deny\n", 0, 995, nil, false,
			[]string{"gid 995 is not mapped"}},
		{"subordinate ids", "0 100000 65536\n", "0 100000 65536\n", "allow\n", 991, 995, []int{995, 12}, true, nil},
		{"a group past the map", "0 100000 65536\n", "0 100000 65536\n", "allow\n", 991, 995, []int{70000}, true,
			[]string{"gid 70000 is not mapped"}},
		{"two ranges", "0 1000 1\n1 100000 65535\n", "0 1000 1\n1 100000 65535\n", "allow\n", 65535, 1, nil, true, nil},
		{"past the last range", "0 1000 1\n1 100000 65535\n", full, "allow\n", 65536, 1, nil, true,
			[]string{"uid 65536 is not mapped (uid_map: 0 1000 1; 1 100000 65535)"}},
		{"garbage map", "zero\n", "0 0\n", "allow\n", 5, 5, nil, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeProc(t, tc.uidMap, tc.gidMap, tc.setgroup)
			got := Unmapped(tc.uid, tc.gid, tc.groups, tc.setgroups)
			if len(tc.want) == 0 {
				if got != "" {
					t.Errorf("got %q, want nothing", got)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("got %q, want %q in it", got, w)
				}
			}
			if !tc.setgroups && strings.Contains(got, "setgroups") {
				t.Errorf("got %q: setgroups named where no groups are set", got)
			}
		})
	}
}
