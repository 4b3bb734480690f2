// Package dnsmx finds the addresses qmail-remote delivers to
// (spec/delivery.md §6, "DNS"), with github.com/miekg/dns speaking to the
// nameservers of a resolv.conf-format file.
//
//   - A literal host (d.d.d.d, [d.d.d.d], or [IPv6:addr]) is used directly
//     with preference 0; no DNS query is made.
//   - Otherwise the MX records of the host are looked up. A temporary
//     failure is ErrTemp. NXDOMAIN or no MX records (no data) falls back
//     to the host's own addresses with preference 0, as qmail's dns_mxip
//     does on any hard failure (some servers answer NXDOMAIN for the types
//     they do not serve). A host whose A query then gets NXDOMAIN, or an
//     answer with no record at all (NODATA, ErrNoData), is ErrNoHost: a
//     hard failure of qmail's resolver (glibc's res_query). One whose
//     answer holds records but no address (a CNAME to a name without
//     any) is ErrNoAddr: res_query succeeds there, qmail finds no
//     address, and it is "no mail exchanger or IP address".
//   - An exchanger named by a dotted or bracketed IP address is used as
//     that address, as qmail does (RFC 5321 forbids such MX records, but
//     they exist). A null MX (RFC 7505, ".") names no exchanger; a host
//     whose MX records are all null MX accepts no mail: ErrNullMX, a
//     permanent failure with no fallback to the host's own addresses.
//   - MX records are sorted by ascending preference, records of equal
//     preference in random order. Each exchanger's addresses follow in the
//     order the server returned them, carrying its preference; exchangers
//     whose lookup fails are skipped. No address at all after a temporary
//     failure is ErrTemp, otherwise ErrNoAddr.
//   - With IsSelf set, the list is cut at this host's own preference
//     (spec §6 "Self-loop"): only lower preferences are kept, and nothing
//     left is ErrSelf, or ErrTemp when a better exchanger could not be
//     looked up for now.
//   - Caps, so that one hostile domain cannot hold a delivery for hours or
//     fill memory: at most MaxExchangers exchanger names are looked up
//     (MaxBarren while none has an address; nothing found and names
//     left is then ErrTemp) and at most MaxAddrs addresses returned, in
//     the order above. The self cut is made on the whole list before the
//     caps (see exchangers for the one case a cap can hide). No answer is
//     turned into more records than are kept.
//   - The exchangers' addresses are looked up in that order, each when
//     the one before has answered; while one has not answered, the next
//     name's lookup is started beside it once the last lookup started
//     has run a quarter of the timeout (at most a second), and so on, at
//     most maxInFlight at once and only names the list may still need.
//     Their results are taken in preference order as before, so a zone
//     whose servers never answer costs about one give-up time of the
//     resolver (timeout x attempts x nameservers) for each maxInFlight
//     of its names, not one per name, and the exchangers after it are
//     reached. Lookups the result does not need are cut short and
//     waited for before MX returns. As a last resort, after the first
//     two names, a lookup that has not finished is not waited for once
//     the delivery's DNS queries have taken the DNS budget, which grows
//     with the names the loop may look up as the pace above does: a
//     give-up time for each maxInFlight names, one more, and a quarter
//     timeout per name (dnsBudget; 154 s for MaxBarren names with the
//     resolver's defaults, 20 s and a little more for a few names).
//     What is left then is a temporary failure (ErrTemp when nothing was
//     found).
//   - A name with non-ASCII labels (an IDN in UTF-8) is looked up by its
//     A-labels (pkg/idna ToASCII, the conversion qmail-remote's route
//     tables and the hold flags match domains by, through idna.Fold).
//   - Addresses are both AAAA and A records. When PreferIPv6 is set (the
//     caller sets it when the host has a global IPv6 address) an exchanger's
//     IPv6 addresses come before its IPv4 ones, otherwise after.
//   - A reply is used only when it echoes the question, and only records
//     owned by the name asked for or a CNAME target on its chain count, as
//     with glibc. A referral (a server that does not recurse) is
//     ErrReferral, a temporary failure, not "no such host".
//   - With Ctx set, a lookup stops when it is done: a query under way is
//     cut short, no further one is sent, and the lookup fails with ErrTemp
//     (qmail-remote told to stop by a TERM does not wait for the timeouts
//     of a DNS server it cannot reach).
//
// Names are looked up as given (no search list), like qmail's res_query.
package dnsmx

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/miekg/dns"
)

