package dnsmx_test

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/dnsmx"
	"github.com/hqmail/hqmail/test/dnstest"
)

// addrNames returns the names whose A records were asked for, in order.
func addrNames(s *dnstest.Server, suffix string) []string {
	var names []string
	for _, q := range s.Queries() {
		if n, ok := strings.CutSuffix(q, "/A"); ok && strings.HasSuffix(n, suffix) {
			names = append(names, n)
		}
	}
	return names
}

// TestCapExchangers: of 30 exchangers (dead ones, in a real attack) only
// the MaxExchangers best are looked up, and their addresses returned in
// preference order (all 30 were looked up and tried).
func TestCapExchangers(t *testing.T) {
	s := dnstest.Start(t)
	for i := 1; i <= 30; i++ {
		s.Add(fmt.Sprintf("many.test. MX %d mx%d.many.test.", 31-i, i),
			fmt.Sprintf("mx%d.many.test. A 10.7.0.%d", i, i))
	}
	as, err := resolver(t, s).MX("many.test")
	if err != nil || len(as) != dnsmx.MaxExchangers {
		t.Fatalf("got %d addresses, %v: %s", len(as), err, format(as))
	}
	for i, a := range as {
		if a.Pref != i+1 || a.Name != fmt.Sprintf("mx%d.many.test", 30-i) {
			t.Fatalf("address %d is %d %s: not in preference order", i, a.Pref, a.Name)
		}
	}
	if n := addrNames(s, ".many.test."); len(n) != dnsmx.MaxExchangers {
		t.Fatalf("%d exchangers looked up: %v", len(n), n)
	}
}

// TestCapAddresses: at most MaxAddrs addresses, in qmail's order (the best
// exchanger's first); the exchangers after them that cannot matter are not
// looked up.
func TestCapAddresses(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("fat.test. MX 10 a.fat.test.", "fat.test. MX 20 b.fat.test.", "fat.test. MX 30 c.fat.test.")
	for i := 1; i <= 20; i++ {
		s.Add(fmt.Sprintf("a.fat.test. A 10.6.1.%d", i), fmt.Sprintf("b.fat.test. A 10.6.2.%d", i),
			fmt.Sprintf("c.fat.test. A 10.6.3.%d", i))
	}
	as, err := resolver(t, s).MX("fat.test")
	if err != nil || len(as) != dnsmx.MaxAddrs {
		t.Fatalf("got %d addresses, %v", len(as), err)
	}
	for i, a := range as {
		want := fmt.Sprintf("10.6.1.%d", i+1)
		if i >= 20 {
			want = fmt.Sprintf("10.6.2.%d", i-19)
		}
		if a.IP.String() != want {
			t.Fatalf("address %d is %s, want %s", i, a.IP, want)
		}
	}
	if n := addrNames(s, ".fat.test."); strings.Join(n, " ") != "a.fat.test. b.fat.test." {
		t.Fatalf("looked up %v", n)
	}
	// One name, both families: the cap applies to the two together, after
	// the family order (IPv4 first here).
	for i := 1; i <= 20; i++ {
		s.Add(fmt.Sprintf("dual.test. A 10.6.4.%d", i), fmt.Sprintf("dual.test. AAAA 2001:db8::%d", i))
	}
	as, err = resolver(t, s).Host("dual.test")
	if err != nil || len(as) != dnsmx.MaxAddrs || as[19].IP.String() != "10.6.4.20" || as[31].IP.String() != "2001:db8::12" {
		t.Fatalf("dual.test: %d addresses, %v: %s", len(as), err, format(as))
	}
}

