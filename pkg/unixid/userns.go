package unixid

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procSelf is where Unmapped reads this process's id maps; a variable for
// the tests.
var procSelf = "/proc/self"

// Unmapped explains why a process cannot take (or a file cannot be given)
// the ids uid, gid and groups in this user namespace, or returns "" when
// nothing says it cannot: an id the namespace does not map (a container
// that maps one uid only, "unshare -U -r", rootless without subordinate
// ids), or, with groups to set, setgroups(2) denied. The kernel says only
// EINVAL or EPERM; this names the id and the file to look at. A negative
// uid or gid is not asked about.
func Unmapped(uid, gid int, groups []int, setgroups bool) string {
	uids, uok := readIDMap(procSelf + "/uid_map")
	gids, gok := readIDMap(procSelf + "/gid_map")
	var why []string
	if uok && uid >= 0 && !uids.has(uid) {
		why = append(why, fmt.Sprintf("uid %s is not mapped (uid_map: %s)", Format(uid), uids))
	}
	if gok {
		for _, g := range append([]int{gid}, groups...) {
			if g >= 0 && !gids.has(g) {
				why = append(why, fmt.Sprintf("gid %s is not mapped (gid_map: %s)", Format(g), gids))
				break
			}
		}
	}
	if b, err := os.ReadFile(procSelf + "/setgroups"); setgroups && err == nil && strings.TrimSpace(string(b)) == "deny" {
		why = append(why, "setgroups is denied")
	}
	if len(why) == 0 {
		return ""
	}
	return "in this user namespace, " + strings.Join(why, " and ") +
		": map qmail's ids (subordinate ids 0-65535, say) or run the tree as one ordinary user (docs/containers.md)"
}

// idMap is the ranges of a uid_map or gid_map: inside, outside, count.
type idMap [][3]uint64

func (m idMap) has(id int) bool {
	for _, r := range m {
		if v := uint64(uint32(id)); v >= r[0] && v-r[0] < r[2] {
			return true
		}
	}
	return false
}

func (m idMap) String() string {
	var s []string
	for _, r := range m {
		s = append(s, fmt.Sprintf("%d %d %d", r[0], r[1], r[2]))
	}
	return strings.Join(s, "; ")
}

// readIDMap reads a uid_map or gid_map; ok is false when it cannot be read
// or parsed (no /proc: nothing is said).
func readIDMap(path string) (m idMap, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, false
		}
		var r [3]uint64
		for i := range f {
			if r[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
				return nil, false
			}
		}
		m = append(m, r)
	}
	return m, len(m) > 0
}