// Errors of a lookup.
var (
	ErrTemp   = errors.New("temporary DNS failure")
	ErrNoHost = errors.New("host does not exist")
	ErrNoAddr = errors.New("no mail exchanger or address")
	// ErrNoData: a name whose A query was answered with nothing at all
	// (NOERROR, an empty answer section: "no data"), which qmail's
	// resolver (glibc's res_query) takes for a hard failure, as qmail
	// takes "no such host". It is also ErrNoAddr. A name whose answer
	// holds records but no address (a CNAME chain to a name without any)
	// is ErrNoAddr alone: res_query succeeds there and qmail finds no
	// address.
	ErrNoData = fmt.Errorf("the name has no address (an empty answer): %w", ErrNoAddr)
	// ErrSelf: this host is an exchanger (IsSelf) and no exchanger of a
	// lower preference is left.
	ErrSelf = errors.New("this host is a best-preference exchanger")
	// ErrNullMX: every MX record of the host is a null MX (RFC 7505): the
	// domain says it accepts no mail. It is also ErrNoAddr (no exchanger,
	// permanent), for a caller that does not tell the two apart.
	ErrNullMX = fmt.Errorf("the domain accepts no mail (null MX): %w", ErrNoAddr)
)

// The caps of one lookup (see the package comment).
const (
	MaxExchangers = 16 // exchanger names looked up
	MaxAddrs      = 32 // addresses returned
	// MaxBarren is how many exchanger names are looked up at most while
	// none has given an address (the DNS budget permitting): names
	// without an address cost a quick "no such host" each, and mail to
	// the first one that has one was deliverable in qmail. Left with
	// nothing after that many, the delivery is deferred, not bounced:
	// the names not looked up may have addresses.
	MaxBarren = 4 * MaxExchangers
)

// Addr is one address to try, with the preference of the MX that named it.
type Addr struct {
	IP   net.IP
	Pref int
	Name string // the exchanger (or relay, or host) the address belongs to
}

// Resolver looks names up through the nameservers of Conf.
type Resolver struct {
	Conf       *Config
	PreferIPv6 bool
	// Shuffle reorders exchangers of equal preference; rand.Shuffle when nil
	// (tests set it to keep an order).
	Shuffle func(n int, swap func(i, j int))
	// IsSelf, when set, tells this host's addresses (MX and MXSoft then make
	// the self cut). It may be called from several goroutines at once
	// (the exchangers' lookups run side by side), never after MX or
	// MXSoft has returned, and must not keep ip, which is valid during
	// the call only.
	IsSelf func(ip net.IP) bool
	// Ctx, when set, stops the lookups once it is done (see the package
	// comment).
	Ctx context.Context

	now func() time.Time // the clock of the DNS budget; time.Now when nil
}

// Literal returns the address of a literal host: d.d.d.d, [d.d.d.d] or
// [IPv6:addr]. Anything else gives nil.
func Literal(host string) net.IP {
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		in := host[1 : len(host)-1]
		if len(in) > 5 && strings.EqualFold(in[:5], "ipv6:") {
			// Any IPv6 form of RFC 5321, the IPv4-mapped one included
			// ([IPv6:::ffff:192.0.2.1], reached over IPv4).
			if ip := net.ParseIP(in[5:]); ip != nil && strings.Contains(in[5:], ":") {
				if v4 := ip.To4(); v4 != nil {
					return v4
				}
				return ip
			}
			return nil
		}
		if strings.Contains(in, ":") {
			// [2001:db8::1] without its tag, as people write a relay in
			// smtproutes: plain enough to take.
			if ip := net.ParseIP(in); ip != nil && ip.To4() == nil {
				return ip
			}
			return nil
		}
		return dotted(in)
	}
	return dotted(host)
}