// TestDNSBudget: once the delivery's queries have taken the DNS budget,
// no exchanger after the first two is looked up unless its lookup has
// finished, and nothing found is a temporary failure. The budget grows
// with the names the loop may look up: here 20 names, timeout 1, attempts
// 1, one nameserver: (ceil(20/8) + 1) x 1 s + 20 x 0.25 s = 9 s. The
// clock moves one second per query received, as silent servers would
// make it move: the MX query and two (A, AAAA) per name, so the budget is
// spent after 4 names (9 queries). The answers (SERVFAIL) come at once,
// so no lookup is started beside another.
func TestDNSBudget(t *testing.T) {
	s := dnstest.Start(t)
	for i := 1; i <= 20; i++ {
		s.Add(fmt.Sprintf("slow.test. MX %d mx%d.slow.test.", i, i))
		s.ServFail(fmt.Sprintf("mx%d.slow.test.", i))
	}
	r := resolver(t, s)
	t0 := time.Now()
	dnsmx.SetClock(r, func() time.Time { return t0.Add(time.Duration(len(s.Queries())) * time.Second) })
	as, err := r.MX("slow.test")
	if !errors.Is(err, dnsmx.ErrTemp) {
		t.Fatalf("got %s, %v; want ErrTemp", format(as), err)
	}
	want := "mx1.slow.test. mx2.slow.test. mx3.slow.test. mx4.slow.test."
	if n := addrNames(s, ".slow.test."); strings.Join(n, " ") != want {
		t.Fatalf("looked up %v, want %s", n, want)
	}
	// The clock jumps by a minute per query: after the first two names
	// nothing is waited for.
	s2 := dnstest.Start(t)
	for i := 1; i <= 20; i++ {
		s2.Add(fmt.Sprintf("slow.test. MX %d mx%d.slow.test.", i, i))
		s2.ServFail(fmt.Sprintf("mx%d.slow.test.", i))
	}
	r = resolver(t, s2)
	dnsmx.SetClock(r, func() time.Time { return t0.Add(time.Duration(len(s2.Queries())) * time.Minute) })
	if as, err := r.MX("slow.test"); !errors.Is(err, dnsmx.ErrTemp) {
		t.Fatalf("a minute a query: got %s, %v; want ErrTemp", format(as), err)
	}
	if n := addrNames(s2, ".slow.test."); strings.Join(n, " ") != "mx1.slow.test. mx2.slow.test." {
		t.Fatalf("a minute a query: looked up %v, want the first two only", n)
	}
}

var selfIP = net.ParseIP("192.0.2.250")

