package unixid

import "strings"

// StatusUIDs returns the real and the effective uid on the Uid line of
// the contents of a /proc/PID/status file ("Uid: REAL EFFECTIVE SAVED
// FS"); ok is false when there is no such line or its ids do not parse.
func StatusUIDs(status []byte) (ruid, euid int, ok bool) {
	for _, line := range strings.Split(string(status), "\n") {
		rest, found := strings.CutPrefix(line, "Uid:")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0, 0, false
		}
		r, ok1 := Parse(f[0])
		e, ok2 := Parse(f[1])
		return r, e, ok1 && ok2
	}
	return 0, 0, false
}