// dotted parses d.d.d.d only (no IPv6, no other forms).
func dotted(s string) net.IP {
	if s == "" || strings.Trim(s, "0123456789.") != "" {
		return nil
	}
	if ip := net.ParseIP(s); ip != nil {
		return ip.To4()
	}
	return nil
}

// MX returns the addresses for delivering mail to host by MX rules.
func (r *Resolver) MX(host string) ([]Addr, error) {
	addrs, _, err := r.MXSoft(host)
	return addrs, err
}

// exchanger is one MX record.
type exchanger struct {
	pref int
	name string // without the final dot; "" for a null MX
}

// MXSoft is MX, and also returns the lowest preference of an exchanger
// whose addresses could not be looked up for now (skipped), -1 if none: a
// caller that cuts the list at its own preference can tell "only I am
// left" from "a better exchanger could not be looked up". (With IsSelf
// set the cut is made here, and that case is ErrTemp.)
func (r *Resolver) MXSoft(host string) ([]Addr, int, error) {
	if ip := Literal(host); ip != nil {
		if r.IsSelf != nil && r.IsSelf(ip) {
			return nil, -1, ErrSelf
		}
		return []Addr{{IP: ip, Pref: 0, Name: host}}, -1, nil
	}
	host = idna.ToASCII(host)
	if !validName(host) {
		return nil, -1, ErrNoHost
	}
	start := r.clock()
	// The whole MX list is kept (at most some 4000 records fit in one
	// answer): the order and the cut need it. Only addresses are capped.
	var mxs []exchanger
	err := r.query(host, dns.TypeMX, func(msg []byte, off, end int) {
		if end-off < 3 {
			return
		}
		name, _, err := dns.UnpackDomainName(msg, off+2)
		if err != nil {
			return
		}
		mxs = append(mxs, exchanger{int(binary.BigEndian.Uint16(msg[off:])), strings.TrimSuffix(name, ".")})
	})
	if err != nil && !errors.Is(err, ErrNoHost) && !errors.Is(err, ErrNoData) {
		return nil, -1, err
	}
	if len(mxs) == 0 {
		ips, self, err := r.lookupIPs(host, MaxAddrs)
		if self && r.IsSelf != nil {
			return nil, -1, ErrSelf
		}
		if errors.Is(err, ErrNoData) {
			// qmail: an empty answer to the A query is a hard failure,
			// #5.1.2; an answer with a CNAME and no address is not, and
			// stays ErrNoAddr (#5.4.4).
			err = ErrNoHost
		}
		if err != nil {
			return nil, -1, err
		}
		return addrsOf(ips, 0, host), -1, nil
	}
	if !slices.ContainsFunc(mxs, func(mx exchanger) bool { return mx.name != "" }) {
		// Only null MX records (RFC 7505 §3: mail must not be sent there,
		// nor to the host's own addresses).
		return nil, -1, ErrNullMX
	}
	shuffle := r.Shuffle
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].pref < mxs[j].pref })
	return r.exchangers(mxs, start)
}