// TestSelfCutBeforeCaps: this host's preference is found on the whole MX
// list, whatever the caps leave out of the result.
func TestSelfCutBeforeCaps(t *testing.T) {
	s := dnstest.Start(t)
	// A fat exchanger fills the addresses; this host is the next one at
	// the same preference.
	s.Add("bigself.test. MX 10 big.bigself.test.", "bigself.test. MX 10 me.bigself.test.",
		"me.bigself.test. A 192.0.2.250")
	for i := 1; i <= 40; i++ {
		s.Add(fmt.Sprintf("big.bigself.test. A 10.5.0.%d", i))
	}
	// This host among more backups than the cap looks up: the backups'
	// preference is dropped, as the cut would drop it.
	s.Add("manyself.test. MX 5 a.manyself.test.", "a.manyself.test. A 10.4.0.1")
	for i := 1; i <= 20; i++ {
		s.Add(fmt.Sprintf("manyself.test. MX 10 b%d.manyself.test.", i),
			fmt.Sprintf("b%d.manyself.test. A 10.4.1.%d", i, i))
	}
	s.Add("manyself.test. MX 10 me.manyself.test.", "me.manyself.test. A 192.0.2.250")
	// This host by a literal, after more names than the cap.
	for i := 1; i <= 20; i++ {
		s.Add(fmt.Sprintf("litself.test. MX 10 x%d.litself.test.", i),
			fmt.Sprintf("x%d.litself.test. A 10.3.0.%d", i, i))
	}
	s.Add("litself.test. MX 10 [192.0.2.250].")
	// The best preference is bigger than the cap, and this host is not in
	// it: its looked-up part is kept.
	for i := 1; i <= 20; i++ {
		s.Add(fmt.Sprintf("manylow.test. MX 10 b%d.manylow.test.", i),
			fmt.Sprintf("b%d.manylow.test. A 10.2.0.%d", i, i))
	}
	s.Add("backup.test. MX 10 a.backup.test.", "backup.test. MX 20 me.backup.test.", "backup.test. MX 30 c.backup.test.",
		"a.backup.test. A 10.1.0.1", "me.backup.test. A 192.0.2.250", "c.backup.test. A 10.1.0.3")
	s.Add("selfsoft.test. MX 10 sf.selfsoft.test.", "selfsoft.test. MX 20 me.selfsoft.test.",
		"me.selfsoft.test. A 192.0.2.250")
	s.ServFail("sf.selfsoft.test.")
	s.Add("selfa.test. A 192.0.2.250")
	r := resolver(t, s)
	r.IsSelf = func(ip net.IP) bool { return ip.Equal(selfIP) }
	tests := []struct {
		host string
		want string
		err  error
	}{
		{"bigself.test", "", dnsmx.ErrSelf},
		{"manyself.test", "5 a.manyself.test 10.4.0.1", nil},
		{"litself.test", "", dnsmx.ErrSelf},
		{"backup.test", "10 a.backup.test 10.1.0.1", nil},
		{"selfsoft.test", "", dnsmx.ErrTemp},
		{"selfa.test", "", dnsmx.ErrSelf},
		{"[192.0.2.250]", "", dnsmx.ErrSelf},
	}
	for _, tt := range tests {
		got, err := r.MX(tt.host)
		if !errors.Is(err, tt.err) || format(got) != tt.want {
			t.Errorf("MX(%q) = %q, %v; want %q, %v", tt.host, format(got), err, tt.want, tt.err)
		}
	}
	if n := addrNames(s, ".litself.test."); len(n) != 0 {
		t.Errorf("litself.test: exchangers looked up although the literal cut them: %v", n)
	}
	as, err := r.MX("manylow.test")
	if err != nil || len(as) != dnsmx.MaxExchangers {
		t.Errorf("manylow.test: %d addresses, %v", len(as), err)
	}
	// Without IsSelf nothing is cut.
	r.IsSelf = nil
	if as, err := r.MX("backup.test"); err != nil || len(as) != 3 {
		t.Errorf("backup.test without IsSelf: %s, %v", format(as), err)
	}
}

// TestCapBarren (real-DNS QA): a domain whose 16 best exchangers are
// names that do not exist and whose 17th has an address delivers to the
// 17th (it bounced #5.4.4, "no mail exchanger", where qmail delivers);
// with more than MaxBarren names and none found, the delivery is
// deferred, not bounced; with exactly MaxBarren, none found, it bounces.
func TestCapBarren(t *testing.T) {
	s := dnstest.Start(t)
	for i := 1; i <= dnsmx.MaxExchangers; i++ {
		s.Add(fmt.Sprintf("stale.test. MX %d gone%d.stale.test.", i, i))
	}
	s.Add(fmt.Sprintf("stale.test. MX %d live.stale.test.", dnsmx.MaxExchangers+1), "live.stale.test. A 10.7.1.1")
	as, err := resolver(t, s).MX("stale.test")
	if err != nil || format(as) != fmt.Sprintf("%d live.stale.test 10.7.1.1", dnsmx.MaxExchangers+1) {
		t.Errorf("MX(stale.test) = %q, %v; want the 17th exchanger", format(as), err)
	}
	for i := 1; i <= dnsmx.MaxBarren+1; i++ {
		s.Add(fmt.Sprintf("barren.test. MX %d gone%d.barren.test.", i, i))
		if i <= dnsmx.MaxBarren {
			s.Add(fmt.Sprintf("exact.test. MX %d gone%d.exact.test.", i, i))
		}
	}
	if as, err := resolver(t, s).MX("barren.test"); !errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("MX(barren.test) = %q, %v; want a temporary failure", format(as), err)
	}
	if n := addrNames(s, ".barren.test."); len(n) != dnsmx.MaxBarren {
		t.Errorf("%d exchangers of barren.test looked up, want %d", len(n), dnsmx.MaxBarren)
	}
	if as, err := resolver(t, s).MX("exact.test"); !errors.Is(err, dnsmx.ErrNoAddr) {
		t.Errorf("MX(exact.test) = %q, %v; want ErrNoAddr", format(as), err)
	}
}

