// Package unixid reads and writes the user and group ids of Linux.
//
// The kernel's ids are unsigned 32-bit numbers, and 4294967295, (uid_t)-1,
// is nobody's: setresuid(2) and chown(2) read it as "no change". hqmail
// keeps an id in an int, as package os and package syscall do. Where int
// has 32 bits (386, arm, mips), an id past 2147483647 is then a negative
// int with the id's bits, and the system calls that take it pass those
// bits on unchanged. Parse and Format convert between that int and the
// decimal text of passwd, users/assign and qmail-getpw's answer, so that
// such an id reads and prints the same on every architecture.
package unixid

import "strconv"

// None is (uid_t)-1, which no user or group has.
const None = 1<<32 - 1

// Parse reads a decimal id, leading zeros allowed. It refuses anything
// that is not a number below None.
func Parse(s string) (int, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == None {
		return 0, false
	}
	return int(uint32(n)), true
}

// Format writes id as the unsigned decimal number the kernel sees.
func Format(id int) string {
	return strconv.FormatUint(uint64(uint32(id)), 10)
}