// exchangers looks the sorted exchangers up in order, within the caps, and
// makes the self cut (IsSelf): only preferences below this host's lowest
// are kept.
//
// The cut is computed before the caps take anything away: exchangers
// named by a literal address are checked all at once first; a looked-up
// exchanger is checked on every address of its answers, the ones beyond
// MaxAddrs too; once MaxAddrs addresses are kept, the exchangers that
// follow at the same preference are still looked up (nothing of theirs
// kept) to see whether this host is among them. Exchangers of a higher
// preference than everything kept cannot change the result and are not
// looked up. The one thing a cap can hide is this host among exchangers
// not looked up at the preference of the last ones kept (more than
// MaxExchangers names, or the DNS budget spent): that preference is then
// dropped, as the cut would drop it, when a better one is kept; when it is
// the best preference there is, its looked-up part is kept (nothing better
// is left, and an equal peer makes its own cut).
//
// The lookups are a lookahead's: the loop takes their results in order,
// as it took them one by one, and waits for each; while it waits for a
// slow one, the lookups of the names after it are started (the package
// comment), so that a dead zone's names cost their give-up time once, not
// once each. A lookup so started that the loop then does not need (this
// host found, MaxAddrs reached, a cap) is cut short and its result
// dropped: given the same answers, the result is the one the loop made
// looking the names up one by one, but for the DNS budget (dnsBudget).
// That is a last resort, sized so that every name the loop may look up
// is reached when a dead zone's names come first: after the first two
// names, once it is spent, a lookup that has not finished is not waited
// for (nor started by the loop); one that has is used.
func (r *Resolver) exchangers(mxs []exchanger, start time.Time) ([]Addr, int, error) {
	soft, prefme := -1, -1
	if r.IsSelf != nil {
		for _, mx := range mxs {
			if ip := Literal(mx.name); ip != nil && r.IsSelf(ip) {
				prefme = mx.pref // sorted: the lowest
				break
			}
		}
	}
	conf := r.conf()
	var out []Addr
	var tempErr error
	looked := 0
	capped := -1 // preference of the first exchanger a cap left out

	// The names the loop below may look up, in its order: those it does
	// not skip, before the cut at a literal of this host, at most
	// MaxBarren. Its k-th lookup is names[k].
	var names []exchanger
	for _, mx := range mxs {
		if prefme >= 0 && mx.pref >= prefme || len(names) == MaxBarren {
			break
		}
		if mx.name != "" && Literal(mx.name) == nil {
			names = append(names, mx)
		}
	}
	// A lookup not yet started may be started beside the one the loop
	// waits for when the loop may need its result, as far as is known
	// now (the loop's own caps; out only grows meanwhile).
	mayNeed := func(k int) bool {
		if k >= MaxExchangers && len(out) > 0 {
			return false
		}
		return len(out) < MaxAddrs || names[k].pref <= out[len(out)-1].Pref
	}
	budget := dnsBudget(conf, len(names))
	ahead := r.lookAhead(names, stagger(conf))
	defer ahead.stop()

	for _, mx := range mxs {
		if prefme >= 0 && mx.pref >= prefme {
			break
		}
		full := len(out) >= MaxAddrs
		if full && mx.pref > out[len(out)-1].Pref {
			break
		}
		if mx.name == "" { // null MX (RFC 7505): this exchanger takes no mail
			continue
		}
		if ip := Literal(mx.name); ip != nil {
			if !full {
				out = append(out, Addr{IP: ip, Pref: mx.pref, Name: mx.name})
			}
			continue
		}
		if looked >= MaxExchangers && (len(out) > 0 || looked >= MaxBarren) {
			capped = mx.pref
			if len(out) == 0 {
				// Nothing found and names left: not "no such exchanger".
				tempErr = cmp.Or(tempErr, ErrTemp)
				if soft < 0 {
					soft = mx.pref
				}
			}
			break
		}
		if looked >= 2 && !ahead.ready(looked) && r.clock().Sub(start) >= budget {
			// The DNS is too slow to wait on: a temporary failure for
			// what is left, like an exchanger whose lookup timed out.
			// A lookup that has finished (it ran beside slower ones)
			// costs no wait, and is used.
			capped = mx.pref
			tempErr = cmp.Or(tempErr, ErrTemp)
			if soft < 0 {
				soft = mx.pref
			}
			break
		}
		res := ahead.get(looked, MaxAddrs-len(out), mayNeed)
		looked++
		// A lookup started earlier kept up to the room there was then:
		// the first MaxAddrs-len(out) of its addresses are what a lookup
		// keeping that many gives.
		ips, self, err := res.ips[:min(len(res.ips), MaxAddrs-len(out))], res.self, res.err
		if self && r.IsSelf != nil {
			prefme = mx.pref
			break
		}
		if err != nil {
			if errors.Is(err, ErrTemp) {
				if tempErr == nil || errors.Is(err, ErrReferral) {
					tempErr = err
				}
				if soft < 0 {
					soft = mx.pref // sorted: the lowest
				}
			}
			continue
		}
		out = append(out, addrsOf(ips, mx.pref, mx.name)...)
	}
	cut := prefme
	if r.IsSelf != nil && capped >= 0 && (cut < 0 || capped < cut) &&
		len(out) > 0 && out[0].Pref < capped && out[len(out)-1].Pref == capped {
		cut = capped
	}
	if cut >= 0 {
		kept := out[:0]
		for _, a := range out {
			if a.Pref < cut {
				kept = append(kept, a)
			}
		}
		out = kept
	}
	switch {
	case len(out) > 0:
		return out, soft, nil
	case prefme >= 0 && (soft < 0 || soft >= prefme):
		// Nothing of a lower preference than this host's failed. An
		// exchanger of this host's own preference whose lookup failed
		// does not count (soft == prefme when the shuffle put it before
		// this host): the cut drops that preference whatever its lookup
		// gives, and counting it made the answer depend on the shuffle.
		return nil, soft, ErrSelf
	case tempErr != nil:
		// With prefme set: only this host is left, but a better exchanger
		// could not be looked up for now; a temporary failure, not a loop
		// (qmail bounced such mail on a DNS hiccup).
		return nil, soft, tempErr
	}
	return nil, soft, ErrNoAddr
}