// TestSelfBesideTempSamePref: this host beside an exchanger of its own
// preference whose lookup fails for now. Nothing of a lower preference
// failed, so nothing is left and it is ErrSelf (#5.4.6) in either order
// of the shuffle; it was ErrTemp when the failing exchanger came first.
// A failure at a lower preference still makes it ErrTemp, in either order.
func TestSelfBesideTempSamePref(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("st.test. MX 10 sf.st.test.", "st.test. MX 10 me.st.test.", "me.st.test. A 192.0.2.250")
	s.Add("lt.test. MX 5 sf.lt.test.", "lt.test. MX 10 sf2.lt.test.", "lt.test. MX 10 me.lt.test.",
		"me.lt.test. A 192.0.2.250")
	for _, n := range []string{"sf.st.test.", "sf.lt.test.", "sf2.lt.test."} {
		s.ServFail(n)
	}
	r := resolver(t, s)
	r.IsSelf = func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.0.2.250")) }
	orders := map[string]func(n int, swap func(i, j int)){
		"as given": func(n int, swap func(i, j int)) {},
		"reversed": func(n int, swap func(i, j int)) {
			for i := 0; i < n/2; i++ {
				swap(i, n-1-i)
			}
		},
	}
	for name, order := range orders {
		r.Shuffle = order
		if got, err := r.MX("st.test"); err != dnsmx.ErrSelf {
			t.Errorf("%s: MX(st.test) = %q, %v; want ErrSelf", name, format(got), err)
		}
		if got, err := r.MX("lt.test"); !errors.Is(err, dnsmx.ErrTemp) {
			t.Errorf("%s: MX(lt.test) = %q, %v; want ErrTemp", name, format(got), err)
		}
	}
}

