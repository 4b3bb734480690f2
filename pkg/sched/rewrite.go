package sched

import (
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
)

// Channels.
const (
	chanLocal  = 0
	chanRemote = 1
)

var chanName = [2]string{"local", "remote"}

// rewrite classifies a recipient for the local or remote channel and
// returns the address to store (spec/scheduler.md §4).
func (cf *config) rewrite(r string) (int, string) {
	if strings.IndexByte(r, '@') < 0 {
		r = r + "@" + cf.envnoathost
	}
	for {
		at := strings.LastIndexByte(r, '@')
		if !cf.percenthack[address.LowerASCII(r[at+1:])] {
			break
		}
		pct := strings.LastIndexByte(r[:at], '%')
		if pct < 0 {
			break
		}
		r = r[:pct] + "@" + r[pct+1:at]
	}
	at := strings.LastIndexByte(r, '@')
	dom := address.LowerASCII(r[at+1:])
	if cf.locals[dom] {
		return chanLocal, r
	}
	prep, ok := cf.vdomLookup(address.LowerASCII(r), dom, true)
	if !ok || prep == "" {
		return chanRemote, r
	}
	return chanLocal, prep + "-" + r
}

// vdomLookup finds the virtualdomains entry for an address: the whole
// address (if whole), the domain, each ".suffix" longest first, then the
// empty key.
func (cf *config) vdomLookup(addr, dom string, whole bool) (string, bool) {
	if whole {
		if v, ok := cf.vdoms[addr]; ok {
			return v, true
		}
	}
	if v, ok := cf.vdoms[dom]; ok {
		return v, true
	}
	for i := 0; i < len(dom); i++ {
		if dom[i] == '.' {
			if v, ok := cf.vdoms[dom[i:]]; ok {
				return v, true
			}
		}
	}
	v, ok := cf.vdoms[""]
	return v, ok
}

// unvirtual undoes the virtual-domain prepend of a recipient for a bounce
// paragraph (spec/scheduler.md §8) and replaces newlines with '_'.
func (cf *config) unvirtual(r string) string {
	at := strings.LastIndexByte(r, '@')
	dom := address.LowerASCII(r[at+1:])
	if prep, ok := cf.vdomLookup("", dom, false); ok && prep != "" {
		if strings.HasPrefix(r, prep+"-") {
			r = r[len(prep)+1:]
		}
	}
	return strings.ReplaceAll(r, "\n", "_")
}

// verp returns the sender to use for one recipient (spec/scheduler.md §4).
func verp(sender, recip string) string {
	if !strings.HasSuffix(sender, "-@[]") {
		return sender
	}
	s := sender[:len(sender)-4]
	sat := strings.LastIndexByte(s, '@')
	rat := strings.LastIndexByte(recip, '@')
	if sat < 0 || rat < 0 {
		return sender
	}
	return s[:sat] + recip[:rat] + "=" + recip[rat+1:] + s[sat:]
}