// Look-ahead of the exchangers' lookups (see exchangers).
const (
	// maxInFlight is how many exchangers' address lookups of one MX
	// lookup run at once at most.
	maxInFlight = 8
	// maxStagger is the longest a lookup the loop waits for runs alone
	// before the next name's lookup is started beside it (stagger).
	maxStagger = time.Second
)

// stagger is the pace of the lookups started beside the one the loop
// waits for: the next name's lookup is started once the last lookup
// started has run this long, and so on: a quarter of the resolver's
// timeout, at most maxStagger. A healthy DNS answers well within it, so
// the names are asked one by one as the loop needs them (no query for an
// exchanger the loop would not have looked up); a silent zone's lookups,
// which each cost the resolver's whole give-up time, overlap instead of
// adding up.
func stagger(c *Config) time.Duration {
	if d := min(c.Timeout/4, maxStagger); d > 0 {
		return d
	}
	return maxStagger
}

// giveUp is what one lookup takes when no server answers: every server,
// timeout each, attempts rounds (a name's AAAA and A queries run side by
// side).
func giveUp(c *Config) time.Duration {
	return c.Timeout * time.Duration(max(c.Attempts, 1)*max(len(c.Servers), 1))
}

// dnsBudget is how long the delivery's DNS queries, the MX query
// included, may take before the loop of exchangers stops waiting for
// lookups that have not finished, when it may look up names names. It
// follows the pace of lookahead while the loop waits: the j-th lookup
// (from 0) is started a stagger s after the one before, or when one of
// the maxInFlight places frees, whichever is later; a place frees at the
// latest one give-up time G after its lookup started, so the j-th starts
// by j x s + floor(j/maxInFlight) x G. The loop checks the budget for the
// last name once the one before it is done, by (names-2) x s +
// (floor((names-2)/maxInFlight) + 1) x G after the first lookup started.
// The budget, (ceil(names/maxInFlight) + 1) x G + names x s, is more than
// that by at least G + 2 s: room for the MX query (which took less than
// G if it was answered) and for the scheduling. So the names after a zone
// that never answers are reached, as qmail (which looks them up one after
// another, with no limit) reaches them, and the budget still ends: with
// MaxBarren names and the resolver's defaults (G 10 s, s 1 s) it is
// 9 x 10 + 64 = 154 s, and one more G at most is spent on a lookup
// started before it ran out (about 164 s in all). With a few names it is
// 2 x G and a stagger a name, about what it was (2 x G).
func dnsBudget(c *Config, names int) time.Duration {
	rounds := max((names+maxInFlight-1)/maxInFlight, 1)
	return time.Duration(rounds+1)*giveUp(c) + time.Duration(names)*stagger(c)
}