// TestSlowExchangersOverlap (rdns2 QA): the three best exchangers are in
// a zone whose servers never answer, each lookup costing the resolver's
// whole give-up time; the fourth is good. Their lookups run beside one
// another, so the DNS budget (2 x timeout x attempts) is not spent by
// the time the fourth is reached, and the mail goes there. One by one,
// the budget was spent after the first two, the fourth was never looked
// up and the delivery was deferred on every retry until it bounced.
func TestSlowExchangersOverlap(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("deadfirst.test. MX 10 a.slow.test.", "deadfirst.test. MX 11 b.slow.test.",
		"deadfirst.test. MX 12 c.slow.test.", "deadfirst.test. MX 20 mx2.good.test.",
		"mx2.good.test. A 10.8.0.2")
	for _, n := range []string{"a.slow.test.", "b.slow.test.", "c.slow.test."} {
		s.Silent(n)
	}
	// timeout 2, attempts 1: a 4 s budget; each dead lookup takes 2 s.
	c, err := dnsmx.ParseConfig(strings.NewReader("nameserver " + s.Addr + "\noptions timeout:2 attempts:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &dnsmx.Resolver{Conf: c, Shuffle: func(int, func(i, j int)) {}}
	as, soft, err := r.MXSoft("deadfirst.test")
	if err != nil || format(as) != "20 mx2.good.test 10.8.0.2" || soft != 10 {
		t.Fatalf("MXSoft(deadfirst.test) = %q, %d, %v; want the fourth exchanger, 10 skipped", format(as), soft, err)
	}
	want := "a.slow.test. b.slow.test. c.slow.test. mx2.good.test."
	if n := append(addrNames(s, ".slow.test."), addrNames(s, ".good.test.")...); strings.Join(n, " ") != want {
		t.Errorf("looked up %v, want each of %s once", n, want)
	}
}

// TestLookAheadStops: lookups started beside a slow one that the result
// does not need (this host is found first) are cut short: none is left
// running once MX has returned (qmail-remote -k lives on), and IsSelf is
// not called after it.
func TestLookAheadStops(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("stops.test. MX 10 a.stops.test.", "stops.test. MX 20 me.stops.test.",
		"stops.test. MX 30 z.stops.test.", "stops.test. MX 40 w.stops.test.",
		"me.stops.test. A 192.0.2.250", "w.stops.test. A 10.8.1.4")
	s.Silent("a.stops.test.")
	s.Silent("z.stops.test.")
	r := resolver(t, s)
	var mu sync.Mutex
	returned, late := false, 0
	r.IsSelf = func(ip net.IP) bool {
		mu.Lock()
		if returned {
			late++
		}
		mu.Unlock()
		return ip.Equal(selfIP)
	}
	// a timed out (ErrTemp), then this host: nothing of a lower
	// preference is left, and a better one could not be looked up.
	as, err := r.MX("stops.test")
	mu.Lock()
	returned = true
	mu.Unlock()
	if !errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("MX(stops.test) = %q, %v; want ErrTemp", format(as), err)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	// Only a goroutine running lookup code counts: one that has sent its
	// answer and is exiting still names lookupIPs on its "created by"
	// line (seen under -race in CI).
	for _, g := range strings.Split(stacks, "\n\n") {
		own, _, _ := strings.Cut(g, "\ncreated by ")
		if strings.Contains(own, "dnsmx.(*Resolver).lookupIPs") {
			t.Errorf("a lookup outlived MX:\n%s", stacks)
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if late != 0 {
		t.Errorf("IsSelf called %d times after MX returned", late)
	}
}

// TestManySilentExchangers (rdns3 QA): 12 and 20 exchanger names in a
// zone whose servers never answer, then a good one. Their lookups run
// beside one another, at most 8 at once, and the DNS budget grows with
// the names the loop may look up, so the good exchanger is reached, as
// qmail reaches it after looking each dead name up in turn. The budget
// was twice one give-up time whatever the number of names: only some 9
// dead names fitted in it, and mail to such a domain was deferred on
// every retry, then bounced. The resolver gives up on a name after
// 3 x 400 ms, three times its pace of 100 ms x 8 lookups at once, as
// the defaults (10 s, 8 x 1 s) do: the lookups fill the 8 places.
func TestManySilentExchangers(t *testing.T) {
	for _, n := range []int{12, 20} {
		s := dnstest.Start(t)
		dom := fmt.Sprintf("mxsil%d.test", n)
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("s%d.silent.test.", i)
			s.Add(fmt.Sprintf("%s. MX %d %s", dom, i, name))
			s.Silent(name)
		}
		s.Add(dom+". MX 100 ok.good.test.", "ok.good.test. A 10.9.0.3")
		r := &dnsmx.Resolver{
			Conf:    &dnsmx.Config{Servers: []string{s.Addr}, Timeout: 400 * time.Millisecond, Attempts: 3},
			Shuffle: func(int, func(i, j int)) {},
		}
		as, soft, err := r.MXSoft(dom)
		if err != nil || format(as) != "100 ok.good.test 10.9.0.3" || soft != 0 {
			t.Errorf("%d silent names: MXSoft(%s) = %q, %d, %v; want the good exchanger, 0 skipped", n, dom, format(as), soft, err)
		}
		seen := map[string]bool{}
		for _, name := range addrNames(s, ".silent.test.") {
			seen[name] = true // asked once per attempt
		}
		if len(seen) != n {
			t.Errorf("%d silent names: %d of them looked up", n, len(seen))
		}
	}
}
