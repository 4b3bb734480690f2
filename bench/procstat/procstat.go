// Package procstat reads what the benchmarks report about a process from
// /proc.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// VmHWM returns a process's peak resident set size in kB, -1 if unknown.
func VmHWM(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			if f := strings.Fields(l); len(f) >= 2 {
				if v, err := strconv.Atoi(f[1]); err == nil {
					return v
				}
			}
		}
	}
	return -1
}