// ipsResult is what lookupIPs gave.
type ipsResult struct {
	ips  []net.IP
	self bool
	err  error
}

// lookahead runs the address lookups of the exchangers the loop of
// exchangers consumes in order: the k-th on demand (get), and, while the
// loop waits for one, the following ones, each a stagger after the last
// one started (or as soon as a place frees, if later), at most
// maxInFlight at once, each only if the loop may need it. The pace is
// kept across the loop's gets: moving on to the next result does not
// start the stagger again, and a place that frees is taken at once, not
// at the next tick.
// Its lookups run under a context of their own; stop cancels it (a query
// under way fails at once) and waits for them: none outlives the lookup
// of the MX it serves (qmail-remote in keep mode lives on, and IsSelf is
// never called after MX returns).
type lookahead struct {
	r       Resolver // the caller's, with Ctx the look-ahead's own
	names   []exchanger
	stagger time.Duration
	res     []chan ipsResult // one buffered slot per name started
	running atomic.Int32
	freed   chan struct{} // a lookup has finished (a place may be free)
	next    time.Time     // the earliest start of a lookup beside the one waited for
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (r *Resolver) lookAhead(names []exchanger, stagger time.Duration) *lookahead {
	parent := r.Ctx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	l := &lookahead{r: *r, names: names, stagger: stagger, cancel: cancel, freed: make(chan struct{}, 1)}
	l.r.Ctx = ctx
	return l
}

// start starts the lookup of the next name, keeping at most limit
// addresses.
func (l *lookahead) start(limit int) {
	ch := make(chan ipsResult, 1)
	name := l.names[len(l.res)].name
	l.res = append(l.res, ch)
	l.next = time.Now().Add(l.stagger)
	l.running.Add(1)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ips, self, err := l.r.lookupIPs(name, limit)
		l.running.Add(-1)
		ch <- ipsResult{ips, self, err}
		select {
		case l.freed <- struct{}{}:
		default: // one signal pending is enough: get looks again
		}
	}()
}

// ready reports whether the k-th lookup has finished.
func (l *lookahead) ready(k int) bool {
	return k < len(l.res) && len(l.res[k]) > 0
}

// get returns the result of the k-th lookup (the loop asks for them in
// order), starting it if it is not, with room for limit addresses. While
// it waits, the next name's lookup is started when the pace allows it
// (l.next), fewer than maxInFlight run and mayNeed says the loop may need
// it.
func (l *lookahead) get(k, limit int, mayNeed func(k int) bool) ipsResult {
	if k == len(l.res) {
		l.start(limit)
	}
	timer := time.NewTimer(time.Hour) // Reset before use (no stale tick since Go 1.23)
	defer timer.Stop()
	for {
		select {
		case res := <-l.res[k]:
			return res // nothing more is started unless the loop waits
		default:
		}
		var wake <-chan time.Time
		// The loop's state does not change while it waits: when mayNeed
		// says no, only the result (or a place freeing, looked at again
		// for nothing) ends the wait.
		if n := len(l.res); n < len(l.names) && mayNeed(n) && l.running.Load() < maxInFlight {
			d := time.Until(l.next)
			if d <= 0 {
				l.start(limit)
				continue
			}
			timer.Reset(d)
			wake = timer.C
		}
		select {
		case res := <-l.res[k]:
			return res
		case <-wake:
		case <-l.freed:
		}
	}
}

// stop cancels the lookups still running and waits for them.
func (l *lookahead) stop() {
	l.cancel()
	l.wg.Wait()
}

func addrsOf(ips []net.IP, pref int, name string) []Addr {
	out := make([]Addr, len(ips))
	for i, ip := range ips {
		out[i] = Addr{IP: ip, Pref: pref, Name: name}
	}
	return out
}

// Host returns the addresses of host itself with preference 0 (a literal, or
// at most MaxAddrs of its AAAA and A records): ErrNoHost when it does not
// exist, ErrTemp on a temporary failure, ErrNoAddr when it has no address:
// ErrNoData (which is also ErrNoAddr) when the answer to its A query was
// empty.
// IsSelf plays no part: every address of a relay is eligible.
func (r *Resolver) Host(host string) ([]Addr, error) {
	if ip := Literal(host); ip != nil {
		return []Addr{{IP: ip, Pref: 0, Name: host}}, nil
	}
	host = idna.ToASCII(host)
	ips, err := r.IPs(host)
	if err != nil {
		return nil, err
	}
	return addrsOf(ips, 0, host), nil
}

// IPs looks up the AAAA and A records of name (both at once) and returns
// at most MaxAddrs of them in the configured family order. Only when both
// lookups fail is there an error: ErrNoHost if both said NXDOMAIN, else
// ErrTemp (or ErrReferral) if one was temporary. No address otherwise is
// ErrNoAddr, ErrNoData when the A query's answer was empty (qmail asks
// for A records only, and tells that from an answer with records).
func (r *Resolver) IPs(name string) ([]net.IP, error) {
	ips, _, err := r.lookupIPs(name, MaxAddrs)
	return ips, err
}

// lookupIPs is IPs keeping at most limit addresses (possibly 0). self
// reports whether IsSelf holds for any address of the answers, those beyond
// the limit included; the error is judged on every address too, so a name
// whose addresses are all beyond the limit has none.
func (r *Resolver) lookupIPs(name string, limit int) ([]net.IP, bool, error) {
	if !validName(name) {
		return nil, false, ErrNoHost
	}
	type family struct {
		ips  []net.IP
		seen bool
		self bool
		err  error
	}
	lookup := func(qtype uint16, size int) (f family) {
		f.err = r.query(name, qtype, func(msg []byte, off, end int) {
			if end-off != size {
				return
			}
			ip := net.IP(msg[off:end])
			f.seen = true
			if r.IsSelf != nil && !f.self && r.IsSelf(ip) {
				f.self = true
			}
			// Each family may fill the limit: the order is decided below.
			if len(f.ips) < limit {
				f.ips = append(f.ips, slices.Clone(ip))
			}
		})
		return f
	}
	ch6 := make(chan family, 1)
	go func() { ch6 <- lookup(dns.TypeAAAA, net.IPv6len) }()
	v4 := lookup(dns.TypeA, net.IPv4len)
	v6 := <-ch6
	var out []net.IP
	if r.PreferIPv6 {
		out = append(v6.ips, v4.ips...)
	} else {
		out = append(v4.ips, v6.ips...)
	}
	out = out[:min(len(out), limit)]
	self := v4.self || v6.self
	if v4.seen || v6.seen {
		return out, self, nil
	}
	switch {
	case errors.Is(v4.err, ErrReferral) || errors.Is(v6.err, ErrReferral):
		return nil, self, ErrReferral
	case errors.Is(v4.err, ErrTemp) || errors.Is(v6.err, ErrTemp):
		return nil, self, ErrTemp
	case errors.Is(v4.err, ErrNoHost):
		return nil, self, ErrNoHost
	case errors.Is(v4.err, ErrNoData):
		return nil, self, ErrNoData
	}
	return nil, self, ErrNoAddr
}

func (r *Resolver) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// validName reports whether name can be put into a query at all; anything
// else cannot exist.
func validName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	_, ok := dns.IsDomainName(name)
	return ok
}

// ToASCII is idna.ToASCII, kept for callers of this package: a domain's
// A-labels, as it is looked up.
func ToASCII(name string) string { return idna.ToASCII(name) }
